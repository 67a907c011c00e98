using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Kernels;

/// <summary>Arithmetic of a matrix product.</summary>
public enum MatMulPrecision
{
    /// <summary>
    /// Float32 activations times the stored weights widened exactly to float32, float32 sums. The
    /// default: what the golden tests hold the model to.
    /// </summary>
    Float32,
    /// <summary>
    /// For BF16-stored weights: activations rounded to bfloat16 (nearest even), products summed in
    /// float32 — the arithmetic of PyTorch's bfloat16 matmul on CPU, at about twice the throughput on
    /// CPUs with AVX512-BF16. Products with F32/F16 weights, and every product on CPUs without
    /// AVX512-BF16, run as <see cref="Float32"/>.
    /// </summary>
    BFloat16,
}

public static unsafe partial class MatMul
{
    /// <summary>Whether <see cref="MatMulPrecision.BFloat16"/> products run on this machine's bfloat16 dot-product instructions.</summary>
    public static bool BFloat16Supported => Bf16TileKernel.IsSupported;

    /// <summary>The arithmetic that products with BF16 weights asked for <paramref name="precision"/> get on this machine.</summary>
    public static MatMulPrecision Effective(MatMulPrecision precision) =>
        precision == MatMulPrecision.BFloat16 && BFloat16Supported ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32;

    /// <summary>"bf16" or "f32" (the names of <c>--precision</c>): the arithmetic <paramref name="precision"/> gets on this machine.</summary>
    public static string EffectiveName(MatMulPrecision precision) => Effective(precision) == MatMulPrecision.BFloat16 ? "bf16" : "f32";

    /// <summary>
    /// The bfloat16 strategy: a cache-blocked GEMM around the generated <see cref="Bf16TileKernel"/>.
    /// </summary>
    /// <remarks>
    /// (1) The input rows are rounded to bfloat16 once, pairs of consecutive features side by side
    /// (rows padded to a whole number of pairs). (2) The output columns are taken a band at a time
    /// (<see cref="PanelBytes"/> of packed weights): the band's weights are packed into 64-column
    /// strips — per feature pair the 64 columns' pairs, 256 bytes, one load per 16 columns — split
    /// over the threads (the first band in the same parallel pass as step 1); then (3) every block
    /// of <see cref="MC"/> rows × <see cref="NC"/> columns is a task: it runs each strip over its rows,
    /// <see cref="KCPairs"/> feature pairs at a time, so the input block and the output block stay in
    /// L2 while the strips stream from L3. Small equal tasks keep both cores busy to the end (one
    /// task per column block left one core idle for up to a task's length).
    /// On 2048×3584×3584 nearly all the time is in the kernel; rounding and packing are a few percent.
    /// MC 240, NC 512 and KCPairs 128 measured the same within the machine's noise.
    /// </remarks>
    private static class Bf16Gemm
    {
        public const int NC = 256;        // output columns per task (4 strips)
        public const int KCPairs = 256;   // feature pairs per block (a strip block is 64 KiB)
        public const int MC = 120;        // input rows per task (20 tiles of 6)
        // Packed weights per band (at least NC columns): small enough to stay in L3 while every row block
        // reads it (32 MiB bands, streamed from memory, measured 4–5% slower).
        public const long PanelBytes = 8 << 20;
        private const int Strip = Bf16TileKernel.Columns;

        [ThreadStatic] private static float[]? _panel;   // packed weights, 4 bytes (one bf16 pair) per float slot
        [ThreadStatic] private static float[]? _input;   // bf16 input rows, same

        private struct Job
        {
            public Operands Op;
            public uint* X;           // [M][RowPairs] bf16 pairs
            public int RowPairs;      // pairs per row (≥ ceil(K/2), rounded up to 16 so rows are 64-byte aligned)
            public int Pairs;         // ceil(K/2)
            public uint* Panel;       // the band's packed weights: strip s, pair p at Panel[(s·Pairs + p)·64]
            public int Band0, BandCols, ColumnBlocks, Strips;
        }

        /// <summary>y = x·Wᵀ (+ bias) for BF16-stored weights (MatMul.Linear sends only those here).</summary>
        public static void Run(in Operands op)
        {
            if (op.WType != DType.BF16) throw new ArgumentException($"the bfloat16 GEMM takes BF16 weights, not {op.WType}");
            var job = new Job { Op = op, RowPairs = ((op.K + 1) / 2 + 15) & ~15, Pairs = (op.K + 1) / 2 };
            job.X = (uint*)Scratch.Align64(Scratch.Get(ref _input, (long)op.M * job.RowPairs + 16));
            long stripFloats = (long)job.Pairs * Strip;
            int bandCols = (int)Math.Max(NC, PanelBytes / (stripFloats * 4) * Strip / NC * NC);
            bandCols = Math.Min(bandCols, (op.N + Strip - 1) / Strip * Strip);
            job.Panel = (uint*)Scratch.Align64(Scratch.Get(ref _panel, (bandCols + Strip - 1) / Strip * stripFloats + 16));
            int mBlocks = (op.M + MC - 1) / MC;
            for (job.Band0 = 0; job.Band0 < op.N; job.Band0 += bandCols)
            {
                job.BandCols = Math.Min(bandCols, op.N - job.Band0);
                job.ColumnBlocks = (job.BandCols + NC - 1) / NC;
                job.Strips = (job.BandCols + Strip - 1) / Strip;
                // The first band's packing shares one parallel pass with rounding the input rows.
                KernelThreads.For(job.Strips + (job.Band0 == 0 ? op.M : 0), &job, &PrepareTask);
                KernelThreads.For(mBlocks * job.ColumnBlocks, &job, &ComputeTask);
            }
        }

        /// <summary>Items [0, Strips) pack the band's weight strips; the items after them round one input row each.</summary>
        private static void PrepareTask(void* context, int item)
        {
            ref Job job = ref *(Job*)context;
            if (item < job.Strips)
                PackStrip(ref job.Op, job.Band0 + item * Strip, job.Panel + (long)item * job.Pairs * Strip);
            else
                ConvertRow(ref job, item - job.Strips);
        }

        /// <summary>Output rows [MC·i, +MC) × the band's columns [NC·j, +NC), over all features.</summary>
        private static void ComputeTask(void* context, int task)
        {
            ref Job job = ref *(Job*)context;
            ref Operands op = ref job.Op;
            int m0 = task / job.ColumnBlocks * MC, c0 = task % job.ColumnBlocks * NC;
            int rows = Math.Min(MC, op.M - m0), cols = Math.Min(NC, job.BandCols - c0);
            int strips = (cols + Strip - 1) / Strip, pairs = job.Pairs;
            int full = rows / Bf16TileKernel.MaxRows, rest = rows % Bf16TileKernel.MaxRows;

            Bf16TileArgs args = default;
            args.AStride = job.RowPairs * 4L;
            args.CStride = op.YStride * 4L;
            args.ATileStep = args.AStride * Bf16TileKernel.MaxRows;
            args.CTileStep = args.CStride * Bf16TileKernel.MaxRows;
            for (int p0 = 0; p0 < pairs; p0 += KCPairs)
            {
                int kcp = Math.Min(KCPairs, pairs - p0);
                bool addToC = p0 > 0 || op.Bias != null;
                args.KMain = kcp / Bf16TileKernel.Unroll;
                args.KRem = kcp % Bf16TileKernel.Unroll;
                for (int s = 0; s < strips; s++)
                {
                    int stripCols = Math.Min(Strip, cols - s * Strip);
                    int groups = (stripCols + 15) / 16;
                    bool masked = stripCols % 16 != 0;
                    int strip = c0 / Strip + s;
                    args.LastMask = masked ? (1L << (stripCols % 16)) - 1 : 0xFFFF;
                    args.A = (ushort*)(job.X + (long)m0 * job.RowPairs + p0);
                    args.B = (ushort*)(job.Panel + ((long)strip * pairs + p0) * Strip);
                    args.C = op.Y + (long)m0 * op.YStride + job.Band0 + c0 + s * Strip;
                    if (full > 0)
                    {
                        args.MTiles = full;
                        Bf16TileKernel.Get(Bf16TileKernel.MaxRows, groups, masked, addToC)(&args);
                    }
                    if (rest > 0)
                    {
                        // The kernel keeps its row pointers in registers: step the arguments past the full tiles.
                        args.A = (ushort*)((byte*)args.A + full * args.ATileStep);
                        args.C = (float*)((byte*)args.C + full * args.CTileStep);
                        args.MTiles = 1;
                        Bf16TileKernel.Get(rest, groups, masked, addToC)(&args);
                    }
                }
            }
        }

        /// <summary>Rounds input row <paramref name="row"/> to bfloat16 pairs; when there is a bias, starts y's row from it.</summary>
        private static void ConvertRow(ref Job job, int row)
        {
            ref Operands op = ref job.Op;
            float* src = op.X + (long)row * op.XStride;
            ushort* dst = (ushort*)(job.X + (long)row * job.RowPairs);
            int k = 0;
            for (; k + 16 <= op.K; k += 16)
            {
                var bf16 = DTypes.FloatToBF16(Vector512.Load(src + k));
                (Avx512F.IsSupported ? Avx512F.ConvertToVector256UInt16(bf16) : Vector256.Narrow(bf16.GetLower(), bf16.GetUpper())).Store(dst + k);
            }
            for (; k < op.K; k++) dst[k] = DTypes.FloatToBF16(src[k]);
            for (; k < 2 * job.RowPairs; k++) dst[k] = 0;
            if (op.Bias != null)
                new ReadOnlySpan<float>(op.Bias, op.N).CopyTo(new Span<float>(op.Y + (long)row * op.YStride, op.N));
        }

        /// <summary>
        /// Packs weight columns [n0, n0+64) × all feature pairs as [pair][column] of bfloat16 pairs.
        /// Columns past N and the missing half of an odd K's last pair are zero.
        /// </summary>
        private static void PackStrip(ref Operands op, int n0, uint* dst)
        {
            int k = op.K, pairs = (k + 1) / 2;
            int fullPairs = k / 2;   // pairs with both halves inside K
            int c = 0;
            if (Avx2.IsSupported)
            {
                // 16 columns at a time: gather each one's next pair (rows are K·2 bytes apart), 8 per gather.
                var rowOffsets = Vector256.CreateSequence(0, k * 2);
                long upper = 8L * k * 2;
                for (; c + 16 <= Strip && n0 + c + 16 <= op.N; c += 16)
                {
                    int* src = (int*)(op.W + (long)(n0 + c) * k * 2);
                    uint* d = dst + c;
                    for (int p = 0; p < fullPairs; p++)
                    {
                        Avx2.GatherVector256(src + p, rowOffsets, 1).AsUInt32().Store(d + (long)p * Strip);
                        Avx2.GatherVector256((int*)((byte*)(src + p) + upper), rowOffsets, 1).AsUInt32().Store(d + (long)p * Strip + 8);
                    }
                    for (int p = fullPairs; p < pairs; p++)   // an odd K's last pair
                        for (int i = 0; i < 16; i++) d[(long)p * Strip + i] = WeightBF16(ref op, n0 + c + i, 2 * p);
                }
            }
            for (; c < Strip; c++)
            {
                int n = n0 + c;
                uint* d = dst + c;
                if (n >= op.N)
                {
                    for (int p = 0; p < pairs; p++) d[(long)p * Strip] = 0;
                    continue;
                }
                for (int p = 0; p < fullPairs; p++)
                    d[(long)p * Strip] = WeightBF16(ref op, n, 2 * p) | (uint)WeightBF16(ref op, n, 2 * p + 1) << 16;
                for (int p = fullPairs; p < pairs; p++)
                    d[(long)p * Strip] = WeightBF16(ref op, n, 2 * p);
            }
        }

        private static ushort WeightBF16(ref Operands op, int n, int k) => ((ushort*)op.W)[(long)n * op.K + k];
    }
}
