using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Tests;

/// <summary>
/// The decoder against the golden fixtures, fed the fixture's own fast/slow tokens (the vision side is
/// checked separately, and end to end in ModelGoldenTests): all-position logits within 1e-3 (FP32 and
/// the BF16 checkpoint, whose weights both sides upcast exactly to FP32), greedy tokens identical with
/// the reference's decoding semantics and with attend-while-decoding. The bf16-math case
/// (<see cref="MatMulPrecision.BFloat16"/>) is held to the same tolerance (it measured 9e-7: both sides
/// round the same float32 activations, which only differ when one lands next to a bfloat16 rounding
/// tie), and must be measurably closer to its fixture than the float32 arithmetic is. Every case runs
/// twice: with the weights as stored, and with the decoder's BF16 matrices packed at load as a bf16
/// model loads them (read only as packed in bf16 arithmetic, decoding included; float32 products map the
/// released stored pages back).
/// </summary>
[Collection(GemmTunablesCollection.Name)]
public class DecoderGoldenTests
{
    public const double LogitTolerance = 1e-3;

    public static TheoryData<string, bool> Cases()
    {
        var cases = new TheoryData<string, bool>();
        foreach (var name in GoldenCase.Names())
        {
            cases.Add(name, false);
            cases.Add(name, true);
        }
        return cases;
    }

    [Fact]
    public void Golden_fixtures_are_present()
    {
        Assert.NotEmpty(GoldenCase.Names());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Logits_and_greedy_tokens_match_the_reference(string name, bool packDecoder)
    {
        var g = GoldenCase.Open(name);
        string root = Path.Combine(Path.GetTempPath(), $"slowfast-golden-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var m = new LoadedDecoder(g.CreateCheckpoint(root), packDecoder);
            g.AssertFingerprint(m.Model);
            // Packing happens exactly where it can: BF16 matrices as stored, a bfloat16 GEMM on this CPU.
            bool packable = packDecoder && MatMul.BFloat16Supported && m.Model.Quantization == null && g.Quantize == null
                && m.Model.Get(CheckpointLayout.Layer(0) + "mlp.gate_proj.weight").DType == SlowFast.Tensors.DType.BF16;
            Assert.Equal(packable, m.Decoder.Weights.Layers[0].GateProj.IsPackedForBFloat16);
            Assert.Equal(packable, m.Decoder.Weights.Layers[^1].QProj.IsPackedForBFloat16);
            if (g.Bf16Math && !MatMul.BFloat16Supported)
            {
                AssertBf16MathFallsBackToFloat32(m, g);   // no AVX512-BF16: the option must change nothing
                return;
            }
            m.Precision = g.Bf16Math ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32;
            var ids = g.Ints("input_ids");
            float[]? fast = g.HasVisual ? g.Floats("fast_tokens") : null;
            float[]? slow = g.HasVisual ? g.Floats("slow_tokens") : null;
            // The baseline: every frame's tokens in the sequence, nothing to cross-attend to.
            if (g.HasVisual && g.Design == VisualDesign.Baseline) (fast, slow) = (slow, null);
            int fastCount = fast == null ? 0 : fast.Length / m.Decoder.Hidden;
            int slowCount = slow == null ? 0 : slow.Length / m.Decoder.Hidden;

            var prompt = DecoderPrompt.Build(m.Decoder, ids, fast, fastCount);
            Assert.Equal(g.Ints("token_types"), prompt.TokenTypes);

            var logits = m.ForwardAll(prompt, slow, slowCount);
            double err = g.CompareLogits(logits, m.Decoder.VocabSize);
            Assert.True(err < LogitTolerance, $"{name}: max abs logit error {err}");
            if (g.Quantize != null)
            {
                // The prompt is fewer rows than the integer GEMM takes: send every product there too.
                var gemmMinRows = MatMul.Quantized.GemmMinRowsOverride;
                MatMul.Quantized.GemmMinRowsOverride = 1;
                try
                {
                    double gemmErr = g.CompareLogits(m.ForwardAll(prompt, slow, slowCount), m.Decoder.VocabSize);
                    Assert.True(gemmErr < LogitTolerance, $"{name}: max abs logit error {gemmErr} with every product through the integer GEMM");
                }
                finally { MatMul.Quantized.GemmMinRowsOverride = gemmMinRows; }
            }
            if (g.Bf16Math)
            {
                // The bf16 arithmetic really ran: float32 logits are measurably further from this fixture.
                m.Precision = MatMulPrecision.Float32;
                double f32Err = g.CompareLogits(m.ForwardAll(prompt, slow, slowCount), m.Decoder.VocabSize);
                m.Precision = MatMulPrecision.BFloat16;
                Assert.True(f32Err > 10 * err, $"{name}: float32 logits are {f32Err} from the bf16-math fixture, bf16 math {err}");
            }

            var options = new GenerationOptions { MaxNewTokens = g.Ints("generated_ids").Length, StopAtEndTokens = false, Precision = m.Precision };
            var result = Generator.Generate(m.Decoder, prompt, slow, slowCount, options, []);
            Assert.Equal(g.Ints("generated_ids"), result.TokenIds);
            if (g.Has("generated_ids_attend"))
            {
                var attend = Generator.Generate(m.Decoder, prompt, slow, slowCount, options with { AttendSlowTokensWhileDecoding = true }, []);
                Assert.Equal(g.Ints("generated_ids_attend"), attend.TokenIds);
            }
        }
        finally
        {
            g.Close();
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static void AssertBf16MathFallsBackToFloat32(LoadedDecoder m, GoldenCase g)
    {
        var ids = g.Ints("input_ids");
        var fast = g.Floats("fast_tokens");
        var slow = g.Floats("slow_tokens");
        var prompt = DecoderPrompt.Build(m.Decoder, ids, fast, fast.Length / m.Decoder.Hidden);
        var f32 = m.ForwardAll(prompt, slow, slow.Length / m.Decoder.Hidden);
        m.Precision = MatMulPrecision.BFloat16;
        Assert.Equal(f32, m.ForwardAll(prompt, slow, slow.Length / m.Decoder.Hidden));
    }
}
