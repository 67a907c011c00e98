using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

public class KernelsMatMulTests
{
    // float32 accumulation in a different order than the double reference: error grows ~ with K.
    private static double Tol(int k) => 2e-6 * k + 1e-6;

    public static IEnumerable<object[]> Shapes()
    {
        foreach (int m in new[] { 1, 2, 3, 5, 8, 15, 16, 17, 64, 70 })
            foreach (var (n, k) in new[] { (1, 1), (37, 83), (70, 300), (33, 16), (130, 531) })
                yield return new object[] { m, n, k };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Linear_F32_matches_scalar_reference(int m, int n, int k)
    {
        var x = KernelsReference.Random(m * k, 1);
        var w = KernelsReference.Random(n * k, 2);
        var b = KernelsReference.Random(n, 3);
        var y = new float[m * n];
        MatMul.Linear(x, m, WeightMatrix.FromFloats(w, n, k), b, y);
        KernelsReference.AssertClose(KernelsReference.Linear(x, m, w, n, k, b), y, Tol(k), 1e-5, "y");
    }

    [Theory]
    [InlineData(1, 37, 83)]
    [InlineData(3, 70, 300)]
    [InlineData(17, 130, 531)]
    [InlineData(64, 96, 200)]
    public void Linear_BF16_weights_match_reference_on_dequantised_weights(int m, int n, int k)
    {
        var x = KernelsReference.Random(m * k, 4);
        var wf = KernelsReference.Random(n * k, 5);
        var bits = new ushort[n * k];
        var deq = new float[n * k];
        for (int i = 0; i < bits.Length; i++) { bits[i] = DTypes.FloatToBF16(wf[i]); deq[i] = DTypes.BF16ToFloat(bits[i]); }
        var y = new float[m * n];
        MatMul.Linear(x, m, WeightMatrix.FromHalfBits(bits, DType.BF16, n, k), ReadOnlySpan<float>.Empty, y);
        KernelsReference.AssertClose(KernelsReference.Linear(x, m, deq, n, k, null), y, Tol(k), 1e-5, "y");
    }

    [Theory]
    [InlineData(1, 37, 83)]
    [InlineData(17, 130, 531)]
    [InlineData(64, 40, 48)]
    public void Linear_F16_weights_match_reference_on_dequantised_weights(int m, int n, int k)
    {
        var x = KernelsReference.Random(m * k, 6);
        var wf = KernelsReference.Random(n * k, 7);
        var bits = new ushort[n * k];
        var deq = new float[n * k];
        for (int i = 0; i < bits.Length; i++)
        {
            // Include subnormal and large values to exercise the bit-level conversion.
            float v = i % 11 == 0 ? wf[i] * 1e-5f : i % 13 == 0 ? wf[i] * 3000f : wf[i];
            var h = (Half)v;
            bits[i] = BitConverter.HalfToUInt16Bits(h);
            deq[i] = (float)h;
        }
        var y = new float[m * n];
        MatMul.Linear(x, m, WeightMatrix.FromHalfBits(bits, DType.F16, n, k), ReadOnlySpan<float>.Empty, y);
        KernelsReference.AssertClose(KernelsReference.Linear(x, m, deq, n, k, null), y, Tol(k) * 3000, 1e-5, "y");
    }

    [Fact]
    public void F16_conversion_is_exact_for_every_half_value()
    {
        var bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++) bits[i] = (ushort)i;
        var w = WeightMatrix.FromHalfBits(bits, DType.F16, 1, bits.Length);
        var row = new float[bits.Length];
        w.ReadRow(0, 0, row);
        for (int i = 0; i < bits.Length; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(row[i]), $"bits {i:X4}");
            else Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(row[i]));
        }
    }

    [Theory]
    [InlineData(1, 5, 7)]
    [InlineData(17, 33, 64)]
    [InlineData(64, 19, 100)]
    public void MatMulTransB_matches_reference(int m, int k, int n)
    {
        var a = KernelsReference.Random(m * k, 8);
        var b = KernelsReference.Random(n * k, 9);
        var c = new float[m * n];
        MatMul.MatMulTransB(a, m, k, b, n, c);
        KernelsReference.AssertClose(KernelsReference.Linear(a, m, b, n, k, null), c, Tol(k), 1e-5, "c");
    }

    [Fact]
    public void Linear_rejects_mismatched_shapes()
    {
        var w = WeightMatrix.FromFloats(new float[12], 3, 4);
        Assert.Throws<ArgumentException>(() => MatMul.Linear(new float[7], 2, w, ReadOnlySpan<float>.Empty, new float[6]));
        Assert.Throws<ArgumentException>(() => MatMul.Linear(new float[8], 2, w, ReadOnlySpan<float>.Empty, new float[5]));
        Assert.Throws<ArgumentException>(() => MatMul.Linear(new float[8], 2, w, new float[2], new float[6]));
    }

    [Fact]
    public void WeightMatrix_From_flattens_conv_weights()
    {
        unsafe
        {
            var data = new float[6 * 3 * 2 * 2];
            fixed (float* p = data)
            {
                var view = new TensorView("conv.weight", (byte*)p, DType.F32, new long[] { 6, 3, 2, 2 });
                var w = WeightMatrix.From(view);
                Assert.Equal(6, w.Rows);
                Assert.Equal(12, w.Cols);
                Assert.Equal(DType.F32, w.DType);
            }
            var bad = new TensorView("ids", null, DType.I64, new long[] { 2, 2 });
            Assert.Throws<UserError>(() => WeightMatrix.From(bad));
        }
    }
}

public class KernelsLargeMatMulTests
{
    [Theory]
    [InlineData(70, 600, 200, DType.BF16)]   // packed GEMM (K < 256): several column tasks and edge tiles
    [InlineData(16, 513, 255, DType.F32)]    // packed GEMM at its row threshold
    [InlineData(33, 1100, 64, DType.F16)]
    [InlineData(70, 37, 2000, DType.BF16)]   // dot-product path with two L2 blocks of input rows
    [InlineData(9, 300, 700, DType.F32)]
    [InlineData(1, 13, 4096, DType.BF16)]    // single-row GEMV: one weight row at a time, longest such row
    [InlineData(1, 13, 4097, DType.F32)]     // single-row GEMV with long rows: four weight rows at a time
    [InlineData(1, 29, 4077, DType.BF16)]    // 63 × 64 + 45: vector steps of 64, 16 and a scalar tail
    [InlineData(2, 13, 5000, DType.F16)]
    public void Large_products_handle_many_blocks_and_edges(int m, int n, int k, DType dtype)
    {
        var x = KernelsReference.Random(m * k, 50);
        var wf = KernelsReference.Random(n * k, 51);
        var b = KernelsReference.Random(n, 52);
        var deq = new float[n * k];
        WeightMatrix w;
        if (dtype == DType.F32) { w = WeightMatrix.FromFloats(wf, n, k); deq = wf; }
        else
        {
            var bits = new ushort[n * k];
            for (int i = 0; i < bits.Length; i++)
            {
                bits[i] = dtype == DType.BF16 ? DTypes.FloatToBF16(wf[i]) : BitConverter.HalfToUInt16Bits((Half)wf[i]);
                deq[i] = dtype == DType.BF16 ? DTypes.BF16ToFloat(bits[i]) : (float)BitConverter.UInt16BitsToHalf(bits[i]);
            }
            w = WeightMatrix.FromHalfBits(bits, dtype, n, k);
        }
        var y = new float[m * n];
        MatMul.Linear(x, m, w, b, y);
        KernelsReference.AssertClose(KernelsReference.Linear(x, m, deq, n, k, b), y, 2e-6 * k, 1e-5, "y");
    }
}
