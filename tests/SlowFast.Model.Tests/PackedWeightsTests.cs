using SlowFast.Model.Decoder;
using SlowFast.Model.Engine;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;
using static SlowFast.Model.Tests.VisionTestSupport;

namespace SlowFast.Model.Tests;

/// <summary>
/// Matrices packed once for the bfloat16 GEMM (the vision tower's at its first frame, the decoder's at
/// load) against the same matrices packed by every product. A packed matrix always takes the GEMM; one
/// as stored takes the row kernel up to <see cref="MatMul.Bf16RowsMaxRows"/> rows, which sums in another
/// order. These tests turn the row kernel off so that both sides run the same GEMM: packing once must
/// then change nothing, bit for bit. They set that process-wide bound, so they run alone.
/// </summary>
[Collection(GemmTunablesCollection.Name)]
public class PackedWeightsTests
{
    private static T WithoutRowKernel<T>(Func<T> run)
    {
        int saved = MatMul.Bf16RowsMaxRows;
        MatMul.Bf16RowsMaxRows = 0;
        try { return run(); }
        finally { MatMul.Bf16RowsMaxRows = saved; }
    }

    [Fact]
    public void Tower_weights_packed_once_give_the_same_tokens_bit_for_bit()
    {
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [VisionTowerTests.SmallVocab]));
        var tower = new ConvNextTower(model) { Precision = MatMulPrecision.BFloat16 };
        Assert.True(tower.PackWeights);
        var pixels = RandomFloats(2 * tower.FrameFloats, seed: 37, scale: 2f);
        var packed = new float[2 * tower.TokensPerFrame * tower.Channels];
        var perCall = new float[packed.Length];
        WithoutRowKernel(() =>
        {
            tower.EncodeFrames(pixels, 2, packed);
            tower.PackWeights = false;
            tower.EncodeFrames(pixels, 2, perCall);
            return 0;
        });
        Assert.Equal(perCall, packed);
    }

    [Fact]
    public void Without_packed_vision_weights_a_video_gives_the_same_tokens()
    {
        // EngineOptions.PackVisionWeights (--no-packed-vision) reaches the tower.
        string dir = TinyCheckpoints.Get("tiny", 5, DType.BF16);
        var pixels = TestData.Normal(3 * 3 * 128 * 128, 1);
        var bf16 = new EngineOptions { DefaultPrecision = MatMulPrecision.BFloat16 };
        using var packed = SlowFastModel.Load(dir, engine: bf16);
        using var lean = SlowFastModel.Load(dir, engine: bf16 with { PackVisionWeights = false });
        Assert.True(packed.Vision.Tower.PackWeights);
        Assert.False(lean.Vision.Tower.PackWeights);
        var (a, b) = WithoutRowKernel(() => (packed.EncodeVideo(pixels, 3, precision: MatMulPrecision.BFloat16),
            lean.EncodeVideo(pixels, 3, precision: MatMulPrecision.BFloat16)));
        Assert.Equal(a.Slow, b.Slow);
        Assert.Equal(a.Fast, b.Fast);
    }

    [Fact]
    public void A_bf16_model_packs_its_decoder_at_load_and_gives_the_same_logits_bit_for_bit()
    {
        string dir = TinyCheckpoints.Get("tiny", 5, DType.BF16);
        var bf16 = new EngineOptions { DefaultPrecision = MatMulPrecision.BFloat16 };
        using var packed = SlowFastModel.Load(dir, engine: bf16);
        using var stored = SlowFastModel.Load(dir, engine: bf16 with { PackDecoderWeights = false });
        using var f32 = SlowFastModel.Load(dir, engine: bf16 with { DefaultPrecision = MatMulPrecision.Float32 });
        bool gemm = MatMul.BFloat16Supported;
        foreach (var layer in packed.Decoder.Weights.Layers)
        {
            Assert.Equal(gemm, layer.QProj.IsPackedForBFloat16);
            Assert.Equal(gemm, layer.DownProj.IsPackedForBFloat16);
            Assert.Equal(gemm, layer.CrossAttention?.KvProj.IsPackedForBFloat16 ?? gemm);
        }
        Assert.Equal(gemm && !packed.Config.TieWordEmbeddings, packed.Decoder.Weights.LmHead.IsPackedForBFloat16);
        Assert.StartsWith(gemm ? "decoder matrices packed for the bf16 GEMM in " : "decoder matrices not packed: this CPU has no", packed.DecoderPacking);
        // Off when asked, and in float32 arithmetic (where nothing would read the strips).
        Assert.False(stored.Decoder.Weights.Layers[0].GateProj.IsPackedForBFloat16);
        Assert.False(f32.Decoder.Weights.Layers[0].GateProj.IsPackedForBFloat16);
        Assert.Equal("decoder matrices as stored", stored.DecoderPacking);

        var ids = packed.QuestionPrompt("What is in the picture, and what happens after it, in some detail?", withVisual: false);
        Assert.True(ids.Length > 16);
        var (a, b) = WithoutRowKernel(() => (packed.Forward(ids, null, precision: MatMulPrecision.BFloat16), stored.Forward(ids, null, precision: MatMulPrecision.BFloat16)));
        Assert.Equal(b.Logits, a.Logits);
        // Float32 products read the stored matrices, whose pages packing released: mapped back, the same numbers.
        Assert.Equal(f32.Forward(ids, null).Logits, packed.Forward(ids, null, precision: MatMulPrecision.Float32).Logits);
    }

    [Fact]
    public void Packing_at_load_allocates_what_the_directory_counts()
    {
        string dir = TinyCheckpoints.Get("tiny", 5, DType.BF16);
        long Load(bool pack)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            using var model = ModelDirectory.Open(dir, packDecoder: pack);
            _ = DecoderWeights.From(model);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Load(true);   // first-use allocations (JIT, statics) out of the way
        long stored = Load(false), packed = Load(true);
        using var probe = ModelDirectory.Open(dir, packDecoder: true);
        long counted = probe.DecoderPackedBytes();
        Assert.True(counted > 0);
        if (!MatMul.BFloat16Supported) { Assert.InRange(packed - stored, -64 * 1024, 64 * 1024); return; }
        // Up to object headers and the per-matrix owner arrays.
        Assert.InRange(packed - stored, counted, counted + 64 * 1024);
    }

    [Fact]
    public void Packing_at_load_is_declined_without_the_gemm_for_quantized_weights_or_when_memory_is_short()
    {
        Assert.Null(ModelDirectory.WhyNotPack(true, false, 12_000_000_000, 20_000_000_000));
        Assert.Contains("AVX512-BF16", ModelDirectory.WhyNotPack(false, false, 1, 20_000_000_000));
        Assert.Contains("quantized", ModelDirectory.WhyNotPack(true, true, 1, 20_000_000_000));
        Assert.Contains("not stored as BF16", ModelDirectory.WhyNotPack(true, false, 0, 20_000_000_000));
        Assert.Contains("more than 3/4 of the 16.0 GB available", ModelDirectory.WhyNotPack(true, false, 12_000_000_001, 16_000_000_000));
        Assert.Null(ModelDirectory.WhyNotPack(true, false, 12_000_000_000, 16_000_000_000));

        // A float32 checkpoint has nothing to pack, and says so.
        using (var f32 = ModelDirectory.Open(TinyCheckpoints.Get(5), packDecoder: true))
            Assert.Equal(MatMul.BFloat16Supported ? "the decoder's matrices are not stored as BF16" : "this CPU has no bfloat16 GEMM (AVX512-BF16)", f32.PackingDeclined);

        // A quantized model keeps its blocks.
        string dir = TinyCheckpoints.Get("tiny", 5, DType.BF16);
        using var model = ModelDirectory.Open(dir, Tensors.Quantization.BlockFormat.Q8_0, packDecoder: true);
        Assert.False(model.PackDecoderAtLoad);
        Assert.Equal(MatMul.BFloat16Supported ? "the decoder's weights are quantized" : "this CPU has no bfloat16 GEMM (AVX512-BF16)", model.PackingDeclined);
    }
}
