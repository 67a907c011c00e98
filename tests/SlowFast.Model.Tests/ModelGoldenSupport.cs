using System.Text.Json;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Model.Tests;

/// <summary>
/// One golden case written by tools/reference/make_golden.py (an independent PyTorch implementation of
/// the reference's semantics): its metadata, and its tensors as plain arrays.
/// </summary>
internal sealed class GoldenCase
{
    public required string Name { get; init; }
    public required JsonElement Meta { get; init; }
    public required Dictionary<string, TensorView> Tensors { get; init; }
    private SafetensorsFile? _file;

    public static string Directory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden");

    public static IEnumerable<string> Names() =>
        System.IO.Directory.Exists(Directory)
            ? System.IO.Directory.GetFiles(Directory, "*.safetensors").Select(p => Path.GetFileNameWithoutExtension(p)!).Order()
            : [];

    public static GoldenCase Open(string name)
    {
        var file = SafetensorsFile.Open(Path.Combine(Directory, name + ".safetensors"));
        var meta = JsonDocument.Parse(file.Metadata["case"]).RootElement;
        return new GoldenCase
        {
            Name = name,
            Meta = meta,
            Tensors = file.Entries.ToDictionary(e => e.Name, e => file.View(e)),
            _file = file,
        };
    }

    public bool Has(string tensor) => Tensors.ContainsKey(tensor);
    public float[] Floats(string tensor) => Tensors[tensor].ToFloatArray();
    public int[] Ints(string tensor) => Tensors[tensor].AsSpan<long>().ToArray().Select(checked_ => checked((int)checked_)).ToArray();

    public string Input => Meta.GetProperty("input").GetString()!;
    public bool HasVisual => Input != "none";
    /// <summary>The case was computed in bf16 math (every product's input rounded to bfloat16).</summary>
    public bool Bf16Math => Meta.TryGetProperty("bf16_math", out var v) && v.GetBoolean();
    public int Frames => Meta.GetProperty("frames").GetInt32();
    /// <summary>The design the logits were computed in (the stored fast/slow tokens are always the slow-fast ones).</summary>
    public VisualDesign Design => Meta.TryGetProperty("design", out var d) && d.GetString() == "baseline" ? VisualDesign.Baseline : VisualDesign.SlowFast;

    /// <summary>The block format the decoder was quantized to (<c>slowfast quantize</c>), or null.</summary>
    public BlockFormat? Quantize =>
        Meta.TryGetProperty("quantize", out var q) && q.ValueKind == JsonValueKind.String ? BlockFormats.Parse(q.GetString()!) : null;

    /// <summary>Re-creates the exact checkpoint the golden script read (deterministic creation, then quantization where the case has it).</summary>
    public string CreateCheckpoint(string root)
    {
        var overrides = Meta.GetProperty("overrides").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var config = SlowFastConfig.WithOverrides(Presets.Get(Meta.GetProperty("preset").GetString()!), overrides, Name);
        var dtype = Meta.GetProperty("dtype").GetString() == "bf16" ? DType.BF16 : DType.F32;
        string dir = Path.Combine(root, Name);
        ModelCreator.Create(config, new ModelCreator.Options(dir, dtype, Meta.GetProperty("seed").GetUInt64(), TokenizationTestSupport.TokenizerJsonPath()));
        if (Quantize is not { } format) return dir;
        string quantized = dir + "-" + format.Name();
        SlowFast.Model.Quantization.CheckpointQuantizer.Run(dir, quantized, format, includeVision: false);
        return quantized;
    }

    /// <summary>Asserts the checkpoint's first weights are the ones the fixture was computed from.</summary>
    public void AssertFingerprint(ModelDirectory model)
    {
        var names = Meta.GetProperty("fingerprint_names").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var fingerprint = Floats("fingerprint");
        int per = fingerprint.Length / names.Length;
        for (int i = 0; i < names.Length; i++)
        {
            var first = new float[per];
            model.Get(names[i]).ToFloat(0, first);
            Assert.True(first.AsSpan().SequenceEqual(fingerprint.AsSpan(i * per, per)), $"{Name}: checkpoint weights of {names[i]} differ from the fixture's");
        }
    }

    /// <summary>Compares all-position logits [P, V] with the fixture's summaries; returns the max abs error.</summary>
    public double CompareLogits(float[] logits, int vocab)
    {
        var lse = Floats("logits_lse");
        var argmax = Ints("logits_argmax");
        var cols = Ints("logits_cols");
        var sub = Floats("logits_sub");
        int P = lse.Length;
        Assert.Equal(P * vocab, logits.Length);
        double maxErr = 0;
        for (int t = 0; t < P; t++)
        {
            var row = logits.AsSpan(t * vocab, vocab);
            double max = double.NegativeInfinity, sum = 0;
            foreach (var v in row) max = Math.Max(max, v);
            foreach (var v in row) sum += Math.Exp(v - max);
            maxErr = Math.Max(maxErr, Math.Abs(max + Math.Log(sum) - lse[t]));
            for (int j = 0; j < cols.Length; j++) maxErr = Math.Max(maxErr, Math.Abs(row[cols[j]] - sub[t * cols.Length + j]));
            int best = Generation.Sampler.ArgMax(row);
            // An argmax may only differ where the fixture's top two are tied within the tolerance.
            if (best != argmax[t]) Assert.True(Math.Abs(row[best] - row[argmax[t]]) < 1e-3, $"{Name}: position {t} argmax {best}, fixture {argmax[t]}");
        }
        if (Has("last_logits")) maxErr = Math.Max(maxErr, TestData.MaxAbsDiff(logits.AsSpan((P - 1) * vocab, vocab), Floats("last_logits")));
        return maxErr;
    }

    public void Close() => _file?.Dispose();
}
