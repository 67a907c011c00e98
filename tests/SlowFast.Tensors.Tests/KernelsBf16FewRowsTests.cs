using System.Runtime.InteropServices;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Decoding batches (1 to 16 rows) in bfloat16 arithmetic, which run the generated row kernel
/// (<see cref="Bf16RowsKernel"/>): inputs rounded to bfloat16, products of bfloat16 values (exact),
/// float32 sums. Compared with a scalar reference of the same arithmetic whose products and sums are
/// exact in double.
/// </summary>
public unsafe class KernelsBf16FewRowsTests
{
    // Only the float32 sums round (in another order than the reference): error grows ~ with K. A wrong
    // or dropped term changes an output by about |x·w| ~ 0.1..1, far above this (see the dropped-term test).
    internal static double Tol(int k) => 2e-6 * k + 1e-6;

    // (N, K): N not a multiple of 6, 4 or 3 (partial weight groups); K odd with a partial 32-element
    // step, K below one step, K a whole number of steps (no tail), K = 1, K past 4096.
    private static readonly (int N, int K)[] Sizes = [(37, 83), (70, 300), (5, 31), (19, 64), (11, 1), (13, 4133)];

    public static IEnumerable<object[]> Cases()
    {
        for (int m = 1; m <= 16; m++)
            for (int s = 0; s < Sizes.Length; s++)
                yield return new object[] { m, s, (m + s) % 2 == 0 };
    }

    [Fact]
    public void The_row_kernel_runs_where_bfloat16_arithmetic_does()
    {
        // Otherwise the cases below would quietly test the fallback.
        Assert.Equal(MatMul.BFloat16Supported, Bf16RowsKernel.IsSupported);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Few_rows_match_the_bfloat16_reference(int m, int size, bool withBias)
    {
        var (n, k) = Sizes[size];
        var x = KernelsReference.Random(m * k, 41 + m);
        var (w, bits) = Weights(n, k, 42);
        var b = withBias ? KernelsReference.Random(n, 43) : null;
        var y = Run(x, m, w, b);
        KernelsReference.AssertClose(Reference(x, m, bits, n, k, b), y, Tol(k), 1e-5, $"y (m={m}, n={n}, k={k})");
    }

    [Theory]
    [InlineData(3, 700, 257)]     // many tasks per thread, the last groups partial
    [InlineData(9, 200, 1000)]    // three tiles of 3 rows over the same chunks of weight rows
    [InlineData(16, 130, 4500)]   // four tiles of 4; chunks of one group (long rows)
    public void Larger_shapes_match(int m, int n, int k)
    {
        var x = KernelsReference.Random(m * k, 51);
        var (w, bits) = Weights(n, k, 52);
        var b = KernelsReference.Random(n, 53);
        var y = Run(x, m, w, b);
        KernelsReference.AssertClose(Reference(x, m, bits, n, k, b), y, Tol(k), 1e-5, "y");
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 5)]
    [InlineData(3, 1)]
    [InlineData(5, 2)]
    [InlineData(16, 5)]
    [InlineData(17, 3)]
    public void Weights_packed_once_are_read_only_as_packed_at_every_row_count(int m, int size)
    {
        // A decoder packed at load releases its stored matrices: decoding rows must take the GEMM on the
        // strips. The stored values are wiped after packing, so a product that read them would be wrong.
        var (n, k) = Sizes[size];
        var x = KernelsReference.Random(m * k, 91 + m);
        var (w, bits) = Weights(n, k, 92);
        var b = KernelsReference.Random(n, 93);
        var expected = Reference(x, m, bits, n, k, b);
        if (!MatMul.BFloat16Supported) return;
        var packed = MatMul.PackForBFloat16(w);
        Array.Clear(bits);
        var y = Run(x, m, packed, b);
        KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, $"y (m={m}, n={n}, k={k})");
        // Each row's sums run in the same order whatever the row count: a batch gives each row what it gets alone.
        for (int r = 0; r < m; r++)
            Assert.Equal(y.AsSpan(r * n, n).ToArray(), Run(x[(r * k)..((r + 1) * k)], 1, packed, b));
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(8, 1)]
    [InlineData(13, 5)]
    public void The_tolerance_catches_one_dropped_term(int m, int size)
    {
        // What a broken accumulator (one lane, or one element of the masked tail, lost) would return:
        // the comparison above must reject it.
        var (n, k) = Sizes[size];
        var x = KernelsReference.Random(m * k, 71);
        var (w, bits) = Weights(n, k, 72);
        var y = Run(x, m, w, null);
        var expected = Reference(x, m, bits, n, k, null);
        KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y");
        int row = m - 1, col = n - 1;
        int kk = k - 1;   // the last element: in the masked tail when K % 32 ≠ 0
        double term = (double)DTypes.BF16ToFloat(DTypes.FloatToBF16(x[row * k + kk])) * DTypes.BF16ToFloat(bits[col * k + kk]);
        if (Math.Abs(term) < 0.05)
            for (int i = 0; i < k; i++)
            {
                double t = (double)DTypes.BF16ToFloat(DTypes.FloatToBF16(x[row * k + i])) * DTypes.BF16ToFloat(bits[col * k + i]);
                if (Math.Abs(t) > Math.Abs(term)) { term = t; kk = i; }
            }
        y[row * n + col] -= (float)term;
        Assert.ThrowsAny<Exception>(() => KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y"));
    }

    [Theory]
    [InlineData(1, 6, 77)]
    [InlineData(8, 3, 45)]
    [InlineData(4, 1, 33)]
    public void The_masked_tail_reads_nothing_past_the_weights(int rows, int weightRows, int k)
    {
        // The last weight row ends exactly at a page whose successor is inaccessible: reading one
        // element past K there would crash the test process.
        if (!Bf16RowsKernel.IsSupported) return;
        const int page = 4096;
        long rowBytes = k * 2L;
        long bytes = weightRows * rowBytes;
        long mapped = (bytes + page - 1) / page * page + page;
        byte* region = (byte*)mmap(null, (nuint)mapped, 3, 0x22, -1, 0);   // read+write, private anonymous
        Assert.True(region != (byte*)-1, "mmap failed");
        try
        {
            Assert.Equal(0, mprotect(region + mapped - page, page, 0));   // guard page
            ushort* w = (ushort*)(region + mapped - page - bytes);
            var wf = KernelsReference.Random(weightRows * k, 81);
            var bits = new ushort[wf.Length];
            for (int i = 0; i < wf.Length; i++) w[i] = bits[i] = DTypes.FloatToBF16(wf[i]);
            var x = KernelsReference.Random(rows * k, 82);

            int steps = (k + 31) / 32, mainSteps = k / 32;
            var xt = new ushort[steps * rows * 32];   // interleaved by step, zero past K
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < k; i++) xt[(i / 32 * rows + r) * 32 + i % 32] = DTypes.FloatToBF16(x[r * k + i]);
            var partials = new float[rows * weightRows * 16];
            fixed (ushort* xp = xt)
            fixed (float* pp = partials)
            {
                var args = new Bf16RowsArgs
                {
                    X = xp, W = (byte*)w + 64L * mainSteps, WStride = rowBytes, KNeg = -64L * mainSteps,
                    TailMask = (1L << (k % 32)) - 1, Out = pp, Groups = 1, GroupStep = weightRows * rowBytes,
                };
                Bf16RowsKernel.Get(rows, weightRows, k % 32 != 0)(&args);
            }
            var y = new float[rows * weightRows];
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < weightRows; j++)
                    y[r * weightRows + j] = partials.AsSpan((r * weightRows + j) * 16, 16).ToArray().Sum();
            var full = Reference(x, rows, bits, weightRows, k, null);
            KernelsReference.AssertClose(full, y, Tol(k), 1e-5, "partial sums");
        }
        finally { munmap(region, (nuint)mapped); }
    }

    /// <summary>Σ bf16(x)·w over K, exact in double (+ bias): the row kernel's arithmetic up to the float32 rounding of its sums.</summary>
    internal static float[] Reference(float[] x, int m, ushort[] w, int n, int k, float[]? bias)
    {
        var y = new float[m * n];
        bool rounded = MatMul.BFloat16Supported;   // elsewhere the product runs in float32
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
            {
                double s = bias?[j] ?? 0;
                for (int i = 0; i < k; i++)
                {
                    float xi = x[r * k + i];
                    if (rounded) xi = DTypes.BF16ToFloat(DTypes.FloatToBF16(xi));
                    s += (double)xi * DTypes.BF16ToFloat(w[j * k + i]);
                }
                y[r * n + j] = (float)s;
            }
        return y;
    }

    internal static float[] Run(float[] x, int m, WeightMatrix w, float[]? bias)
    {
        var y = new float[m * w.Rows + 5];
        Array.Fill(y, float.NaN);   // every output must be written, nothing past it
        MatMul.Linear(x, m, w, bias ?? ReadOnlySpan<float>.Empty, y, MatMulPrecision.BFloat16);
        for (int i = m * w.Rows; i < y.Length; i++) Assert.True(float.IsNaN(y[i]), $"y[{i}] past the output was written");
        return y[..(m * w.Rows)];
    }

    internal static (WeightMatrix Matrix, ushort[] Bits) Weights(int n, int k, int seed)
    {
        var values = KernelsReference.Random(n * k, seed);
        var bits = values.Select(DTypes.FloatToBF16).ToArray();
        return (WeightMatrix.FromHalfBits(bits, DType.BF16, n, k), bits);
    }

    [DllImport("libc")] private static extern void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);
    [DllImport("libc")] private static extern int mprotect(void* addr, nuint length, int prot);
    [DllImport("libc")] private static extern int munmap(void* addr, nuint length);
}
