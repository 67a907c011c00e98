using System.Runtime.Intrinsics;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Matrix products. <c>Linear</c> is nn.Linear over a stored <see cref="WeightMatrix"/>;
/// <see cref="MatMulTransB"/> multiplies two float32 matrices held in memory.
/// </summary>
/// <remarks>
/// Two strategies: for few rows (decoding, M ≤ <see cref="PackedMinRows"/>) a bandwidth-bound
/// dot-product kernel streams each weight row once and converts it in registers; for many rows
/// (prefill, vision) a cache-blocked GEMM packs weight panels (converted to float32 once per panel)
/// and input panels and runs a register-blocked microkernel. Both are split over
/// <see cref="KernelThreads"/>.
/// </remarks>
public static unsafe partial class MatMul
{
    /// <summary>Row count from which <c>Linear</c> may use the packed GEMM.</summary>
    public const int PackedMinRows = 16;

    /// <summary>
    /// The packed GEMM is used only for short rows (K below this); for longer rows the blocked
    /// dot-product kernel measured faster on this class of machine at every M (it needs no
    /// transposition and converts weights in registers), see KernelBench.
    /// </summary>
    public const int PackedMaxCols = 256;

    /// <summary>
    /// Row count from which bfloat16 arithmetic uses the bfloat16 GEMM rather than rounding the rows
    /// and taking the float32 dot-product path (when the row kernel does not take them first). Its vdpbf16ps does two multiply-adds per lane and
    /// needs no weight conversion in the inner loop, so from a few rows on it stays near the cost of
    /// reading the weights while the float32 path becomes FMA-bound (see docs/benchmarks/few-rows-2026-12-01.md).
    /// </summary>
    public const int Bf16GemmMinRows = 4;

    /// <summary>
    /// Most rows that bfloat16 arithmetic runs through the row kernel (<see cref="Bf16RowsKernel"/>),
    /// which reads the weights in their stored layout once for all rows; up to 16 rows it measured
    /// faster than the bfloat16 GEMM, whose weight packing costs as much as reading the weights
    /// (docs/benchmarks/bf16-few-rows-2026-12-01.md). Tests may lower it to reach the other paths.
    /// </summary>
    internal static int Bf16RowsMaxRows { get; set; } = Bf16Rows.MaxRows;

    private static bool UsePacked(int m, int k) => m >= PackedMinRows && k < PackedMaxCols;

    /// <summary>
    /// y[m, N] = x[m, K] · Wᵀ + bias, with W = <paramref name="w"/> ([N, K]). <paramref name="bias"/> is
    /// empty (no bias) or N floats. x and y must not overlap.
    /// </summary>
    public static void Linear(ReadOnlySpan<float> x, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<float> y)
        => Linear(x, m, w, bias, y, MatMulPrecision.Float32);

    /// <summary>
    /// <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float})"/> in the
    /// given arithmetic. <see cref="MatMulPrecision.BFloat16"/> applies to BF16-stored weights on machines
    /// where <see cref="BFloat16Supported"/>; otherwise the product runs in float32 (F32/F16 weights are
    /// never rounded). The arithmetic does not depend on the row count: up to
    /// <see cref="Bf16RowsMaxRows"/> rows (decoding) run the generated row kernel, more the bfloat16
    /// GEMM; where the row kernel cannot run, fewer than <see cref="Bf16GemmMinRows"/> rows round the
    /// inputs to bfloat16 and take the float32 path, whose products of bfloat16 values are exact.
    /// Weights packed for the bfloat16 GEMM (<see cref="PackForBFloat16"/>) take the GEMM at every row count.
    /// </summary>
    public static void Linear(ReadOnlySpan<float> x, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<float> y, MatMulPrecision precision)
    {
        int n = w.Rows, k = w.Cols;
        if (w.Data == null) throw new ArgumentException("weight matrix is empty", nameof(w));
        if (m <= 0) throw new ArgumentOutOfRangeException(nameof(m), $"row count {m} must be positive");
        if ((long)m * k > x.Length) throw new ArgumentException($"x holds {x.Length} floats; [{m}, {k}] needs {(long)m * k}", nameof(x));
        if ((long)m * n > y.Length) throw new ArgumentException($"y holds {y.Length} floats; [{m}, {n}] needs {(long)m * n}", nameof(y));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"bias has {bias.Length} floats; expected {n}", nameof(bias));

        fixed (float* xp = x)
        fixed (float* yp = y)
        fixed (float* bp = bias)
        {
            var operands = new Operands
            {
                X = xp, XStride = k, M = m,
                W = w.Data, WType = w.DType, N = n, K = k, Bf16Strips = w.Bf16Strips,
                Bias = bias.IsEmpty ? null : bp,
                Y = yp, YStride = n,
            };
            // Quantized weights: the integer arithmetic whatever the precision asked, few rows through the
            // row kernel, many through the GEMM's integer tiles.
            if (w.Format is Quantization.BlockFormat format)
            {
                operands.Format = format;
                operands.Scales = w.Scales;
                if (m >= Quantized.GemmMinRows(format) && QuantTileKernel.IsSupported) BlockedGemm.Run(in operands);
                else Quantized.Run(in operands, format, w.Scales);
                return;
            }
            bool bf16Math = w.DType == DType.BF16 && Effective(precision) == MatMulPrecision.BFloat16;
            // Weights packed once are read only as packed, at any row count: the GEMM on them is as fast as
            // the row kernel from one row on, and the stored matrix may have been released.
            if (bf16Math && w.Bf16Strips != null) BlockedGemm.Run(in operands);
            else if (bf16Math && m <= Bf16RowsMaxRows && Bf16RowsKernel.IsSupported) Bf16Rows.Run(in operands);
            else if (bf16Math && m >= Bf16GemmMinRows) BlockedGemm.Run(in operands);
            else if (bf16Math) DotProductsOnRoundedRows(in operands);
            else if (UsePacked(m, k)) PackedGemm.Run(in operands);
            else DotProducts.Run(in operands);
        }
    }

    /// <summary>
    /// <paramref name="w"/> (BF16) with its weights also packed as the bfloat16 GEMM reads them
    /// (<see cref="WeightMatrix.Bf16Strips"/>, as many bytes again as the matrix, rounded up to whole
    /// 64-row strips): products in bfloat16 arithmetic then read only the strips, at any row count, and
    /// skip packing the weights on every call, which costs about as much as reading them (the vision
    /// tower's matrices; the decoder's, packed at load in place of the stored ones). Float32 products
    /// still read <see cref="WeightMatrix.Data"/>. Returns <paramref name="w"/> itself where the bfloat16
    /// GEMM cannot run or it is packed already.
    /// </summary>
    public static WeightMatrix PackForBFloat16(WeightMatrix w)
    {
        if (w.Data == null) throw new ArgumentException("weight matrix is empty", nameof(w));
        if (w.DType != DType.BF16 || w.IsQuantized) throw new ArgumentException($"only BF16 weights are packed for the bfloat16 GEMM, not {(w.IsQuantized ? "quantized" : w.DType.ToString())}", nameof(w));
        if (!PackingForBFloat16Allocates(w)) return w;
        long slots = PackedBFloat16Bytes(w.Rows, w.Cols) / sizeof(uint);
        if (slots > Array.MaxLength) throw new ArgumentException($"weight matrix [{w.Rows}, {w.Cols}] is too large to pack", nameof(w));
        var array = HugePages.AllocateUninitialized<uint>((int)slots);
        fixed (uint* start = array)   // pinned-heap arrays never move
        {
            uint* strips = (uint*)(((nint)start + 63) & ~(nint)63);
            var op = new Operands { W = w.Data, WType = DType.BF16, N = w.Rows, K = w.Cols };
            BlockedGemm.PackAll(in op, strips);
            return new WeightMatrix(w, strips, array);
        }
    }

    /// <summary>Whether <see cref="PackForBFloat16"/> makes a packed copy of <paramref name="w"/> (BF16, not packed yet, the bfloat16 GEMM runs here) rather than returning it.</summary>
    public static bool PackingForBFloat16Allocates(WeightMatrix w) =>
        w.DType == DType.BF16 && !w.IsQuantized && w.Bf16Strips == null && BFloat16Supported;

    /// <summary>
    /// Bytes <see cref="PackForBFloat16"/> allocates for a [<paramref name="rows"/>, <paramref name="cols"/>] BF16
    /// matrix: whole 64-row strips of bfloat16 pairs, and 64 bytes of room to align them.
    /// </summary>
    public static long PackedBFloat16Bytes(int rows, int cols) =>
        ((long)(rows + BlockedGemm.Strip - 1) / BlockedGemm.Strip * ((cols + 1) / 2) * BlockedGemm.Strip + 16) * sizeof(uint);

    [ThreadStatic] private static float[]? _roundedRows;

    /// <summary>A few rows in bfloat16 arithmetic: the rows rounded to bfloat16 (kept as float32), then the float32 path.</summary>
    private static void DotProductsOnRoundedRows(in Operands op)
    {
        float* rounded = Scratch.Align64(Scratch.Get(ref _roundedRows, (long)op.M * op.K + 64));
        for (int r = 0; r < op.M; r++)
        {
            float* src = op.X + (long)r * op.XStride, dst = rounded + (long)r * op.K;
            int i = 0;
            for (; i + 16 <= op.K; i += 16)
                (DTypes.FloatToBF16(Vector512.Load(src + i)) << 16).AsSingle().Store(dst + i);
            for (; i < op.K; i++) dst[i] = DTypes.BF16ToFloat(DTypes.FloatToBF16(src[i]));
        }
        var copy = op;
        copy.X = rounded;
        copy.XStride = op.K;
        DotProducts.Run(in copy);
    }

    /// <summary>c[m, n] = a[m, k] · b[n, k]ᵀ, everything float32 row-major. c must not overlap a or b.</summary>
    public static void MatMulTransB(ReadOnlySpan<float> a, int m, int k, ReadOnlySpan<float> b, int n, Span<float> c)
    {
        if (m <= 0 || k <= 0 || n <= 0) throw new ArgumentOutOfRangeException(nameof(m), $"shape m={m}, k={k}, n={n} must be positive");
        if ((long)m * k > a.Length) throw new ArgumentException($"a holds {a.Length} floats; [{m}, {k}] needs {(long)m * k}", nameof(a));
        if ((long)n * k > b.Length) throw new ArgumentException($"b holds {b.Length} floats; [{n}, {k}] needs {(long)n * k}", nameof(b));
        if ((long)m * n > c.Length) throw new ArgumentException($"c holds {c.Length} floats; [{m}, {n}] needs {(long)m * n}", nameof(c));
        fixed (float* ap = a)
        fixed (float* bp = b)
        fixed (float* cp = c)
        {
            var operands = new Operands
            {
                X = ap, XStride = k, M = m,
                W = (byte*)bp, WType = DType.F32, N = n, K = k,
                Bias = null,
                Y = cp, YStride = n,
            };
            if (UsePacked(m, k)) PackedGemm.Run(in operands);
            else DotProducts.Run(in operands);
        }
    }

    /// <summary>Raw operands of one product, shared by both strategies.</summary>
    internal struct Operands
    {
        public float* X; public int XStride; public int M;
        public byte* W; public DType WType; public int N; public int K;
        public float* Bias;
        public float* Y; public int YStride;
        /// <summary>Block format of quantized weights (W holds their integers), else null.</summary>
        public Quantization.BlockFormat? Format; public Half* Scales;
        /// <summary>The weights already packed for the bfloat16 GEMM (WeightMatrix.Bf16Strips), else null.</summary>
        public uint* Bf16Strips;
        /// <summary>
        /// Bfloat16 GEMM only: the input already rounded, rows of <see cref="BFloat16RowElements"/>(K) (X unused),
        /// else null; and the output as bfloat16 rows of YBf16Stride elements (Y unused), else null.
        /// </summary>
        public ushort* XBf16, YBf16; public int YBf16Stride;
        // Fusions (bfloat16 GEMM only, see LinearFusion): LayerNorm of each input row over K as it is
        // rounded; GELU, then residual[r, c] += ResidualScale[c]·y[r, c], on each finished output tile.
        public float* NormWeight, NormBias; public float NormEps;
        public bool Gelu;
        public float* ResidualScale, Residual; public int ResidualStride;
    }
}
