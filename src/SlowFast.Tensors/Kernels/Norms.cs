using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>Row normalisations over rows of length weight.Length; x may hold many rows. y may alias x.</summary>
public static unsafe class Norms
{
    /// <summary>Qwen2RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, in float32.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        int d = Check(x, weight, y);
        fixed (float* px = x) fixed (float* pw = weight) fixed (float* py = y)
        {
            for (long row = 0; row < x.Length / d; row++)
            {
                float* xr = px + row * d, yr = py + row * d;
                var acc = Vector512<float>.Zero;
                int i = 0;
                for (; i + 16 <= d; i += 16) { var v = Vector512.Load(xr + i); acc = Vector512.FusedMultiplyAdd(v, v, acc); }
                float sum = Vector512.Sum(acc);
                for (; i < d; i++) sum += xr[i] * xr[i];
                float inv = 1f / MathF.Sqrt(sum / d + eps);
                var invV = Vector512.Create(inv);
                for (i = 0; i + 16 <= d; i += 16) (Vector512.Load(xr + i) * invV * Vector512.Load(pw + i)).Store(yr + i);
                for (; i < d; i++) yr[i] = xr[i] * inv * pw[i];
            }
        }
    }

    /// <summary>torch LayerNorm over the last dimension: (x − mean) / sqrt(var + eps) · weight + bias, biased variance.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> y)
    {
        int d = Check(x, weight, y);
        if (bias.Length != d) throw new ArgumentException($"LayerNorm bias has {bias.Length} floats; expected {d}", nameof(bias));
        fixed (float* px = x) fixed (float* pw = weight) fixed (float* pb = bias) fixed (float* py = y)
        {
            for (long row = 0; row < x.Length / d; row++)
            {
                float* xr = px + row * d, yr = py + row * d;
                var (mean, inv) = LayerNormMoments(xr, d, eps);
                var meanV = Vector512.Create(mean);
                var invV = Vector512.Create(inv);
                int i = 0;
                for (; i + 16 <= d; i += 16)
                    Vector512.FusedMultiplyAdd((Vector512.Load(xr + i) - meanV) * invV, Vector512.Load(pw + i), Vector512.Load(pb + i)).Store(yr + i);
                for (; i < d; i++) yr[i] = MathF.FusedMultiplyAdd((xr[i] - mean) * inv, pw[i], pb[i]);
            }
        }
    }

    /// <summary>
    /// A row's mean and 1 / sqrt(biased variance + eps), in two passes (mean, then squared deviations)
    /// for accuracy when |mean| ≫ std. Every LayerNorm of the project (here and fused into the GEMM's
    /// input rounding) uses these, so they agree bit for bit.
    /// </summary>
    internal static (float Mean, float Inv) LayerNormMoments(float* x, int d, float eps)
    {
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i + 16 <= d; i += 16) acc += Vector512.Load(x + i);
        float sum = Vector512.Sum(acc);
        for (; i < d; i++) sum += x[i];
        float mean = sum / d;
        var meanV = Vector512.Create(mean);
        acc = Vector512<float>.Zero;
        for (i = 0; i + 16 <= d; i += 16) { var c = Vector512.Load(x + i) - meanV; acc = Vector512.FusedMultiplyAdd(c, c, acc); }
        float sq = Vector512.Sum(acc);
        for (; i < d; i++) { float c = x[i] - mean; sq += c * c; }
        return (mean, 1f / MathF.Sqrt(sq / d + eps));
    }

    private static int Check(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y)
    {
        int d = weight.Length;
        if (d == 0) throw new ArgumentException("norm weight is empty", nameof(weight));
        if (x.Length % d != 0) throw new ArgumentException($"x has {x.Length} floats, not a whole number of rows of {d}", nameof(x));
        if (y.Length != x.Length) throw new ArgumentException($"y has {y.Length} floats; expected {x.Length}", nameof(y));
        return d;
    }
}
