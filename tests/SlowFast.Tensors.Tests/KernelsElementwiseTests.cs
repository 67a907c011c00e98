using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

public class KernelsElementwiseTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(37)]
    [InlineData(896)]
    public void RmsNorm_matches_reference(int d)
    {
        var x = KernelsReference.Random(3 * d, 10, 4f);
        var w = KernelsReference.Random(d, 11);
        var y = new float[x.Length];
        Norms.RmsNorm(x, w, 1e-6f, y);
        KernelsReference.AssertClose(KernelsReference.RmsNorm(x, w, 1e-6f), y, 1e-6, 2e-6, "rms");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(37)]
    [InlineData(128)]
    public void LayerNorm_matches_reference_even_with_large_mean(int d)
    {
        var x = KernelsReference.Random(5 * d, 12, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 100f;
        var w = KernelsReference.Random(d, 13);
        var b = KernelsReference.Random(d, 14);
        var y = new float[x.Length];
        Norms.LayerNorm(x, w, b, 1e-6f, y);
        KernelsReference.AssertClose(KernelsReference.LayerNorm(x, w, b, 1e-6f), y, 2e-5, 2e-5, "ln");
    }

    [Fact]
    public void Erf_is_accurate_to_about_two_ulp_everywhere()
    {
        var xs = new List<float>();
        for (float v = -6f; v <= 6f; v += 0.000731f) xs.Add(v);
        for (double v = 1e-8; v < 1; v *= 1.01) { xs.Add((float)v); xs.Add((float)-v); }
        var arr = xs.ToArray();
        var copy = (float[])arr.Clone();
        Activations.Erf(copy);
        double worst = 0;
        for (int i = 0; i < arr.Length; i++)
        {
            double e = KernelsReference.Erf(arr[i]);
            worst = Math.Max(worst, Math.Abs(copy[i] - e) / Math.Abs(e));
        }
        Assert.True(worst < 3e-7, $"worst relative error {worst:E3}");
    }

    [Fact]
    public void Silu_is_accurate_across_the_exponential_range()
    {
        // SiLU is x·sigmoid(x) = x / (1 + e^−x): exercises the kernels' own exp over its whole range,
        // vector lanes and scalar tail alike (1 + 3 elements past a multiple of 16).
        var xs = new List<float>();
        for (float v = -80f; v <= 80f; v += 0.00731f) xs.Add(v);
        xs.AddRange(new[] { -87f, 88f, 100f, -0.0f, 1e-30f });
        while (xs.Count % 16 != 3) xs.Add(0.5f);
        var y = xs.ToArray();
        Activations.Silu(y);
        double worst = 0;
        for (int i = 0; i < xs.Count; i++)
        {
            double x = xs[i], e = x / (1 + Math.Exp(-x));
            if (e == 0) { Assert.Equal(0f, y[i]); continue; }
            worst = Math.Max(worst, Math.Abs(y[i] - e) / Math.Abs(e));
        }
        Assert.True(worst < 6e-7, $"worst relative error {worst:E3}");
    }

    [Fact]
    public void Gelu_silu_tanh_match_reference()
    {
        var x = KernelsReference.Random(1000 + 7, 15, 8f);
        var g = (float[])x.Clone(); Activations.Gelu(g);
        var s = (float[])x.Clone(); Activations.Silu(s);
        var t = (float[])x.Clone(); Activations.Tanh(t);
        var up = KernelsReference.Random(x.Length, 16);
        var sm = new float[x.Length]; Activations.SiluMul(x, up, sm);
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            double gelu = 0.5 * v * (1 + KernelsReference.Erf(v / Math.Sqrt(2)));
            double silu = v / (1 + Math.Exp(-v));
            Assert.True(Math.Abs(g[i] - gelu) <= 1e-9 + 1e-6 * Math.Abs(gelu), $"gelu({v}) = {g[i]}, want {gelu}");
            Assert.True(Math.Abs(s[i] - silu) <= 1e-6 + 1e-6 * Math.Abs(silu), $"silu({v}) = {s[i]}, want {silu}");
            Assert.True(Math.Abs(t[i] - Math.Tanh(v)) <= 1e-7 + 3e-7 * Math.Abs(Math.Tanh(v)), $"tanh({v}) = {t[i]}");
            Assert.True(Math.Abs(sm[i] - silu * up[i]) <= 1e-6 + 1e-6 * Math.Abs(silu * up[i]), $"silumul {i}");
        }
    }

    [Fact]
    public void Softmax_matches_reference_and_handles_masked_rows()
    {
        var row = KernelsReference.Random(53, 17, 30f);
        var expected = new double[row.Length];
        double max = row.Max(), sum = 0;
        for (int i = 0; i < row.Length; i++) { expected[i] = Math.Exp(row[i] - max); sum += expected[i]; }
        Softmax.InPlace(row);
        for (int i = 0; i < row.Length; i++) Assert.True(Math.Abs(row[i] - expected[i] / sum) < 1e-7 + 1e-6 * expected[i] / sum);

        var masked = new float[20];
        Array.Fill(masked, float.NegativeInfinity);
        Softmax.InPlace(masked);
        Assert.All(masked, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Elementwise_helpers_compute_what_they_say()
    {
        var a = KernelsReference.Random(35, 18);
        var b = KernelsReference.Random(35, 19);
        var y = new float[35];
        Elementwise.Add(a, b, y);
        for (int i = 0; i < 35; i++) Assert.Equal(a[i] + b[i], y[i]);
        Elementwise.Mul(a, b, y);
        for (int i = 0; i < 35; i++) Assert.Equal(a[i] * b[i], y[i]);
        var c = (float[])a.Clone();
        Elementwise.AddInPlace(c, b);
        for (int i = 0; i < 35; i++) Assert.Equal(a[i] + b[i], c[i]);
        c = (float[])a.Clone();
        Elementwise.Scale(c, 3f);
        for (int i = 0; i < 35; i++) Assert.Equal(a[i] * 3f, c[i]);
        c = (float[])a.Clone();
        Elementwise.AddScaledInPlace(c, b, 0.5f);
        for (int i = 0; i < 35; i++) Assert.Equal(MathF.FusedMultiplyAdd(b[i], 0.5f, a[i]), c[i]);
        Assert.Equal(a.Max(), Elementwise.Max(a));
        Assert.Throws<ArgumentException>(() => Elementwise.Add(a, new float[3], y));
    }
}
