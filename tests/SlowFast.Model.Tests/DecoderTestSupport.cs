using System.Collections.Concurrent;
using SlowFast.Model.Decoder;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Tests;

/// <summary>
/// Tiny checkpoints for the decoder/generation/model tests, created once per test run by ModelCreator
/// (deterministic from preset + seed + overrides) in a temporary folder removed at exit.
/// </summary>
internal static class TinyCheckpoints
{
    private static readonly string Root = Path.Combine(Path.GetTempPath(), $"slowfast-model-tests-{Environment.ProcessId}");
    private static readonly ConcurrentDictionary<string, Lazy<string>> Created = new();

    static TinyCheckpoints()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true); } catch (IOException) { }
        };
        RemoveLeftovers();
    }

    /// <summary>
    /// Removes the folders of earlier test processes that were killed before their exit handler ran (about
    /// 1 GB each): those whose process no longer exists.
    /// </summary>
    private static void RemoveLeftovers()
    {
        foreach (var dir in Directory.EnumerateDirectories(Path.GetTempPath(), "slowfast-model-tests-*"))
        {
            if (!int.TryParse(Path.GetFileName(dir)["slowfast-model-tests-".Length..], out int pid) || pid == Environment.ProcessId) continue;
            try { using var _ = System.Diagnostics.Process.GetProcessById(pid); }
            catch (ArgumentException)
            {
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
    }

    /// <summary>A small vocabulary keeps the scalar reference and lm_head fast in unit tests.</summary>
    public static readonly string[] SmallVocab = ["vocab_size=400"];

    /// <summary>The checkpoint directory for the tiny preset with these overrides (created on first use).</summary>
    public static string Get(ulong seed, params string[] overrides) => Get("tiny", seed, DType.F32, overrides);

    /// <summary>The checkpoint for a preset, seed, dtype and "key=value" overrides, made once per test run.</summary>
    public static string Get(string preset, ulong seed, DType dtype, params string[] overrides)
    {
        string key = $"{preset}|{seed}|{dtype}|{string.Join("|", overrides)}";
        return Created.GetOrAdd(key, k => new Lazy<string>(() =>
        {
            string dir = Path.Combine(Root, $"m{Math.Abs(k.GetHashCode())}-{Guid.NewGuid():N}");
            var config = SlowFastConfig.WithOverrides(Presets.Get(preset), overrides, "test");
            ModelCreator.Create(config, new ModelCreator.Options(dir, dtype, seed, TokenizationTestSupport.TokenizerJsonPath()));
            return dir;
        })).Value;
    }

    /// <summary>A fresh copy (for tests that edit the checkpoint).</summary>
    public static string Copy(string dir)
    {
        string copy = Path.Combine(Root, "copy-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        return copy;
    }
}

/// <summary>Deterministic pseudo-random inputs for tests.</summary>
internal static class TestData
{
    public static float[] Normal(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            a[i] = scale * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return a;
    }

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }

    public static double MaxAbs(ReadOnlySpan<float> a)
    {
        double m = 0;
        foreach (var x in a) m = Math.Max(m, Math.Abs(x));
        return m;
    }
}

/// <summary>An opened checkpoint with its decoder (dispose to unmap).</summary>
internal sealed class LoadedDecoder : IDisposable
{
    public ModelDirectory Model { get; }
    public Qwen2Decoder Decoder { get; }
    public SlowFastConfig Config => Model.Config;
    /// <summary>Arithmetic of <see cref="ForwardAll"/> (the test's choice; the decoder itself holds none).</summary>
    public MatMulPrecision Precision { get; set; }

    /// <param name="packDecoder">Pack the decoder's BF16 matrices at load (<see cref="ModelDirectory.Open"/>), as a bf16 model loads.</param>
    public LoadedDecoder(string dir, bool packDecoder = false)
    {
        Model = ModelDirectory.Open(dir, packDecoder: packDecoder);
        Decoder = new Qwen2Decoder(Model.Config, DecoderWeights.From(Model));
    }

    /// <summary>All-position logits [P, V] of a prompt in one pass.</summary>
    public float[] ForwardAll(DecoderPrompt prompt, float[]? slow, int slowCount)
    {
        var cache = Decoder.CreateCache(prompt.Length);
        var logits = new float[prompt.Length * Decoder.VocabSize];
        var kv = slow != null ? Decoder.CreateSlowKeyValues(slow, slowCount) : null;
        Decoder.Forward(prompt.Embeddings, prompt.Length, cache, CrossAttentionRows.ForPrompt(Config, prompt.TokenTypes), kv, LogitRows.All, logits, Precision);
        return logits;
    }

    public void Dispose() => Model.Dispose();
}
