using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// A matrix W [N, K] (y = x·Wᵀ) quantized to int8 with one scale per output channel (a row of W), packed
/// for <see cref="Int8TileKernel"/>. Rounding: s = max|w| / 127 and q = round(w · (127 / max|w|)), to
/// nearest even, all in float32; a row of zeros gets s = 0 and q = 0.
/// </summary>
/// <remarks>
/// Strips of 64 channels: for each quad of k, the 64 channels' four weights as unsigned bytes q + 128
/// (256 bytes), K padded with zeros to whole quads. The scales are kept apart, 64 a strip (zero past N).
/// Immutable once made, so any number of threads may read it.
/// </remarks>
public sealed unsafe class Int8ChannelWeights
{
    /// <summary>Output channels N.</summary>
    public int Rows { get; }
    /// <summary>Input features K.</summary>
    public int Cols { get; }
    /// <summary>Quads of k per strip: ceil(K / 4).</summary>
    internal int Quads { get; }
    internal int StripCount => StripsFor(Rows);
    internal long StripBytes => StripBytesFor(Cols);

    private static int StripsFor(int rows) => (rows + Int8TileKernel.Columns - 1) / Int8TileKernel.Columns;
    private static long StripBytesFor(int cols) => (long)((cols + 3) / 4) * Int8TileKernel.Columns * 4;

    private readonly byte[] _weights;   // pinned: the strips one after another, StripBytes each
    private readonly float[] _scales;   // pinned: 64 a strip, so channel n's scale is at n

    private Int8ChannelWeights(int rows, int cols)
    {
        Rows = rows;
        Cols = cols;
        Quads = (cols + 3) / 4;
        _weights = HugePages.AllocateUninitialized<byte>(checked((int)(StripCount * StripBytes)));
        _scales = GC.AllocateArray<float>(StripCount * Int8TileKernel.Columns, pinned: true);
    }

    /// <summary>Bytes <see cref="Quantize"/> allocates for a [<paramref name="rows"/>, <paramref name="cols"/>] matrix: the strips' weights and scales.</summary>
    public static long BytesFor(int rows, int cols) => StripsFor(rows) * (StripBytesFor(cols) + Int8TileKernel.Columns * sizeof(float));

    /// <summary>Strip <paramref name="s"/>'s weights (pinned-heap arrays never move).</summary>
    internal byte* Strip(int s) => (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _weights[0]) + s * StripBytes;
    /// <summary>Strip <paramref name="s"/>'s 64 scales.</summary>
    internal float* StripScales(int s) => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _scales[0]) + s * Int8TileKernel.Columns;

    /// <summary>Output channel <paramref name="row"/>'s scale s.</summary>
    public float Scale(int row) => _scales[row];

    /// <summary>Output channel <paramref name="row"/>'s quantized weight at feature <paramref name="col"/>.</summary>
    public sbyte Weight(int row, int col)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)row, (uint)Rows, nameof(row));
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)col, (uint)Cols, nameof(col));
        int s = row / Int8TileKernel.Columns, c = row % Int8TileKernel.Columns;
        return (sbyte)(Strip(s)[(col / 4 * Int8TileKernel.Columns + c) * 4 + col % 4] - 128);
    }

    /// <summary>Quantizes <paramref name="w"/> (F32, BF16 or F16; not block-quantized), its rows in parallel.</summary>
    public static Int8ChannelWeights Quantize(WeightMatrix w)
    {
        if (w.Data == null) throw new ArgumentException("weight matrix is empty", nameof(w));
        if (w.IsQuantized) throw new ArgumentException("block-quantized weights cannot be requantized per channel", nameof(w));
        var q = new Int8ChannelWeights(w.Rows, w.Cols);
        var job = new QuantizeJob { W = w, Q = q };
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(job);
        try
        {
            KernelThreads.For(q.StripCount, (void*)System.Runtime.InteropServices.GCHandle.ToIntPtr(handle), &QuantizeStrip);
        }
        finally
        {
            handle.Free();
        }
        return q;
    }

    private sealed class QuantizeJob { public WeightMatrix W; public Int8ChannelWeights Q = null!; }

    private static void QuantizeStrip(void* context, int s)
    {
        var job = (QuantizeJob)System.Runtime.InteropServices.GCHandle.FromIntPtr((nint)context).Target!;
        var q = job.Q;
        byte* strip = q.Strip(s);
        float* scales = q.StripScales(s);
        new Span<byte>(strip, (int)q.StripBytes).Fill(128);   // pad: zero weights (their inputs are zero too)
        var row = new float[q.Cols];
        var quantized = new sbyte[q.Cols];
        fixed (float* src = row)
        fixed (sbyte* dst = quantized)
            for (int c = 0; c < Int8TileKernel.Columns; c++)
            {
                int n = s * Int8TileKernel.Columns + c;
                if (n >= q.Rows) { scales[c] = 0; continue; }
                job.W.ReadRow(n, 0, row);
                (scales[c], _) = MatMul.QuantizeRowInt8(src, q.Cols, dst);
                for (int k = 0; k < q.Cols; k++)
                    strip[(k / 4 * Int8TileKernel.Columns + c) * 4 + k % 4] = (byte)(quantized[k] + 128);
            }
    }
}

public static unsafe partial class MatMul
{
    /// <summary>Where <see cref="LinearInt8"/> runs: AVX512-VNNI and generated code allowed.</summary>
    public static bool Int8ChannelsSupported => Int8TileKernel.IsSupported;

    /// <summary>round(v) to nearest even, as an int8 value (|v| ≤ 127.5 by construction of the scales).</summary>
    private static int RoundToInt8(float v) => Math.Clamp((int)MathF.Round(v, MidpointRounding.ToEven), -127, 127);

    /// <summary>
    /// The one quantization rule of the int8 products, for weight rows and input rows alike: s = max|v| / 127
    /// and q = round(v · (127 / max|v|)) to nearest even, in float32 (0 for a row of zeros). Writes the
    /// <paramref name="k"/> signed bytes to <paramref name="dst"/>; returns s and Σq.
    /// </summary>
    internal static (float Scale, int Sum) QuantizeRowInt8(float* src, int k, sbyte* dst)
    {
        int i = 0;
        var maxLanes = Vector512<float>.Zero;
        for (; i + 16 <= k; i += 16) maxLanes = Vector512.Max(maxLanes, Vector512.Abs(Vector512.Load(src + i)));
        float max = 0;
        for (int l = 0; l < 16; l++) max = MathF.Max(max, maxLanes[l]);
        for (; i < k; i++) max = MathF.Max(max, MathF.Abs(src[i]));
        float inverse = max > 0 ? 127f / max : 0f;
        // vcvtps2dq rounds to nearest even (the default MXCSR mode), as RoundToInt8 does.
        var scale = Vector512.Create(inverse);
        var sums = Vector512<int>.Zero;
        for (i = 0; Avx512F.IsSupported && i + 16 <= k; i += 16)   // else all scalar (the weights may be quantized anywhere)
        {
            var q = Avx512F.ConvertToVector512Int32(Vector512.Load(src + i) * scale);
            sums += q;
            Avx512F.ConvertToVector128SByte(q).Store(dst + i);
        }
        int sum = Vector512.Sum(sums);
        for (; i < k; i++)
        {
            int q = RoundToInt8(src[i] * inverse);
            dst[i] = (sbyte)q;
            sum += q;
        }
        return (max / 127f, sum);
    }

    /// <summary>
    /// y = x·Wᵀ (+ bias) in int8 arithmetic: each input row quantized with its own scale (d = max|x| / 127,
    /// q = round(x · (127 / max|x|)) to nearest even, in float32), the integer dot products exact in int32,
    /// then y = float(Σ q_x·q_w) · (d · s_w) (+ bias). Changes the numbers against the float and bfloat16
    /// products: for the user to choose (the vision tower's optional int8).
    /// <para>
    /// With <paramref name="fusion"/>, its output work (GELU, then the scaled add into
    /// <paramref name="residual"/>, [m, N]) is done on each output tile while it is in cache, bit for bit as
    /// the separate passes (<see cref="Activations.Gelu(Span{float})"/>; residual += y · scale, multiply then
    /// add; the residual must not overlap x or y). An input LayerNorm is not supported: the rows are quantized as they are. With a residual scale
    /// <paramref name="y"/> may be empty: the product then goes only into the residual and is never written out.
    /// </para>
    /// </summary>
    public static void LinearInt8(ReadOnlySpan<float> x, int m, Int8ChannelWeights w, ReadOnlySpan<float> bias, Span<float> y,
        in LinearFusion fusion = default, Span<float> residual = default)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (!Int8ChannelsSupported) throw new PlatformNotSupportedException("int8 products need AVX512-VNNI");
        int n = w.Rows, k = w.Cols;
        if (m < 1) throw new ArgumentOutOfRangeException(nameof(m), $"row count {m} must be positive");
        if (k > Int8TileKernel.MaxK) throw new ArgumentException($"K = {k} is more than the {Int8TileKernel.MaxK} features whose int8 sums stay exact in int32", nameof(w));
        if (x.Length < (long)m * k) throw new ArgumentException($"x has {x.Length} floats; {m} rows of {k} need {(long)m * k}", nameof(x));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"bias has {bias.Length} values; the weights have {n} outputs", nameof(bias));
        if (fusion.InputNormWeight != null) throw new ArgumentException("int8 products quantize their input rows as they are: no input LayerNorm", nameof(fusion));
        var scale = fusion.ResidualScale;
        if (scale != null)
        {
            if (scale.Length != n) throw new ArgumentException($"residual scale has {scale.Length} values; the weights have {n} outputs", nameof(fusion));
            if (residual.Length < (long)m * n) throw new ArgumentException($"residual has {residual.Length} floats; {m} rows of {n} need {(long)m * n}", nameof(residual));
        }
        if ((scale == null || !y.IsEmpty) && y.Length < (long)m * n) throw new ArgumentException($"y has {y.Length} floats; {m} rows of {n} need {(long)m * n}", nameof(y));
        fixed (float* xp = x, yp = y, bp = bias, rp = residual, sp = scale)
        {
            var job = new Int8Job
            {
                X = xp, Y = y.IsEmpty ? null : yp, Bias = bias.IsEmpty ? null : bp, M = m, N = n, K = k,
                Gelu = fusion.Gelu, Residual = scale != null ? rp : null, ResidualScale = sp,
                Strips = w.Strip(0), Scales = w.StripScales(0), StripBytes = w.StripBytes, Quads = w.Quads,
                RowBytes = w.Quads * 4L,
                RowBlocks = (m + Int8RowBlock - 1) / Int8RowBlock,
            };
            job.Q = (sbyte*)Scratch.Align64(Scratch.Get(ref _int8Rows, (m * job.RowBytes + 64 + 3) / 4));
            job.RowScale = Scratch.Align64(Scratch.Get(ref _int8RowScales, m + Int8TileKernel.MaxRows + 16));
            job.RowCorrection = (int*)Scratch.Align64(Scratch.Get(ref _int8RowCorrections, m + Int8TileKernel.MaxRows + 16));
            KernelThreads.For((m + Int8QuantizeRows - 1) / Int8QuantizeRows, &job, &QuantizeRows);
            KernelThreads.For(job.RowBlocks * w.StripCount, &job, &Int8Task);
            GC.KeepAlive(w);   // its pinned arrays are read through raw pointers until here
        }
    }

    /// <summary>Rows per task: 16 tiles of 6.</summary>
    private const int Int8RowBlock = 96;
    private const int Int8QuantizeRows = 32;

    [ThreadStatic] private static float[]? _int8Rows, _int8RowScales, _int8RowCorrections, _int8Tile;

    private struct Int8Job
    {
        public float* X, Y, Bias;          // Y null: the tiles go only into the residual
        public float* Residual, ResidualScale;
        public bool Gelu;
        public int M, N, K, RowBlocks;
        public long RowBytes, StripBytes;
        public byte* Strips;      // the weights' strips, StripBytes apart
        public float* Scales;     // their scales, 64 a strip
        public int Quads;
        public sbyte* Q;
        public float* RowScale;
        public int* RowCorrection;
    }

    /// <summary>Rows [32·i, +32) of x as signed bytes with their scales and corrections (−128·Σq).</summary>
    private static void QuantizeRows(void* context, int item)
    {
        ref Int8Job job = ref *(Int8Job*)context;
        int r1 = Math.Min(job.M, (item + 1) * Int8QuantizeRows);
        for (int r = item * Int8QuantizeRows; r < r1; r++)
        {
            sbyte* dst = job.Q + r * job.RowBytes;
            (job.RowScale[r], int sum) = QuantizeRowInt8(job.X + (long)r * job.K, job.K, dst);
            for (long pad = job.K; pad < job.RowBytes; pad++) dst[pad] = 0;
            job.RowCorrection[r] = -128 * sum;
        }
    }

    /// <summary><paramref name="tiles"/> tiles of <paramref name="tileRows"/> rows from row <paramref name="firstRow"/> into <paramref name="c"/> (rows <paramref name="cStride"/> floats apart).</summary>
    private static void RunInt8Tiles(ref Int8Job job, Int8TileArgs* args, int firstRow, int tileRows, int tiles, float* c, long cStride, int groups, bool masked)
    {
        args->A = job.Q + firstRow * job.RowBytes;
        args->C = c;
        args->RowScale = job.RowScale + firstRow;
        args->RowCorrection = job.RowCorrection + firstRow;
        args->MTiles = tiles;
        args->ATileStep = tileRows * job.RowBytes;
        args->CTileStep = tileRows * cStride * 4;
        Int8TileKernel.Get(tileRows, groups, masked)(args);
    }

    /// <summary>Rows [96·i, +96) × strip j: the tile kernel over the block's tiles, then the output work on the finished tiles.</summary>
    private static void Int8Task(void* context, int task)
    {
        ref Int8Job job = ref *(Int8Job*)context;
        int strip = task / job.RowBlocks, block = task % job.RowBlocks;   // consecutive tasks share a strip (kept in L2)
        int m0 = block * Int8RowBlock, rows = Math.Min(Int8RowBlock, job.M - m0);
        int n0 = strip * Int8TileKernel.Columns, cols = Math.Min(Int8TileKernel.Columns, job.N - n0);
        int groups = (cols + 15) / 16;
        bool masked = cols % 16 != 0;
        int quads = job.Quads;
        // Where the tiles land: y, or with no y a block of this thread's own (96 × 64 floats, L1/L2-sized).
        long cStride = job.Y != null ? job.N : Int8TileKernel.Columns;
        float* c = job.Y != null ? job.Y + (long)m0 * job.N + n0
            : Scratch.Align64(Scratch.Get(ref _int8Tile, Int8RowBlock * Int8TileKernel.Columns + 16));
        var args = new Int8TileArgs
        {
            AStride = job.RowBytes, B = job.Strips + strip * job.StripBytes, S = job.Scales + strip * Int8TileKernel.Columns,
            CStride = cStride * 4, KMain = quads / Int8TileKernel.Unroll, KRem = quads % Int8TileKernel.Unroll,
            LastMask = masked ? (1L << (cols % 16)) - 1 : 0,
        };
        int full = rows / Int8TileKernel.MaxRows, rest = rows % Int8TileKernel.MaxRows;
        if (full > 0) RunInt8Tiles(ref job, &args, m0, Int8TileKernel.MaxRows, full, c, cStride, groups, masked);
        if (rest > 0) RunInt8Tiles(ref job, &args, m0 + full * Int8TileKernel.MaxRows, rest, 1, c + full * Int8TileKernel.MaxRows * cStride, cStride, groups, masked);
        if (job.Bias != null || job.Gelu || job.Residual != null)
            for (int r = 0; r < rows; r++) FinishInt8Row(ref job, c + r * cStride, m0 + r, n0, cols);
    }

    /// <summary>
    /// One finished tile row (columns [n0, +cols) of output row <paramref name="row"/>, at <paramref name="y"/>):
    /// + bias, GELU, then residual += y · scale. Each step is the separate pass's arithmetic on the same
    /// values, and a tile splits a row into vectors and a scalar tail where a whole row does (n0 is a multiple of 64).
    /// </summary>
    private static void FinishInt8Row(ref Int8Job job, float* y, int row, int n0, int cols)
    {
        float* b = job.Bias + n0, scale = job.ResidualScale + n0;
        float* res = job.Residual != null ? job.Residual + (long)row * job.N + n0 : null;
        bool bias = job.Bias != null, gelu = job.Gelu;
        int c = 0;
        for (; c + 16 <= cols; c += 16)
        {
            var v = Vector512.Load(y + c);
            if (bias) v += Vector512.Load(b + c);
            if (gelu) v = Activations.Gelu(v);
            v.Store(y + c);
            if (res != null) (Vector512.Load(res + c) + v * Vector512.Load(scale + c)).Store(res + c);
        }
        for (; c < cols; c++)
        {
            float v = y[c];
            if (bias) v += b[c];
            if (gelu) v = Activations.Gelu(v);
            y[c] = v;
            if (res != null) res[c] += v * scale[c];
        }
    }
}
