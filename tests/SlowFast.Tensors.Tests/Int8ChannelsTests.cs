using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// int8 products with one scale per input row and one per weight row (<see cref="MatMul.LinearInt8"/>):
/// the integer arithmetic is exact, so the generated kernel must equal a plain scalar version of the
/// same rules bit for bit, on every shape the tiling has edges for.
/// </summary>
public class Int8ChannelsTests
{
    /// <summary>round(v · (127 / max|v|)) to nearest even, and max|v| / 127: the rule, written out.</summary>
    private static (int[] Q, float Scale) QuantizeRow(ReadOnlySpan<float> v)
    {
        float max = 0;
        foreach (float x in v) max = MathF.Max(max, MathF.Abs(x));
        float inverse = max > 0 ? 127f / max : 0f;
        var q = new int[v.Length];
        for (int i = 0; i < v.Length; i++) q[i] = (int)MathF.Round(v[i] * inverse, MidpointRounding.ToEven);
        return (q, max / 127f);
    }

    private static float[] Reference(float[] x, int m, float[] w, int n, int k, float[]? bias)
    {
        var y = new float[m * n];
        var wq = Enumerable.Range(0, n).Select(j => QuantizeRow(w.AsSpan(j * k, k))).ToArray();
        for (int i = 0; i < m; i++)
        {
            var (q, d) = QuantizeRow(x.AsSpan(i * k, k));
            for (int j = 0; j < n; j++)
            {
                long dot = 0;
                for (int t = 0; t < k; t++) dot += q[t] * wq[j].Q[t];
                float v = (float)dot * (d * wq[j].Scale);
                y[i * n + j] = bias != null ? v + bias[j] : v;
            }
        }
        return y;
    }

    [Theory]
    [InlineData(1, 5, 3, false)]      // one row, K not a whole quad, one masked group
    [InlineData(7, 33, 70, true)]     // a full tile and a 1-row rest; two strips, the second of 6 columns
    [InlineData(13, 64, 64, true)]
    [InlineData(100, 130, 129, false)] // two row blocks, three strips, quads with a tail after the unrolled loop
    [InlineData(200, 256, 192, true)]
    public void Equals_the_scalar_rules_bit_for_bit(int m, int k, int n, bool withBias)
    {
        if (!MatMul.Int8ChannelsSupported) return;
        var x = KernelsReference.Random(m * k, 1 + m, 3f);
        var wf = KernelsReference.Random(n * k, 2 + n, 0.05f);
        var bias = withBias ? KernelsReference.Random(n, 3, 0.5f) : null;
        var w = Int8ChannelWeights.Quantize(WeightMatrix.FromFloats(wf, n, k));
        var y = new float[m * n];
        MatMul.LinearInt8(x, m, w, bias, y);
        Assert.Equal(Reference(x, m, wf, n, k, bias), y);
    }

    [Theory]
    [InlineData(7, 33, 70, true, false)]     // a full tile and a 1-row rest; the second strip of 6 columns (scalar tail)
    [InlineData(100, 130, 129, false, true)] // two row blocks, three strips, the last of one column
    [InlineData(200, 256, 192, true, true)]
    public void Fused_gelu_and_residual_equal_the_separate_passes_bit_for_bit(int m, int k, int n, bool withBias, bool outputToo)
    {
        if (!MatMul.Int8ChannelsSupported) return;
        var x = KernelsReference.Random(m * k, 11 + m, 3f);
        var w = Int8ChannelWeights.Quantize(WeightMatrix.FromFloats(KernelsReference.Random(n * k, 12 + n, 0.05f), n, k));
        var bias = withBias ? KernelsReference.Random(n, 13, 0.5f) : null;
        var scale = KernelsReference.Random(n, 14, 0.2f);
        var residualStart = KernelsReference.Random(m * n, 15, 1f);

        // Separate passes: the product, GELU over the whole output, then residual += y · scale (multiply, then add).
        var separate = new float[m * n];
        MatMul.LinearInt8(x, m, w, bias, separate);
        Activations.Gelu(separate);
        var expectedResidual = (float[])residualStart.Clone();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) expectedResidual[i * n + j] += separate[i * n + j] * scale[j];

        var gelu = new float[m * n];
        MatMul.LinearInt8(x, m, w, bias, gelu, new LinearFusion { Gelu = true });
        Assert.Equal(separate, gelu);

        var residual = (float[])residualStart.Clone();
        var y = outputToo ? new float[m * n] : null;
        MatMul.LinearInt8(x, m, w, bias, y, new LinearFusion { Gelu = true, ResidualScale = scale }, residual);
        Assert.Equal(expectedResidual, residual);
        if (outputToo) Assert.Equal(separate, y);
    }

    [Fact]
    public void Weights_follow_the_per_channel_rule_and_a_zero_row_stays_zero()
    {
        int n = 70, k = 9;
        var wf = KernelsReference.Random(n * k, 5, 2f);
        Array.Clear(wf, 3 * k, k);   // channel 3 all zero
        var w = Int8ChannelWeights.Quantize(WeightMatrix.FromFloats(wf, n, k));
        for (int j = 0; j < n; j++)
        {
            var (q, s) = QuantizeRow(wf.AsSpan(j * k, k));
            Assert.Equal(s, w.Scale(j));
            for (int t = 0; t < k; t++) Assert.Equal(q[t], w.Weight(j, t));
        }
        Assert.Equal(0f, w.Scale(3));
        if (!MatMul.Int8ChannelsSupported) return;
        var y = new float[2 * n];
        MatMul.LinearInt8(KernelsReference.Random(2 * k, 6), 2, w, default, y);
        Assert.Equal(0f, y[3]);
        Assert.Equal(0f, y[n + 3]);
    }

    [Fact]
    public void Stays_close_to_the_float_product()
    {
        // The price of int8: against the float32 product on random data, a relative error of about
        // 1/127 of each row's range per term, far below 2% in the Frobenius norm.
        if (!MatMul.Int8ChannelsSupported) return;
        int m = 50, k = 512, n = 96;
        var x = KernelsReference.Random(m * k, 7);
        var wf = KernelsReference.Random(n * k, 8, 0.05f);
        var y = new float[m * n];
        MatMul.LinearInt8(x, m, Int8ChannelWeights.Quantize(WeightMatrix.FromFloats(wf, n, k)), default, y);
        var exact = new float[m * n];
        MatMul.Linear(x, m, WeightMatrix.FromFloats(wf, n, k), default, exact);
        double diff = 0, norm = 0;
        for (int i = 0; i < y.Length; i++) { diff += Math.Pow(y[i] - exact[i], 2); norm += Math.Pow(exact[i], 2); }
        double relative = Math.Sqrt(diff / norm);
        Assert.InRange(relative, 1e-4, 0.02);   // not zero: it really is quantized
    }

    [Fact]
    public void Bad_shapes_are_argument_errors()
    {
        var w = Int8ChannelWeights.Quantize(WeightMatrix.FromFloats(KernelsReference.Random(8 * 4, 9), 8, 4));
        if (!MatMul.Int8ChannelsSupported) return;
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[7], 2, w, default, new float[16]));
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[8], 2, w, default, new float[15]));
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[8], 2, w, new float[3], new float[16]));
        Assert.Throws<ArgumentOutOfRangeException>(() => MatMul.LinearInt8(new float[8], 0, w, default, new float[16]));
        // The fused forms: no input LayerNorm (rows are quantized as they are), a scale and residual of N and m·N.
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[8], 2, w, default, new float[16],
            new LinearFusion { InputNormWeight = new float[4], InputNormBias = new float[4] }));
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[8], 2, w, default, default, new LinearFusion { ResidualScale = new float[7] }, new float[16]));
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[8], 2, w, default, default, new LinearFusion { ResidualScale = new float[8] }, new float[15]));
        Assert.Throws<ArgumentException>(() => MatMul.LinearInt8(new float[8], 2, w, default, default, new LinearFusion { Gelu = true }));
    }
}
