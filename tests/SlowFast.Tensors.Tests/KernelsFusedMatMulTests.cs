using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// <see cref="MatMul.LinearFused"/>: the row work done inside the bfloat16 GEMM equals the same work
/// done by the separate kernels around a plain product (bit for bit: the same float32 operations), and
/// an independent double-precision reference.
/// </summary>
public class KernelsFusedMatMulTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 17, 70, 64 },     // just past the row kernel's rows, a partial strip
        { 130, 300, 301 },  // two row blocks, two column tasks, odd K
        { 250, 520, 96 },   // three row blocks, three column tasks
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Norm_and_gelu_fused_into_fc1_equal_the_separate_kernels(int m, int n, int k)
    {
        if (!MatMul.BFloat16Supported) return;   // nothing to fuse into: CanFuse is false (checked below)
        var x = KernelsReference.Random(m * k, 1, 3f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f;   // a mean the norm must remove
        var wValues = RoundBf16(KernelsReference.Random(n * k, 2));
        var w = Bf16Matrix(wValues, n, k);
        var b = KernelsReference.Random(n, 3);
        var nw = KernelsReference.Random(k, 4);
        var nb = KernelsReference.Random(k, 5);
        const float eps = 1e-6f;
        var xCopy = (float[])x.Clone();

        var fused = new float[m * n];
        Assert.True(MatMul.CanFuse(w, m, MatMulPrecision.BFloat16));
        MatMul.LinearFused(x, m, w, b, fused, MatMulPrecision.BFloat16,
            new LinearFusion { InputNormWeight = nw, InputNormBias = nb, InputNormEps = eps, Gelu = true });
        Assert.Equal(xCopy, x);   // the input is read, never normalized in place

        var normed = new float[x.Length];
        Norms.LayerNorm(x, nw, nb, eps, normed);
        var separate = new float[m * n];
        MatMul.Linear(normed, m, w, b, separate, MatMulPrecision.BFloat16);
        Activations.Gelu(separate);
        Assert.Equal(separate, fused);

        // Independent reference: LayerNorm in double, rounded to bfloat16, the product, exact GELU.
        var refIn = RoundBf16(KernelsReference.LayerNorm(x, nw, nb, eps));
        var expected = KernelsReference.Linear(refIn, m, wValues, n, k, b)
            .Select(v => (float)(v * 0.5 * (1 + KernelsReference.Erf(v / Math.Sqrt(2))))).ToArray();
        // A normalized input near a bfloat16 rounding tie may round the other way on the two sides.
        KernelsReference.AssertClose(expected, fused, 2e-2, 1e-2, "fc1 + norm + gelu");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Scale_and_residual_fused_into_fc2_equal_the_separate_kernels(int m, int n, int k)
    {
        if (!MatMul.BFloat16Supported) return;
        var x = KernelsReference.Random(m * k, 11);
        var w = Bf16Matrix(KernelsReference.Random(n * k, 12), n, k);
        var b = KernelsReference.Random(n, 13);
        var scale = KernelsReference.Random(n, 14);
        var residual = KernelsReference.Random(m * n, 15);
        var expected = (float[])residual.Clone();

        var y = new float[m * n];
        MatMul.LinearFused(x, m, w, b, y, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, residual);

        var plain = new float[m * n];
        MatMul.Linear(x, m, w, b, plain, MatMulPrecision.BFloat16);
        Assert.Equal(plain, y);   // y keeps the product
        for (int r = 0; r < m; r++)
            for (int c = 0; c < n; c++) expected[r * n + c] += plain[r * n + c] * scale[c];
        Assert.Equal(expected, residual);
    }

    [Theory]
    [InlineData(Quantization.BlockFormat.Q8_0, 40, 70, 64)]
    [InlineData(Quantization.BlockFormat.Q4_0, 130, 300, 256)]
    public void Gelu_scale_and_residual_fused_into_a_quantized_product_equal_the_separate_kernels(Quantization.BlockFormat format, int m, int n, int k)
    {
        if (!Kernels.Jit.QuantTileKernel.IsSupported) return;
        var x = KernelsReference.Random(m * k, 31);
        var w = Quantization.QuantizedWeights.Quantize(WeightMatrix.FromFloats(KernelsReference.Random(n * k, 32), n, k), format);
        var b = KernelsReference.Random(n, 33);
        var scale = KernelsReference.Random(n, 34);
        var residual = KernelsReference.Random(m * n, 35);
        var expected = (float[])residual.Clone();
        Assert.True(MatMul.CanFuse(w, m, MatMulPrecision.Float32));
        Assert.False(MatMul.CanFuse(w, 8, MatMulPrecision.Float32));   // the row kernel's rows

        var y = new float[m * n];
        MatMul.LinearFused(x, m, w, b, y, MatMulPrecision.Float32, new LinearFusion { Gelu = true, ResidualScale = scale }, residual);
        var plain = new float[m * n];
        MatMul.Linear(x, m, w, b, plain);
        Activations.Gelu(plain);
        Assert.Equal(plain, y);
        for (int r = 0; r < m; r++)
            for (int c = 0; c < n; c++) expected[r * n + c] += plain[r * n + c] * scale[c];
        Assert.Equal(expected, residual);
        Assert.Throws<ArgumentException>(() =>   // no input LayerNorm on quantized rows
            MatMul.LinearFused(x, m, w, b, y, MatMulPrecision.Float32,
                new LinearFusion { InputNormWeight = new float[k], InputNormBias = new float[k], InputNormEps = 1e-6f }));
        var noY = Assert.Throws<ArgumentException>(() =>   // the integer GEMM writes y: it cannot go into the residual alone
            MatMul.LinearFused(x, m, w, b, Span<float>.Empty, MatMulPrecision.Float32, new LinearFusion { ResidualScale = scale }, residual));
        Assert.Contains("only BF16 weights", noY.Message);
    }

    public static TheoryData<int, int, int, int> MlpShapes() => new()
    {
        { 17, 64, 200, 64 },     // one row block; fc1's N = fc2's K
        { 130, 96, 301, 70 },    // odd hidden width (a zeroed pad element), two row blocks, partial strips
        { 250, 48, 520, 300 },   // three row blocks, three column tasks of fc1
    };

    [Theory]
    [MemberData(nameof(MlpShapes))]
    public void Fc1_handing_bfloat16_gelu_rows_to_fc2_equals_the_separate_kernels(int m, int k, int hidden, int n)
    {
        // fc1 → GELU → fc2 + scale + residual, once with fc1 writing bfloat16 GELU rows that fc2 reads as
        // they are, once through float32 and the separate GELU pass: the same operations, bit for bit.
        if (!MatMul.BFloat16Supported) { Assert.False(MatMul.CanHandOffBFloat16(Bf16Matrix(new float[hidden * k], hidden, k), m, MatMulPrecision.BFloat16)); return; }
        var x = KernelsReference.Random(m * k, 51, 2f);
        var fc1 = Bf16Matrix(KernelsReference.Random(hidden * k, 52), hidden, k);
        var fc2 = Bf16Matrix(KernelsReference.Random(n * hidden, 53), n, hidden);
        var b1 = KernelsReference.Random(hidden, 54);
        var b2 = KernelsReference.Random(n, 55);
        var scale = KernelsReference.Random(n, 56);
        int stride = MatMul.BFloat16RowElements(hidden);
        Assert.True(stride >= hidden && stride % 32 == 0);

        var rows = new ushort[m * stride];
        Array.Fill(rows, (ushort)0x7FC0);   // NaN: an odd width's pad element must be zeroed
        MatMul.LinearGeluToBFloat16(x, m, fc1, b1, rows, MatMulPrecision.BFloat16);
        var residual = KernelsReference.Random(m * n, 57);
        var y = new float[m * n];
        MatMul.LinearFused(rows, m, fc2, b2, y, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, residual);

        var h = new float[m * hidden];
        MatMul.Linear(x, m, fc1, b1, h, MatMulPrecision.BFloat16);
        Activations.Gelu(h);
        for (int r = 0; r < m; r++)
            for (int c = 0; c < hidden; c++)
                Assert.Equal(DTypes.FloatToBF16(h[r * hidden + c]), rows[r * stride + c]);
        if (hidden % 2 != 0) for (int r = 0; r < m; r++) Assert.Equal(0, rows[r * stride + hidden]);
        var expectedResidual = KernelsReference.Random(m * n, 57);
        var plain = new float[m * n];
        MatMul.LinearFused(h, m, fc2, b2, plain, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, expectedResidual);
        Assert.Equal(plain, y);
        Assert.Equal(expectedResidual, residual);
        // As the tower runs fc2: no y, the product only added into the residual.
        var residualOnly = KernelsReference.Random(m * n, 57);
        MatMul.LinearFused(rows, m, fc2, b2, Span<float>.Empty, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, residualOnly);
        Assert.Equal(expectedResidual, residualOnly);

        // With the input LayerNorm done as fc1 rounds its rows: the rows of a separate LayerNorm, bit for bit.
        var nw = KernelsReference.Random(k, 58);
        var nb = KernelsReference.Random(k, 59);
        var normed = new float[x.Length];
        Norms.LayerNorm(x, nw, nb, 1e-6f, normed);
        var expectedRows = new ushort[rows.Length];
        Array.Fill(expectedRows, (ushort)0x7FC0);   // as rows was: the elements past the width stay as they were
        MatMul.LinearGeluToBFloat16(normed, m, fc1, b1, expectedRows, MatMulPrecision.BFloat16);
        var xCopy = (float[])x.Clone();
        MatMul.LinearGeluToBFloat16(x, m, fc1, b1, rows, MatMulPrecision.BFloat16, new LinearFusion { InputNormWeight = nw, InputNormBias = nb, InputNormEps = 1e-6f });
        Assert.Equal(expectedRows, rows);
        Assert.Equal(xCopy, x);
    }

    [Fact]
    public void Bfloat16_rows_are_refused_where_they_cannot_be_handed_on()
    {
        var f32 = WeightMatrix.FromFloats(KernelsReference.Random(32 * 64, 61), 32, 64);
        Assert.False(MatMul.CanHandOffBFloat16(f32, 40, MatMulPrecision.BFloat16));
        Assert.Throws<InvalidOperationException>(() => MatMul.LinearGeluToBFloat16(new float[40 * 64], 40, f32, ReadOnlySpan<float>.Empty, new ushort[40 * 64], MatMulPrecision.BFloat16));
        if (!MatMul.BFloat16Supported) return;
        var bf16 = Bf16Matrix(KernelsReference.Random(32 * 64, 62), 32, 64);
        Assert.False(MatMul.CanHandOffBFloat16(bf16, 40, MatMulPrecision.Float32));
        var e = Assert.Throws<ArgumentException>(() =>   // rows of 64, not the 32 a row of width 32 would be
            MatMul.LinearGeluToBFloat16(new float[40 * 64], 40, bf16, ReadOnlySpan<float>.Empty, new ushort[40 * 32 - 1], MatMulPrecision.BFloat16));
        Assert.Contains("bfloat16 values", e.Message);
        Assert.Throws<ArgumentException>(() =>   // bfloat16 input rows take no LayerNorm
            MatMul.LinearFused(new ushort[40 * 64], 40, bf16, ReadOnlySpan<float>.Empty, new float[40 * 32], MatMulPrecision.BFloat16,
                new LinearFusion { InputNormWeight = new float[64], InputNormBias = new float[64] }));
    }

    [Fact]
    public void Products_the_GEMM_does_not_run_cannot_be_fused()
    {
        var bf16 = Bf16Matrix(KernelsReference.Random(32 * 64, 21), 32, 64);
        var f32 = WeightMatrix.FromFloats(KernelsReference.Random(32 * 64, 22), 32, 64);
        Assert.False(MatMul.CanFuse(bf16, 40, MatMulPrecision.Float32));
        Assert.False(MatMul.CanFuse(f32, 40, MatMulPrecision.BFloat16));
        Assert.Equal(MatMul.BFloat16Supported, MatMul.CanFuse(bf16, 40, MatMulPrecision.BFloat16));
        if (MatMul.BFloat16Supported) Assert.False(MatMul.CanFuse(bf16, 8, MatMulPrecision.BFloat16));   // the row kernel's rows
        Assert.Throws<InvalidOperationException>(() =>
            MatMul.LinearFused(new float[40 * 64], 40, f32, ReadOnlySpan<float>.Empty, new float[40 * 32], MatMulPrecision.BFloat16, new LinearFusion { Gelu = true }));
        if (MatMul.BFloat16Supported)
            Assert.Throws<ArgumentException>(() =>   // a residual scale without a residual of [m, N]
                MatMul.LinearFused(new float[40 * 64], 40, bf16, ReadOnlySpan<float>.Empty, new float[40 * 32], MatMulPrecision.BFloat16,
                    new LinearFusion { ResidualScale = new float[32] }));
    }

    private static float[] RoundBf16(float[] v) => v.Select(f => DTypes.BF16ToFloat(DTypes.FloatToBF16(f))).ToArray();

    private static WeightMatrix Bf16Matrix(float[] values, int n, int k) =>
        WeightMatrix.FromHalfBits(values.Select(DTypes.FloatToBF16).ToArray(), DType.BF16, n, k);
}
