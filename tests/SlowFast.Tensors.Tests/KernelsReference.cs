namespace SlowFast.Tensors.Tests;

/// <summary>
/// Straightforward scalar (double-accumulating) implementations of every kernel, written from the
/// definitions, used as the independent reference for the vectorised kernels.
/// </summary>
internal static class KernelsReference
{
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>y = x·Wᵀ + b with W given as float (already dequantised).</summary>
    public static float[] Linear(float[] x, int m, float[] w, int n, int k, float[]? bias)
    {
        var y = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = bias?[j] ?? 0;
                for (int kk = 0; kk < k; kk++) s += (double)x[i * k + kk] * w[j * k + kk];
                y[i * n + j] = (float)s;
            }
        return y;
    }

    public static float[] RmsNorm(float[] x, float[] w, float eps)
    {
        int d = w.Length;
        var y = new float[x.Length];
        for (int r = 0; r < x.Length / d; r++)
        {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double)x[r * d + i] * x[r * d + i];
            double inv = 1 / Math.Sqrt(ss / d + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = (float)(x[r * d + i] * inv * w[i]);
        }
        return y;
    }

    public static float[] LayerNorm(float[] x, float[] w, float[] b, float eps)
    {
        int d = w.Length;
        var y = new float[x.Length];
        for (int r = 0; r < x.Length / d; r++)
        {
            double mean = 0, v = 0;
            for (int i = 0; i < d; i++) mean += x[r * d + i];
            mean /= d;
            for (int i = 0; i < d; i++) v += (x[r * d + i] - mean) * (x[r * d + i] - mean);
            v /= d;
            for (int i = 0; i < d; i++) y[r * d + i] = (float)((x[r * d + i] - mean) / Math.Sqrt(v + eps) * w[i] + b[i]);
        }
        return y;
    }

    /// <summary>erf from its Taylor series (|x| &lt; 3) or continued fraction for erfc, in double.</summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x);
        double r;
        if (a < 3)
        {
            double term = a, sum = a;
            for (int n = 1; n < 200; n++)
            {
                term *= -a * a / n;
                sum += term / (2 * n + 1);
                if (Math.Abs(term) < 1e-18) break;
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) evaluated bottom-up.
            double f = a;
            for (int n = 60; n >= 1; n--) f = a + n / 2.0 / f;
            r = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }

    public static float[] Attention(float[] q, int[]? positions, float[] k, float[] v, int t, int s, int hq, int hkv, int d)
    {
        var o = new float[t * hq * d];
        int group = hq / hkv;
        var scores = new double[s];
        for (int ti = 0; ti < t; ti++)
            for (int h = 0; h < hq; h++)
            {
                int kvh = h / group;
                int last = positions == null ? s - 1 : positions[ti];
                double max = double.NegativeInfinity;
                for (int j = 0; j <= last; j++)
                {
                    double dot = 0;
                    for (int dd = 0; dd < d; dd++) dot += (double)q[(ti * hq + h) * d + dd] * k[(j * hkv + kvh) * d + dd];
                    scores[j] = dot / Math.Sqrt(d);
                    max = Math.Max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j <= last; j++) { scores[j] = Math.Exp(scores[j] - max); sum += scores[j]; }
                for (int dd = 0; dd < d; dd++)
                {
                    double acc = 0;
                    for (int j = 0; j <= last; j++) acc += scores[j] * v[(j * hkv + kvh) * d + dd];
                    o[(ti * hq + h) * d + dd] = (float)(acc / sum);
                }
            }
        return o;
    }

    public static float[] DepthwiseHwc(float[] x, int h, int w, int c, float[] weight, float[] bias, int k)
    {
        var y = new float[x.Length];
        int pad = k / 2;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                for (int ch = 0; ch < c; ch++)
                {
                    double s = bias[ch];
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++)
                        {
                            int iy = i + dy - pad, ix = j + dx - pad;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            s += (double)x[(iy * w + ix) * c + ch] * weight[(ch * k + dy) * k + dx];
                        }
                    y[(i * w + j) * c + ch] = (float)s;
                }
        return y;
    }

    /// <summary>Direct stride-p p×p convolution of a [C, H, W] image with weight [Cout, C, p, p]; output [(H/p)(W/p), Cout].</summary>
    public static float[] StridedConvChw(float[] x, int c, int h, int w, float[] weight, float[] bias, int cout, int p)
    {
        int gh = h / p, gw = w / p;
        var y = new float[gh * gw * cout];
        for (int oy = 0; oy < gh; oy++)
            for (int ox = 0; ox < gw; ox++)
                for (int co = 0; co < cout; co++)
                {
                    double s = bias[co];
                    for (int ch = 0; ch < c; ch++)
                        for (int ky = 0; ky < p; ky++)
                            for (int kx = 0; kx < p; kx++)
                                s += (double)x[(ch * h + oy * p + ky) * w + ox * p + kx] * weight[((co * c + ch) * p + ky) * p + kx];
                    y[(oy * gw + ox) * cout + co] = (float)s;
                }
        return y;
    }

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double absTol, double relTol, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            double tol = absTol + relTol * Math.Abs(e);
            if (!(Math.Abs(e - a) <= tol))
                Assert.Fail($"{what}[{i}]: expected {e:R}, got {a:R} (|diff| {Math.Abs(e - a):E3} > tol {tol:E3})");
        }
    }
}
