using SlowFast.Tensors;

namespace SlowFast.Model.Tests;

/// <summary>
/// Tiny checkpoints for the vision tests, made once per (preset, seed, dtype, overrides) per test run
/// with <see cref="ModelCreator"/> in a temporary folder that is deleted when the process exits.
/// </summary>
internal static class VisionTestSupport
{
    /// <summary>The directory of a checkpoint made from <paramref name="preset"/> with "key=value" overrides (shared with the decoder tests).</summary>
    public static string Checkpoint(string preset = "tiny", ulong seed = 1, DType dtype = DType.F32, params string[] overrides) =>
        TinyCheckpoints.Get(preset, seed, dtype, overrides);

    /// <summary>Deterministic values uniform in [-scale, scale).</summary>
    public static float[] RandomFloats(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: expected {expected.Length} values, got {actual.Length}");
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)expected[i] - actual[i]);
            if (double.IsNaN(d)) { worst = double.NaN; worstAt = i; break; }
            if (d > worst) { worst = d; worstAt = i; }
        }
        Assert.True(worst <= tolerance, $"{what}: max abs error {worst:G4} at {worstAt} (expected {(worstAt >= 0 ? expected[worstAt] : 0)}, got {(worstAt >= 0 ? actual[worstAt] : 0)}) exceeds {tolerance:G3}");
    }

    public static double MaxAbs(ReadOnlySpan<float> x)
    {
        double m = 0;
        foreach (var v in x) m = Math.Max(m, Math.Abs(v));
        return m;
    }
}
