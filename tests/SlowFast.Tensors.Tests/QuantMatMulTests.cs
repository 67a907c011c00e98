using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Kernels.Jit;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Products with Q8_0/Q4_0 weights against a scalar reference of the same arithmetic: the inputs
/// quantized per 32-element block (d = max|x| / 127, round half to even), each block's integer dot
/// product exact, then Σ int · d_w · d_x. The reference sums in double; the kernels sum float32 lanes in
/// another order, so they must agree to 2e-6 of Σ |terms| (float32 rounding of about K/32 terms).
/// With integer-valued data whose scales are 1 every sum is an exact integer and must match exactly.
/// </summary>
[Collection(GemmTunablesCollection.Name)]
public class QuantMatMulTests
{
    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return a;
    }

    private static WeightMatrix Quantize(float[] w, int n, int k, BlockFormat format) =>
        QuantizedWeights.Quantize(WeightMatrix.FromFloats(w, n, k), format);

    /// <summary>Reference y[m, n] and Σ|terms| (for the tolerance).</summary>
    private static (double[] Y, double[] Scale) Reference(float[] x, int m, WeightMatrix w, float[]? bias)
    {
        int n = w.Rows, k = w.Cols, blocks = k / 32;
        var y = new double[m * n];
        var mag = new double[m * n];
        var wRow = new float[k];
        for (int r = 0; r < m; r++)
        {
            var q = new int[k];
            var d = new float[blocks];
            for (int b = 0; b < blocks; b++)
            {
                float amax = 0;
                for (int i = 0; i < 32; i++) amax = Math.Max(amax, Math.Abs(x[r * k + b * 32 + i]));
                d[b] = amax / 127f;
                float id = d[b] != 0 ? 1f / d[b] : 0f;
                for (int i = 0; i < 32; i++) q[b * 32 + i] = (int)MathF.Round(x[r * k + b * 32 + i] * id, MidpointRounding.ToEven);
            }
            for (int j = 0; j < n; j++)
            {
                unsafe
                {
                    var scales = new ReadOnlySpan<Half>(w.RowScales(j), blocks);
                    BlockQuantizer.DequantizeRow(w.Format!.Value, new ReadOnlySpan<byte>(w.RowPointer(j), (int)w.RowBytes), scales, wRow);
                    double acc = 0, abs = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        float dw = (float)scales[b];
                        long dot = 0;
                        // wRow = q_w · d_w exactly (a small integer times a float16 value), so q_w = wRow / d_w.
                        for (int i = 0; i < 32; i++) dot += dw == 0 ? 0 : (long)Math.Round(wRow[b * 32 + i] / dw) * q[b * 32 + i];
                        double term = (double)dot * dw * d[b];
                        acc += term;
                        abs += Math.Abs(term);
                    }
                    y[r * n + j] = acc + (bias?[j] ?? 0);
                    mag[r * n + j] = abs;
                }
            }
        }
        return (y, mag);
    }

    public static IEnumerable<object[]> Shapes()
    {
        foreach (var f in new[] { BlockFormat.Q8_0, BlockFormat.Q4_0 })
            foreach (var (m, n, k) in new[] { (1, 1, 64), (1, 13, 128), (2, 4, 192), (3, 37, 64), (4, 8, 256), (5, 9, 128), (7, 5, 64),
                                               (16, 21, 320), (17, 6, 128), (33, 11, 64), (1, 7, 96), (6, 5, 160),
                                               (1, 9, 384), (2, 19, 896), (4, 6, 640),
                                               // one row, whole scale groups (4 steps of Q4_0, 8 of Q8_0) and not
                                               (1, 13, 512), (1, 37, 1024), (1, 6, 1536), (1, 10, 2560) })
                yield return new object[] { f, m, n, k };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Product_matches_the_scalar_reference(BlockFormat format, int m, int n, int k)
    {
        Product_matches(format, m, n, k, gemm: false);
        Product_matches(format, m, n, k, gemm: true);
    }

    private static void Product_matches(BlockFormat format, int m, int n, int k, bool gemm)
    {
        var w = Quantize(Random(n * k, 1 + n + k, 0.1f), n, k, format);
        var x = Random(m * k, 7 + m, 3f);
        x[0] = 0;                                  // a zero and a whole zero block in row 0 when k allows
        if (k >= 64) Array.Clear(x, 32, 32);
        var bias = Random(n, 3);
        var y = new float[m * n];
        // Every row count through the row kernel, then through the GEMM.
        var gemmMinRows = MatMul.Quantized.GemmMinRowsOverride;
        MatMul.Quantized.GemmMinRowsOverride = gemm ? 1 : int.MaxValue;
        try { MatMul.Linear(x, m, w, bias, y); }
        finally { MatMul.Quantized.GemmMinRowsOverride = gemmMinRows; }
        var (expected, mag) = Reference(x, m, w, bias);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) <= 2e-6 * mag[i] + 1e-6,
                $"{format} m={m} n={n} k={k} gemm={gemm}: y[{i / n}, {i % n}] = {y[i]}, reference {expected[i]} (Σ|terms| {mag[i]})");
    }

    [Fact]
    public unsafe void Vectorized_input_quantization_equals_the_scalar_arithmetic()
    {
        // Random blocks, blocks of exact ties (k + 0.5 times the scale), a zero block and one with a
        // single non-zero element: the same scale and the same integers, element by element.
        var r = new Random(11);
        var x = new float[32];
        sbyte* a = stackalloc sbyte[32], b = stackalloc sbyte[32];
        for (int trial = 0; trial < 2000; trial++)
        {
            int kind = trial % 4;
            for (int i = 0; i < 32; i++)
                x[i] = kind switch
                {
                    0 => (float)(r.NextDouble() * 2 - 1) * MathF.Pow(10, r.Next(-6, 6)),
                    1 => i == 0 ? 127f : r.Next(-126, 126) + 0.5f,   // d = 1: every other element is a tie
                    2 => 0f,
                    _ => i == trial % 32 ? -3.5f : 0f,
                };
            fixed (float* px = x)
            {
                float da = MatMul.Quantized.QuantizeBlock(px, a);
                float db = MatMul.Quantized.QuantizeBlockScalar(px, b);
                Assert.Equal(db, da);
                for (int i = 0; i < 32; i++) Assert.True(a[i] == b[i], $"trial {trial} element {i}: {a[i]} vs {b[i]} (x = {x[i]})");
            }
        }
    }

    [Theory]
    [InlineData(BlockFormat.Q8_0, false)]
    [InlineData(BlockFormat.Q8_0, true)]
    [InlineData(BlockFormat.Q4_0, false)]
    [InlineData(BlockFormat.Q4_0, true)]
    public unsafe void Vectorized_input_rows_equal_the_scalar_layout(BlockFormat format, bool scaleGroups)
    {
        // The kernel's input row (integers in the format's byte order, lane corrections, lane or group
        // scales) built with vectors and element by element: byte for byte the same, over two scale
        // groups, with a zero block and extreme values.
        int k = 2 * QuantRowsKernel.ScaleLoadSteps(format) * QuantRowsKernel.StepElements(format);
        var x = Random(k, 5, 40f);
        Array.Clear(x, 64, 32);
        x[3] = 1e-30f; x[100] = -1e6f;
        long stride = QuantRowsKernel.InputStepBytes(format);
        long bytes = k / QuantRowsKernel.StepElements(format) * stride;
        var vector = new byte[bytes];
        var scalar = new byte[bytes];
        fixed (float* px = x)
        fixed (byte* pv = vector, ps = scalar)
        {
            MatMul.Quantized.QuantizeInput(format, px, k, pv, stride, scaleGroups);
            MatMul.Quantized.QuantizeInputScalar(format, px, k, ps, stride, scaleGroups);
        }
        for (long i = 0; i < bytes; i++)
            Assert.True(vector[i] == scalar[i], $"{format} scaleGroups={scaleGroups}: byte {i} (step {i / stride}, offset {i % stride}) is {vector[i]}, scalar {scalar[i]}");
    }

    [Theory]
    [InlineData(BlockFormat.Q8_0, false)]
    [InlineData(BlockFormat.Q4_0, false)]
    [InlineData(BlockFormat.Q8_0, true)]
    [InlineData(BlockFormat.Q4_0, true)]
    public void Integer_valued_products_are_exact(BlockFormat format, bool gemm)
    {
        // Each block holds ±127 (inputs) / −8 or 127 (weights), so every scale is exactly 1 and every
        // product an integer below 2^24: no rounding anywhere.
        int m = 6, n = 9, k = 256;
        var r = new Random(5);
        var w = new float[n * k];
        var x = new float[m * k];
        for (int i = 0; i < w.Length; i++) w[i] = format == BlockFormat.Q8_0 ? r.Next(-127, 128) : r.Next(-8, 8);
        for (int i = 0; i < x.Length; i++) x[i] = r.Next(-127, 128);
        for (int b = 0; b < n * k / 32; b++) w[b * 32 + 5] = format == BlockFormat.Q8_0 ? 127 : -8;
        for (int b = 0; b < m * k / 32; b++) x[b * 32 + 9] = -127;
        var wq = Quantize(w, n, k, format);
        var y = new float[m * n];
        var gemmMinRows = MatMul.Quantized.GemmMinRowsOverride;
        try
        {
            MatMul.Quantized.GemmMinRowsOverride = gemm ? 1 : int.MaxValue;
            MatMul.Linear(x, m, wq, default, y);
        }
        finally { MatMul.Quantized.GemmMinRowsOverride = gemmMinRows; }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                long dot = 0;
                for (int c = 0; c < k; c++) dot += (long)w[j * k + c] * (long)x[i * k + c];
                Assert.Equal(dot, (long)y[i * n + j]);
                Assert.Equal((float)dot, y[i * n + j]);
            }
    }

    /// <summary>
    /// The GEMM's arithmetic, one output at a time: the inputs quantized as the kernels do, each block's
    /// integer dot product, acc = fma(float(dot), d_x · d_w, acc) over the blocks in order from 0, then + bias.
    /// </summary>
    private static unsafe float[] GemmArithmetic(float[] x, int m, WeightMatrix w, float[]? bias)
    {
        int n = w.Rows, k = w.Cols, blocks = k / 32;
        var y = new float[m * n];
        var q = new sbyte[k];
        var d = new float[blocks];
        var wq = new int[32];
        for (int r = 0; r < m; r++)
        {
            fixed (float* px = &x[r * k]) fixed (sbyte* pq = q)
                for (int b = 0; b < blocks; b++) d[b] = MatMul.Quantized.QuantizeBlockScalar(px + 32 * b, pq + 32 * b);
            for (int j = 0; j < n; j++)
            {
                float acc = 0;
                for (int b = 0; b < blocks; b++)
                {
                    MatMul.Quantized.WeightIntegers(w.Format!.Value, w.RowPointer(j), b, wq);
                    int dot = 0;
                    for (int i = 0; i < 32; i++) dot += wq[i] * q[32 * b + i];
                    acc = MathF.FusedMultiplyAdd(dot, d[b] * (float)w.RowScales(j)[b], acc);
                }
                y[r * n + j] = acc + (bias?[j] ?? 0);
            }
        }
        return y;
    }

    public static IEnumerable<object[]> GemmShapes()
    {
        foreach (var f in new[] { BlockFormat.Q8_0, BlockFormat.Q4_0 })
            foreach (var (m, n, k) in new[] { (32, 70, 256), (40, 130, 96), (1, 64, 64), (2, 17, 32), (121, 65, 160), (300, 64, 3584), (37, 300, 1120) })
                yield return new object[] { f, m, n, k };
    }

    [Theory]
    [MemberData(nameof(GemmShapes))]
    public void Many_rows_equal_the_integer_arithmetic_bit_for_bit(BlockFormat format, int m, int n, int k)
    {
        if (!QuantTileKernel.IsSupported) return;
        var w = Quantize(Random(n * k, 21, 0.2f), n, k, format);
        var x = Random(m * k, 22, 2f);
        if (k >= 64) Array.Clear(x, 32, 32);   // a zero block
        var bias = Random(n, 23);
        var expected = GemmArithmetic(x, m, w, bias);
        // One pass; then several bands (narrow panels) and several block calls per tile (short blocks).
        long panelBytes = MatMul.BlockedGemm.PanelBytes;
        int maxBlockPairs = MatMul.BlockedGemm.MaxBlockPairs;
        var gemmMinRows = MatMul.Quantized.GemmMinRowsOverride;
        try
        {
            MatMul.Quantized.GemmMinRowsOverride = 1;
            foreach (var (panel, pairs) in new[] { (panelBytes, maxBlockPairs), (1024L, 16) })
            {
                MatMul.BlockedGemm.PanelBytes = panel;
                MatMul.BlockedGemm.MaxBlockPairs = pairs;
                var y = new float[m * n];
                MatMul.Linear(x, m, w, bias, y, MatMulPrecision.BFloat16);
                for (int i = 0; i < y.Length; i++)
                    Assert.True(y[i] == expected[i], $"{format} m={m} n={n} k={k} panel={panel} pairs={pairs}: y[{i / n}, {i % n}] = {y[i]}, expected {expected[i]}");
            }
        }
        finally
        {
            MatMul.BlockedGemm.PanelBytes = panelBytes;
            MatMul.BlockedGemm.MaxBlockPairs = maxBlockPairs;
            MatMul.Quantized.GemmMinRowsOverride = gemmMinRows;
        }
    }

    [Fact]
    public void Quantized_matrix_reads_back_its_dequantized_rows()
    {
        var src = Random(3 * 96, 11);
        var w = Quantize(src, 3, 96, BlockFormat.Q4_0);
        var row = new float[40];
        w.ReadRow(2, 50, row);
        var full = new float[96];
        unsafe
        {
            BlockQuantizer.DequantizeRow(BlockFormat.Q4_0, new ReadOnlySpan<byte>(w.RowPointer(2), 48), new ReadOnlySpan<Half>(w.RowScales(2), 3), full);
        }
        Assert.Equal(full.AsSpan(50, 40).ToArray(), row);
        Assert.Equal(3 * 48 + 3 * 3 * 2, w.ByteLength);
    }
}
