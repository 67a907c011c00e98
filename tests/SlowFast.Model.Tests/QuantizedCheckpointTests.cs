using System.Text.Json.Nodes;
using SlowFast.Model.Decoder;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;
using SlowFast.Model.Quantization;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Model.Tests;

/// <summary>
/// <c>slowfast quantize</c>'s checkpoints (CheckpointQuantizer): what they hold, that they load and
/// answer like quantizing at load, and that broken ones are refused with one-line errors.
/// </summary>
public class QuantizedCheckpointTests
{
    private static string Original() => TinyCheckpoints.Get(31);

    private static string Quantized(BlockFormat format, bool vision = false)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"slowfast-quant-{Environment.ProcessId}-{Guid.NewGuid():N}");
        CheckpointQuantizer.Run(Original(), dir, format, vision);
        return dir;
    }

    [Theory]
    [InlineData(BlockFormat.Q8_0)]
    [InlineData(BlockFormat.Q4_0)]
    public void Quantize_writes_the_blocks_of_every_linear_weight_and_copies_the_rest(BlockFormat format)
    {
        string dir = Quantized(format);
        using var original = ModelDirectory.Open(Original());
        using var quantized = ModelDirectory.Open(dir);
        Assert.NotNull(quantized.Quantization);
        Assert.Equal(format, quantized.Quantization!.Format);
        var expected = original.Layout.Where(w => CheckpointQuantization.IsQuantizable(w, false)).Select(w => w.Name).ToHashSet();
        Assert.Equal(expected.Order(), quantized.Quantization.Tensors.Order());
        Assert.Contains("lm_head.weight", expected);
        Assert.Contains("model.layers.0.mlp.down_proj.weight", expected);
        Assert.DoesNotContain("model.embed_tokens.weight", expected);

        foreach (var e in original.Weights.Entries)
        {
            var stored = quantized.Weights.Get(e.Name);
            if (!expected.Contains(e.Name))
            {
                Assert.Equal(e.DType, stored.DType);
                Assert.True(original.Weights.Get(e.Name).Bytes.SequenceEqual(stored.Bytes), e.Name);
                continue;
            }
            // The stored blocks are exactly what the quantizer makes of the original rows.
            var w = quantized.Linear(e.Name);
            Assert.Equal(format, w.Format);
            var source = WeightMatrix.From(original.Weights.Get(e.Name));
            var row = new float[source.Cols];
            var payload = new byte[format.RowBytes(source.Cols)];
            var scales = new Half[source.Cols / 32];
            foreach (int r in new[] { 0, source.Rows / 2, source.Rows - 1 })
            {
                source.ReadRow(r, 0, row);
                BlockQuantizer.QuantizeRow(format, row, payload, scales);
                unsafe
                {
                    Assert.True(new ReadOnlySpan<byte>(w.RowPointer(r), payload.Length).SequenceEqual(payload), $"{e.Name} row {r}");
                    Assert.True(new ReadOnlySpan<Half>(w.RowScales(r), scales.Length).SequenceEqual(scales), $"{e.Name} row {r} scales");
                }
            }
        }
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.json")));
        // 32 float32 (128 bytes) become 34 (q8_0) or 18 (q4_0) bytes.
        long before = original.Weights.Entries.Where(e => expected.Contains(e.Name)).Sum(e => e.ByteLength);
        long after = quantized.Weights.Entries.Where(e => expected.Contains(e.Name) || expected.Contains(e.Name.Replace(".scales", ""))).Sum(e => e.ByteLength);
        Assert.Equal(before / 128 * (format == BlockFormat.Q8_0 ? 34 : 18), after);
    }

    [Theory]
    [InlineData(BlockFormat.Q8_0)]
    [InlineData(BlockFormat.Q4_0)]
    public void A_quantized_checkpoint_answers_as_the_original_quantized_at_load(BlockFormat format)
    {
        var options = new GenerationOptions { MaxNewTokens = 5, StopAtEndTokens = false };
        using var stored = SlowFastModel.Load(Quantized(format));
        using var atLoad = SlowFastModel.Load(Original(), engine: new EngineOptions { QuantizeWeights = format });
        var a = stored.StartConversation().Ask("What happens next?", options);
        var b = atLoad.StartConversation().Ask("What happens next?", options);
        Assert.Equal(5, a.TokenIds.Length);
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.True(stored.Decoder.Weights.Layers[0].QProj.IsQuantized);
        Assert.True(atLoad.Decoder.Weights.Layers[0].QProj.IsQuantized);
        Assert.Equal(stored.Decoder.Weights.Layers[0].QProj.ByteLength, atLoad.Decoder.Weights.Layers[0].QProj.ByteLength);
    }

    [Fact]
    public void Q8_logits_stay_close_to_the_original()
    {
        using var original = ModelDirectory.Open(Original());
        using var q8 = ModelDirectory.Open(Original(), BlockFormat.Q8_0);
        var ids = new[] { 1, 5, 9, 42, 7, 300, 11 };
        float[] Logits(ModelDirectory m)
        {
            var decoder = new Qwen2Decoder(m.Config, DecoderWeights.From(m));
            var x = new float[ids.Length * decoder.Hidden];
            decoder.Embed(ids, x);
            var logits = new float[decoder.VocabSize];
            decoder.Forward(x, ids.Length, decoder.CreateCache(16), [], null, LogitRows.Last, logits, MatMulPrecision.Float32);
            return logits;
        }
        var a = Logits(original);
        var b = Logits(q8);
        double err = 0, norm = 0;
        for (int i = 0; i < a.Length; i++) { err += (a[i] - b[i]) * (double)(a[i] - b[i]); norm += a[i] * (double)a[i]; }
        // 8-bit weights and inputs: about 1% relative error through 4 random layers.
        Assert.True(Math.Sqrt(err / norm) < 0.05, $"relative error {Math.Sqrt(err / norm)}");
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Quantizing_a_quantized_checkpoint_or_into_itself_is_refused()
    {
        string dir = Quantized(BlockFormat.Q8_0);
        var e = Assert.Throws<UserError>(() => CheckpointQuantizer.Run(dir, dir + "-again", BlockFormat.Q4_0, false));
        Assert.Contains("quantized already", e.Message);
        Assert.Throws<UserError>(() => CheckpointQuantizer.Run(Original(), Original(), BlockFormat.Q4_0, false));
    }

    // ------------------------------------------------------------------ broken checkpoints

    private static void EditConfig(string dir, Action<JsonObject> edit)
    {
        string path = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config["quantization"]!.AsObject());
        File.WriteAllText(path, config.ToJsonString());
    }

    /// <summary>Rewrites the checkpoint's single safetensors file with <paramref name="edit"/> applied to its tensors.</summary>
    private static void EditTensors(string dir, Func<List<(TensorSpec Spec, byte[] Data)>, List<(TensorSpec Spec, byte[] Data)>> edit)
    {
        string path = Path.Combine(dir, CheckpointWriter.SingleFileName);
        List<(TensorSpec, byte[])> tensors;
        using (var f = SafetensorsFile.Open(path))
            tensors = f.Entries.Select(e => (new TensorSpec(e.Name, e.DType, e.Shape), f.Get(e.Name).Bytes.ToArray())).ToList();
        SafetensorsWriter.Write(path, edit(tensors));
    }

    private static void AssertOneLineError(string dir, params string[] mentions)
    {
        var e = Assert.Throws<UserError>(() => ModelDirectory.Open(dir).Dispose());
        Assert.DoesNotContain('\n', e.Message);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
    }

    [Fact]
    public void A_wrong_block_size_is_refused()
    {
        string dir = Quantized(BlockFormat.Q4_0);
        EditConfig(dir, q => q["block_size"] = 64);
        AssertOneLineError(dir, "block_size 64");
    }

    [Fact]
    public void An_unknown_format_is_refused()
    {
        string dir = Quantized(BlockFormat.Q4_0);
        EditConfig(dir, q => q["format"] = "q5_1");
        AssertOneLineError(dir, "q5_1");
    }

    [Fact]
    public void Missing_scales_are_refused()
    {
        string dir = Quantized(BlockFormat.Q8_0);
        const string name = "model.layers.1.mlp.up_proj.weight";
        EditTensors(dir, t => t.Where(x => x.Spec.Name != name + ".scales").ToList());
        AssertOneLineError(dir, name + ".scales");
    }

    [Fact]
    public void A_payload_whose_shape_lies_is_refused()
    {
        string dir = Quantized(BlockFormat.Q4_0);
        const string name = "model.layers.0.self_attn.o_proj.weight";
        // The q8_0 shape ([N, K]) where config.json says q4_0 ([N, K/2]).
        EditTensors(dir, t => t.Select(x => x.Spec.Name == name
            ? (x.Spec with { Shape = [x.Spec.Shape[0] / 2, x.Spec.Shape[1] * 2] }, x.Data) : x).ToList());
        AssertOneLineError(dir, name, "U8");
    }

    [Fact]
    public void Scales_whose_shape_lies_are_refused()
    {
        string dir = Quantized(BlockFormat.Q8_0);
        const string name = "lm_head.weight.scales";
        EditTensors(dir, t => t.Select(x => x.Spec.Name == name
            ? (x.Spec with { Shape = [x.Spec.Shape[0] * 2, x.Spec.Shape[1] / 2] }, x.Data) : x).ToList());
        AssertOneLineError(dir, name, "F16");
    }

    [Fact]
    public void A_listed_tensor_that_cannot_be_quantized_is_refused()
    {
        string dir = Quantized(BlockFormat.Q8_0);
        EditConfig(dir, q => q["tensors"]!.AsArray().Add("model.embed_tokens.weight"));
        AssertOneLineError(dir, "model.embed_tokens.weight");
    }
}
