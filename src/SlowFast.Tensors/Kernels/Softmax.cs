using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>Numerically stable softmax over a row.</summary>
public static unsafe class Softmax
{
    /// <summary>row ← exp(row − max) / Σ exp(row − max), in float32. A row that is entirely −∞ (fully masked) becomes all zeros instead of NaN.</summary>
    public static void InPlace(Span<float> row)
    {
        int n = row.Length;
        if (n == 0) return;
        float max = Elementwise.Max(row);
        if (float.IsNegativeInfinity(max)) { row.Clear(); return; }
        fixed (float* p = row) Elementwise.Scale(row, 1f / Numerators(p, n, max));
    }

    /// <summary>
    /// p[j] ← exp(p[j] − max) for j &lt; n, returning their sum: the softmax before its division, for
    /// callers that divide later (attention scales each head's output once instead of every probability).
    /// <paramref name="max"/> is the largest p[j], finite.
    /// </summary>
    internal static float Numerators(float* p, int n, float max)
    {
        var maxV = Vector512.Create(max);
        var sumV = Vector512<float>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var e = VectorMath.Exp(Vector512.Load(p + i) - maxV);
            e.Store(p + i);
            sumV += e;
        }
        float sum = Vector512.Sum(sumV);
        for (; i < n; i++) { float e = VectorMath.Exp(p[i] - max); p[i] = e; sum += e; }
        return sum;
    }
}
