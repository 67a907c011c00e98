using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Decoding batches: <see cref="MatMul.Linear(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision)"/>
/// with 1 to 16 rows (every remainder of the 4-row tiles, and the switch to the bfloat16 GEMM) for
/// F32, BF16 and F16 weights, against the double-precision reference on the stored weight values.
/// </summary>
public class KernelsFewRowsMatMulTests
{
    // Float32 sums in another order than the double reference: error grows ~ with K. A wrong or
    // dropped term changes an output by about |x·w| ~ 0.1..1, far above this (see the last test).
    private static double Tol(int k) => 2e-6 * k + 1e-6;

    // (N, K): N not a multiple of 4 (a partial weight tile), K odd and not a multiple of 16 (scalar
    // tails), K past the 4096 of the one-row stream (the 4-row path at M = 1).
    private static readonly (int N, int K)[] Sizes = [(37, 83), (70, 300), (13, 4133)];

    public static IEnumerable<object[]> Cases()
    {
        for (int m = 1; m <= 16; m++)
            foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
                for (int s = 0; s < Sizes.Length; s++)
                    yield return new object[] { m, dtype, s, (m + s) % 2 == 0 };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Few_rows_match_the_double_reference(int m, DType dtype, int size, bool withBias)
    {
        var (n, k) = Sizes[size];
        var x = KernelsReference.Random(m * k, 11 + m);
        var (w, values) = Weights(dtype, n, k, 12);
        var b = withBias ? KernelsReference.Random(n, 13) : null;
        var y = Run(x, m, w, b, MatMulPrecision.Float32);
        KernelsReference.AssertClose(KernelsReference.Linear(x, m, values, n, k, b), y, Tol(k), 1e-5, $"y (m={m}, {dtype})");
    }

    public static IEnumerable<object[]> Bf16Cases()
    {
        for (int m = 1; m <= 16; m++)
            for (int s = 0; s < Sizes.Length; s++)
                yield return new object[] { m, s, (m + s) % 2 == 1 };
    }

    [Theory]
    [MemberData(nameof(Bf16Cases))]
    public void Few_rows_in_bfloat16_arithmetic_match_the_rounded_reference(int m, int size, bool withBias)
    {
        var (n, k) = Sizes[size];
        var x = KernelsReference.Random(m * k, 21 + m);
        var (w, values) = Weights(DType.BF16, n, k, 22);
        var b = withBias ? KernelsReference.Random(n, 23) : null;
        var y = Run(x, m, w, b, MatMulPrecision.BFloat16);
        var rounded = MatMul.BFloat16Supported ? x.Select(f => DTypes.BF16ToFloat(DTypes.FloatToBF16(f))).ToArray() : x;
        KernelsReference.AssertClose(KernelsReference.Linear(rounded, m, values, n, k, b), y, Tol(k), 1e-5, $"y (m={m})");
    }

    [Theory]
    [InlineData(4, 0)]
    [InlineData(7, 1)]
    [InlineData(16, 2)]
    public void The_tolerance_catches_one_dropped_term(int m, int size)
    {
        // What a broken accumulator (one lane or one scalar-tail term lost) would return: the
        // comparison above must reject it.
        var (n, k) = Sizes[size];
        var x = KernelsReference.Random(m * k, 31);
        var (w, values) = Weights(DType.BF16, n, k, 32);
        var y = Run(x, m, w, null, MatMulPrecision.Float32);
        var expected = KernelsReference.Linear(x, m, values, n, k, null);
        KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y");
        int row = m - 1, col = n - 1, kk = 0;
        for (int i = 1; i < k; i++)
            if (Math.Abs(x[row * k + i] * values[col * k + i]) > Math.Abs(x[row * k + kk] * values[col * k + kk])) kk = i;
        y[row * n + col] -= x[row * k + kk] * values[col * k + kk];
        Assert.ThrowsAny<Exception>(() => KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y"));
    }

    private static float[] Run(float[] x, int m, WeightMatrix w, float[]? bias, MatMulPrecision precision)
    {
        var y = new float[m * w.Rows + 5];
        Array.Fill(y, float.NaN);   // every output must be written
        MatMul.Linear(x, m, w, bias ?? ReadOnlySpan<float>.Empty, y, precision);
        for (int i = m * w.Rows; i < y.Length; i++) Assert.True(float.IsNaN(y[i]), $"y[{i}] past the output was written");
        return y[..(m * w.Rows)];
    }

    /// <summary>Random weights stored as <paramref name="dtype"/>, and the float values they hold.</summary>
    private static (WeightMatrix Matrix, float[] Values) Weights(DType dtype, int n, int k, int seed)
    {
        var values = KernelsReference.Random(n * k, seed);
        if (dtype == DType.F32) return (WeightMatrix.FromFloats(values, n, k), values);
        var bits = new ushort[n * k];
        for (int i = 0; i < bits.Length; i++)
        {
            bits[i] = dtype == DType.BF16 ? DTypes.FloatToBF16(values[i]) : BitConverter.HalfToUInt16Bits((Half)values[i]);
            values[i] = dtype == DType.BF16 ? DTypes.BF16ToFloat(bits[i]) : (float)BitConverter.UInt16BitsToHalf(bits[i]);
        }
        return (WeightMatrix.FromHalfBits(bits, dtype, n, k), values);
    }
}
