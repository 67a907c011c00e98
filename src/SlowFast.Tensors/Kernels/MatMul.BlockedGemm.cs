using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SlowFast.Tensors.Kernels.Jit;
using SlowFast.Tensors.Quantization;

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
    /// The many-rows strategy: a cache-blocked GEMM around a generated tile kernel — for BF16 weights
    /// <see cref="Bf16TileKernel"/> (bfloat16 arithmetic), for block-quantized weights
    /// <see cref="QuantTileKernel"/> (the integer arithmetic of <see cref="Quantized"/>).
    /// </summary>
    /// <remarks>
    /// <para>(1) The input rows are rounded to bfloat16 once, pairs of consecutive features side by
    /// side (rows padded to a whole number of pairs). (2) The output columns are taken a band at a
    /// time (<see cref="PanelBytes"/> of packed weights, kept in L3): the band's weights are packed
    /// into 64-column strips — per feature pair the 64 columns' pairs, 256 bytes, one load per 16
    /// columns — 16 columns × 16 pairs at a time with a register transposition. (3) Every block of
    /// <see cref="MC"/> rows × <see cref="NC"/> columns is a task: it runs each strip over its rows,
    /// all feature pairs at once when there are at most <see cref="MaxBlockPairs"/> (else in equal
    /// blocks), so each output tile is loaded and stored once per block while a strip streams from L2
    /// and L3. While the kernel runs a strip it brings the strip computed next into L2, a line per loop
    /// trip (<see cref="NextStrip"/>): weights packed once are read from memory, and each strip would
    /// otherwise start with a pass that waits on it. Where the tiles multiply on widened operands
    /// (<see cref="Bf16TileKernel.Tiles"/>), a task first widens its rows of the block of pairs to float32,
    /// once for all its strips, and its tiles are <see cref="Bf16TileKernel.WidenedMaxRows"/> rows.</para>
    /// <para>All of it is one parallel job whose items are claimed in order (<see cref="Schedule"/>),
    /// so no core waits at a barrier between steps: the next band is packed into the other of two
    /// panels while the current band's tasks run, and in the first band the rows of the next row
    /// block are rounded between the tasks of the current one. An item that needs an earlier one
    /// (a task its band's strips and its rows; packing a panel the tasks of two bands ago) waits until
    /// it is done — spinning briefly, then yielding, since on a shared machine the other core's thread
    /// may be descheduled; since items are claimed in order, it only ever waits for an item already
    /// running on the other core. The kernel alone runs near vdpbf16ps's peak with its operands in L2;
    /// what the whole product loses goes to packing, rounding the inputs and cache misses (figures and
    /// the variants measured and left: docs/benchmarks/README.md).</para>
    /// <para>Two steps can be done ahead by the caller, and are then left out of the schedule: weights
    /// packed once into the same strips (<see cref="WeightMatrix.Bf16Strips"/>; every band is then read in
    /// place), and input rows already rounded (<see cref="Operands.XBf16"/>, what an earlier product wrote
    /// with <see cref="Operands.YBf16"/>: its float32 tiles finished with GELU and rounded as this step would).</para>
    /// <para>Quantized weights (<see cref="Job.Int8"/>) take the same schedule with other contents: each
    /// input row is quantized per 32-element block (int8, its correction and scale, as
    /// <see cref="Quantized"/> quantizes decoding rows); a strip holds per block the 64 columns' integers
    /// as unsigned bytes in the kernel's quad order, then all blocks' float32 scales; a task's tiles are
    /// 6 rows × 32 columns, and the bias is added after the last block so the float sums run in block order.</para>
    /// </remarks>
    internal static class BlockedGemm
    {
        public const int NC = 256;        // output columns per task (4 strips)
        /// <summary>
        /// Most feature pairs per block: K up to 4096 is one block; longer K is cut into equal blocks.
        /// Tests shrink it to run several blocks on small shapes.
        /// </summary>
        internal static int MaxBlockPairs { get; set; } = 2048;
        public const int MC = 120;        // input rows per task (20 tiles of 6)
        public const int RowsPerItem = 8; // input rows rounded per schedule item
        /// <summary>
        /// Packed weights per band (at least NC columns): small enough that two panels and the inputs
        /// stay in L3 while every row block reads them (larger bands stream from memory). Tests shrink it
        /// to run many bands on small shapes.
        /// </summary>
        internal static long PanelBytes { get; set; } = 8 << 20;
        /// <summary>Columns of a packed strip: both tile kernels' (a test checks that they agree).</summary>
        internal const int Strip = Bf16TileKernel.Columns;

        [ThreadStatic] private static float[]? _panels;  // two bands of packed weights, 4 bytes (one bf16 pair) per float slot
        [ThreadStatic] private static float[]? _input;   // bf16 input rows, same
        [ThreadStatic] private static long[]? _schedule;
        [ThreadStatic] private static int[]? _counters;

        /// <summary>What a schedule item does (the top bits of its entry; the rest is its band, or for Round its row block, and its index).</summary>
        private enum Step { Pack, Round, Compute }

        private struct Job
        {
            public Operands Op;
            public uint* X;           // [M][RowPairs] bf16 pairs
            public int RowPairs;      // pairs per row (≥ ceil(K/2), rounded up to 16 so rows are 64-byte aligned)
            public int Pairs;         // ceil(K/2)
            public int BlockPairs;    // feature pairs per block: ceil(Pairs / blocks), a multiple of the kernel's unroll
            // Quantized weights in integer arithmetic (RowPairs then counts 4-byte slots of a row's block records).
            public bool Int8;
            public int Blocks;        // K / 32
            public int BlockBlocks;   // 32-element blocks per kernel call
            public long StripFloats;  // 4-byte slots per packed strip
            public uint* Panels;      // band b's packed weights at Panels + (b % 2)·PanelFloats: strip s, pair p at [(s·Pairs + p)·64]
            public long PanelFloats;
            public bool Prepacked;    // Panels are the weights' own strips (WeightMatrix.Bf16Strips), all bands in order: nothing to pack
            public bool Prerounded;   // X is the caller's bfloat16 rows (Operands.XBf16): nothing to round
            public Bf16TileKernel.Arithmetic Tiles;   // chosen once per product: every task uses the same
            public int BandCols, Bands, RowBlocks;
            public long* Schedule;
            // Completion counters, each on its own cache line (16 ints apart): strips packed per band,
            // rows rounded per row block, tasks finished per band.
            public int* Packed, Rounded, Finished;
        }

        /// <summary>y = x·Wᵀ (+ bias) for BF16-stored weights, or block-quantized ones where <see cref="QuantTileKernel.IsSupported"/>.</summary>
        public static void Run(in Operands op)
        {
            var job = new Job { Op = op, Int8 = op.Format != null };
            long stripFloats;
            if (job.Int8)
            {
                if (!QuantTileKernel.IsSupported) throw new PlatformNotSupportedException("the integer GEMM needs AVX512-VNNI");
                if (op.NormWeight != null || op.K % BlockFormats.BlockSize != 0) throw new ArgumentException("the integer GEMM takes whole blocks and no input LayerNorm");
                job.Blocks = op.K / BlockFormats.BlockSize;
                job.RowPairs = (job.Blocks * QuantTileKernel.InputBlockBytes / 4 + 15) & ~15;
                // Blocks per call: the strip's integers as large as a bfloat16 block's pairs (MaxBlockPairs · 256 bytes).
                int maxBlocks = Math.Max(1, MaxBlockPairs * 256 / QuantTileKernel.WeightBlockBytes);
                int calls = (job.Blocks + maxBlocks - 1) / maxBlocks;
                job.BlockBlocks = (job.Blocks + calls - 1) / calls;
                stripFloats = ((long)EvenBlocks(job.Blocks) * QuantTileKernel.WeightBlockBytes + (long)job.Blocks * QuantTileKernel.ScaleBlockBytes) / 4;
            }
            else
            {
                if (op.WType != DType.BF16) throw new ArgumentException($"the bfloat16 GEMM takes BF16 or block-quantized weights, not {op.WType}");
                job.RowPairs = ((op.K + 1) / 2 + 15) & ~15;
                job.Pairs = (op.K + 1) / 2;
                job.Tiles = Bf16TileKernel.Tiles;
                // The same blocks for both tile arithmetics, so that their sums are added in the same order
                // (smaller blocks for the widened tiles' float32 rows measured no faster).
                int blocks = (job.Pairs + MaxBlockPairs - 1) / MaxBlockPairs;
                int unroll = Bf16TileKernel.Unroll;
                job.BlockPairs = ((job.Pairs + blocks - 1) / blocks + unroll - 1) / unroll * unroll;
                stripFloats = (long)job.Pairs * Strip;
            }
            job.StripFloats = stripFloats;
            job.Prerounded = !job.Int8 && op.XBf16 != null;
            job.X = job.Prerounded ? (uint*)op.XBf16 : (uint*)Scratch.Align64(Scratch.Get(ref _input, (long)op.M * job.RowPairs + 16));
            int bandCols = (int)Math.Max(NC, PanelBytes / (stripFloats * 4) * Strip / NC * NC);
            job.BandCols = Math.Min(bandCols, (op.N + Strip - 1) / Strip * Strip);
            job.Bands = (op.N + job.BandCols - 1) / job.BandCols;
            job.RowBlocks = (op.M + MC - 1) / MC;
            job.PanelFloats = ((job.BandCols + Strip - 1) / Strip * stripFloats + 15) & ~15L;
            job.Prepacked = !job.Int8 && op.Bf16Strips != null;
            job.Panels = job.Prepacked ? op.Bf16Strips : (uint*)Scratch.Align64(Scratch.Get(ref _panels, Math.Min(2, job.Bands) * job.PanelFloats + 16));

            int counterLines = 2 * job.Bands + job.RowBlocks;
            if (_counters == null || _counters.Length < counterLines * 16 + 16)
                _counters = GC.AllocateArray<int>(counterLines * 16 + 16, pinned: true);
            new Span<int>(_counters).Clear();
            fixed (int* counters = _counters)
            fixed (long* schedule = Schedule(ref job, out int items))
            {
                int* lines = (int*)(((nint)counters + 63) & ~(nint)63);
                job.Packed = lines;
                job.Rounded = lines + 16 * job.Bands;
                job.Finished = lines + 16 * (job.Bands + job.RowBlocks);
                job.Schedule = schedule;
                KernelThreads.For(items, &job, &RunItem);
            }
        }

        private static int Strips(ref Job job, int band) => (ColumnsOf(ref job, band) + Strip - 1) / Strip;
        private static int PackItems(ref Job job, int band) => job.Prepacked ? 0 : Strips(ref job, band);
        private static int ColumnsOf(ref Job job, int band) => Math.Min(job.BandCols, job.Op.N - band * job.BandCols);
        private static int ColumnBlocks(ref Job job, int band) => (ColumnsOf(ref job, band) + NC - 1) / NC;
        private static int Tasks(ref Job job, int band) => job.RowBlocks * ColumnBlocks(ref job, band);
        private static int RowsOf(ref Job job, int block) => Math.Min(MC, job.Op.M - block * MC);
        private static int RoundItems(ref Job job, int block) => job.Prerounded ? 0 : (RowsOf(ref job, block) + RowsPerItem - 1) / RowsPerItem;

        private static int ItemCount(ref Job job)
        {
            int count = 0;
            for (int b = 0; b < job.Bands; b++) count += PackItems(ref job, b) + Tasks(ref job, b);
            for (int i = 0; i < job.RowBlocks; i++) count += RoundItems(ref job, i);
            return count;
        }

        /// <summary>
        /// The order of all items: band 0's strips and row block 0's rows; then each band's tasks, row
        /// block by row block, with (in band 0) the next row block's rows after each row block's first
        /// task, and the next band's strips after half the band's tasks.
        /// </summary>
        private static long[] Schedule(ref Job job, out int count)
        {
            count = ItemCount(ref job);
            int n = 0;
            if (_schedule == null || _schedule.Length < count) _schedule = GC.AllocateArray<long>(count, pinned: true);
            var s = _schedule;
            AddPack(ref job, s, ref n, 0);
            AddRound(ref job, s, ref n, 0);
            for (int b = 0; b < job.Bands; b++)
            {
                int tasks = Tasks(ref job, b), perBlock = ColumnBlocks(ref job, b);
                for (int t = 0; t < tasks; t++)
                {
                    s[n++] = Entry(Step.Compute, b, t);
                    if (b == 0 && t % perBlock == 0 && t / perBlock + 1 < job.RowBlocks) AddRound(ref job, s, ref n, t / perBlock + 1);
                    if (t == tasks / 2 && b + 1 < job.Bands) AddPack(ref job, s, ref n, b + 1);
                }
            }
            if (n != count) throw new InvalidOperationException($"bf16 GEMM schedule has {n} items, expected {count}");
            return s;
        }

        private static long Entry(Step step, int band, int index) => (long)step << 56 | (long)band << 32 | (uint)index;

        private static void AddPack(ref Job job, long[] s, ref int n, int band)
        {
            for (int i = 0; i < PackItems(ref job, band); i++) s[n++] = Entry(Step.Pack, band, i);
        }

        private static void AddRound(ref Job job, long[] s, ref int n, int block)
        {
            for (int i = 0; i < RoundItems(ref job, block); i++) s[n++] = Entry(Step.Round, block, i);
        }

        private static void RunItem(void* context, int item)
        {
            ref Job job = ref *(Job*)context;
            long entry = job.Schedule[item];
            var step = (Step)(entry >> 56);
            int band = (int)(entry >> 32) & 0xFFFFFF, index = (int)entry;
            switch (step)
            {
                case Step.Pack:
                    // The panel held band - 2 until its last task finished.
                    if (band >= 2) WaitFor(job.Finished + 16 * (band - 2), Tasks(ref job, band - 2));
                    uint* strip = Panel(ref job, band) + index * job.StripFloats;
                    if (job.Int8) PackQuantizedStrip(ref job, band * job.BandCols + index * Strip, (byte*)strip);
                    else PackStrip(ref job.Op, band * job.BandCols + index * Strip, strip);
                    Interlocked.Increment(ref job.Packed[16 * band]);
                    break;
                case Step.Round:
                    int rowBlock = band, first = index * RowsPerItem, end = Math.Min(first + RowsPerItem, RowsOf(ref job, rowBlock));
                    for (int r = first; r < end; r++)
                        if (job.Int8) QuantizeRow(ref job, rowBlock * MC + r);
                        else ConvertRow(ref job, rowBlock * MC + r);
                    Interlocked.Add(ref job.Rounded[16 * rowBlock], end - first);
                    break;
                default:
                    int block = index / ColumnBlocks(ref job, band);
                    WaitFor(job.Packed + 16 * band, PackItems(ref job, band));
                    if (!job.Prerounded) WaitFor(job.Rounded + 16 * block, RowsOf(ref job, block));
                    if (job.Int8) ComputeQuantized(ref job, band, index);
                    else Compute(ref job, band, index);
                    Interlocked.Increment(ref job.Finished[16 * band]);
                    break;
            }
        }

        private static uint* Panel(ref Job job, int band) =>
            job.Prepacked ? job.Panels + (long)band * (job.BandCols / Strip) * job.StripFloats : job.Panels + band % 2 * job.PanelFloats;

        /// <summary>
        /// Packs all of a BF16 matrix's columns into strips as the GEMM's panels hold them (strip s at
        /// s·ceil(K/2)·64 slots), one strip per parallel item.
        /// </summary>
        public static void PackAll(in Operands op, uint* strips)
        {
            var job = new PackAllJob { Op = op, Strips = strips, StripFloats = (long)((op.K + 1) / 2) * Strip };
            KernelThreads.For((op.N + Strip - 1) / Strip, &job, &PackAllTask);
        }

        private struct PackAllJob { public Operands Op; public uint* Strips; public long StripFloats; }

        private static void PackAllTask(void* context, int strip)
        {
            ref PackAllJob job = ref *(PackAllJob*)context;
            PackStrip(ref job.Op, strip * Strip, job.Strips + strip * job.StripFloats);
        }

        /// <summary>Spins until *counter reaches target: an item claimed earlier, now running on another core.</summary>
        private static void WaitFor(int* counter, int target)
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref *counter) < target) spin.SpinOnce(sleep1Threshold: -1);
        }

        /// <summary>Output rows [MC·i, +MC) × the band's columns [NC·j, +NC), over all features.</summary>
        private static void Compute(ref Job job, int band, int task)
        {
            ref Operands op = ref job.Op;
            int columnBlocks = ColumnBlocks(ref job, band);
            int m0 = task / columnBlocks * MC, c0 = task % columnBlocks * NC;
            int rows = Math.Min(MC, op.M - m0), cols = Math.Min(NC, ColumnsOf(ref job, band) - c0);
            int strips = (cols + Strip - 1) / Strip, pairs = job.Pairs;
            int tileRows = job.Tiles == Bf16TileKernel.Arithmetic.WidenedFma ? Bf16TileKernel.WidenedMaxRows : Bf16TileKernel.MaxRows;
            int full = rows / tileRows, rest = rows % tileRows;
            uint* panel = Panel(ref job, band);

            // A bfloat16 output, or a product only added into the residual, is computed in float32 in a scratch
            // tile of the task's rows × NC, then finished from there.
            bool toBf16 = op.YBf16 != null, toTile = toBf16 || op.Y == null;
            float* tile = toTile ? Scratch.Align64(Scratch.Get(ref _outputTile, (long)MC * NC + 64)) : null;
            bool widened = job.Tiles == Bf16TileKernel.Arithmetic.WidenedFma;
            int widenedStride = (2 * job.BlockPairs + 15) & ~15;   // floats per widened row: 64-byte aligned rows
            float* widenedRows = widened ? Scratch.Align64(Scratch.Get(ref _widenedRows, (long)MC * widenedStride + 16)) : null;
            Bf16TileArgs args = default;
            args.AStride = widened ? widenedStride * 4L : job.RowPairs * 4L;
            args.CStride = (toTile ? NC : op.YStride) * 4L;
            args.ATileStep = args.AStride * tileRows;
            args.CTileStep = args.CStride * tileRows;
            for (int p0 = 0; p0 < pairs; p0 += job.BlockPairs)
            {
                int kcp = Math.Min(job.BlockPairs, pairs - p0);
                var sum = p0 > 0 ? Bf16TileKernel.Sum.PlusC : op.Bias != null ? Bf16TileKernel.Sum.PlusBias : Bf16TileKernel.Sum.Alone;
                args.KMain = kcp / Bf16TileKernel.Unroll;
                args.KRem = kcp % Bf16TileKernel.Unroll;
                if (widened) WidenRows(job.X + (long)m0 * job.RowPairs + p0, job.RowPairs, rows, kcp, widenedRows, widenedStride);
                for (int s = 0; s < strips; s++)
                {
                    int stripCols = Math.Min(Strip, cols - s * Strip);
                    int groups = (stripCols + 15) / 16;
                    bool masked = stripCols % 16 != 0;
                    int strip = c0 / Strip + s;
                    args.LastMask = masked ? (1L << (stripCols % 16)) - 1 : 0xFFFF;
                    args.A = widened ? (ushort*)widenedRows : (ushort*)(job.X + (long)m0 * job.RowPairs + p0);
                    args.B = (ushort*)(panel + ((long)strip * pairs + p0) * Strip);
                    int column = band * job.BandCols + c0 + s * Strip;
                    args.C = toTile ? tile + s * Strip : op.Y + (long)m0 * op.YStride + column;
                    args.Bias = op.Bias + column;
                    args.Prefetch = NextStrip(ref job, band, task, strip, s == strips - 1, p0);
                    StripObserver?.Invoke(task, (nint)args.B, (nint)args.Prefetch);
                    if (full > 0)
                    {
                        args.MTiles = full;
                        Bf16TileKernel.Get(tileRows, groups, masked, sum, job.Tiles)(&args);
                    }
                    if (rest > 0)
                    {
                        // The kernel keeps its row pointers in registers: step the arguments past the full tiles.
                        args.A = (ushort*)((byte*)args.A + full * args.ATileStep);
                        args.C = (float*)((byte*)args.C + full * args.CTileStep);
                        args.Prefetch += full * args.KMain * 64;
                        args.MTiles = 1;
                        Bf16TileKernel.Get(rest, groups, masked, sum, job.Tiles)(&args);
                    }
                }
            }
            if (toBf16) GeluToBFloat16(ref op, tile, m0, rows, band * job.BandCols + c0, cols);
            else if (toTile) AddScaledToResidual(ref op, tile, NC, m0, rows, band * job.BandCols + c0, cols);
            else if (op.Gelu || op.ResidualScale != null) Epilogue(ref op, m0, rows, band * job.BandCols + c0, cols, addBias: false);
        }

        [ThreadStatic] private static float[]? _outputTile;
        [ThreadStatic] private static float[]? _widenedRows;

        /// <summary>
        /// The task's rows of one block of feature pairs as float32 for the widened tiles: <paramref name="rows"/>
        /// rows of <paramref name="pairs"/> bfloat16 pairs from <paramref name="src"/> (<paramref name="srcPairs"/>
        /// pairs apart) to <paramref name="dst"/> (<paramref name="dstStride"/> floats apart). Exact: a bfloat16
        /// is a float32's top half. Done once per task and block: about 1/16 of a 64-column strip's FMAs per row
        /// and pair, and the task runs up to four strips on it.
        /// </summary>
        private static void WidenRows(uint* src, int srcPairs, int rows, int pairs, float* dst, int dstStride)
        {
            int values = 2 * pairs;
            for (int r = 0; r < rows; r++)
            {
                ushort* s = (ushort*)(src + (long)r * srcPairs);
                uint* d = (uint*)(dst + (long)r * dstStride);
                int i = 0;
                for (; i + 16 <= values; i += 16)
                    Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(s + i)), 16).Store(d + i);
                for (; i < values; i++) d[i] = (uint)s[i] << 16;
            }
        }

        /// <summary>Tests: sees each strip's start as a task computes it (task, packed weights read, weights prefetched meanwhile).</summary>
        internal static Action<int, nint, nint>? StripObserver;

        /// <summary>
        /// The packed weights a core needs after the strip it is on (strip <paramref name="strip"/>, the
        /// block from pair <paramref name="p0"/>), for the tile kernel to bring into L2 while it computes:
        /// the task's next strip, else its first strip's next block of pairs, else the first strip of the
        /// band's next task (whichever core claims it then finds it on chip). Strips read straight from
        /// memory otherwise start every strip with a pass that waits on memory; the current strip (already
        /// in cache) when nothing follows.
        /// </summary>
        private static byte* NextStrip(ref Job job, int band, int task, int strip, bool lastStrip, int p0)
        {
            uint* panel = Panel(ref job, band);
            long pairs = job.Pairs;
            int columnBlocks = ColumnBlocks(ref job, band);
            byte* At(long s, long pair) => (byte*)(panel + (s * pairs + pair) * Strip);
            long FirstStrip(int t) => t % columnBlocks * (NC / Strip);
            if (!lastStrip) return At(strip + 1, p0);
            if (p0 + job.BlockPairs < pairs) return At(FirstStrip(task), p0 + job.BlockPairs);
            if (task + 1 < Tasks(ref job, band)) return At(FirstStrip(task + 1), 0);
            return At(strip, p0);
        }

        /// <summary>
        /// Finishes a task's float32 tile (rows [m0, +rows) × columns [n0, +cols), NC floats a row) into the
        /// bfloat16 output: GELU (the same function as <see cref="Activations.Gelu(Span{float})"/>), rounded as
        /// <see cref="ConvertRow"/> rounds inputs. The last column block also zeroes an odd N's pad element.
        /// </summary>
        private static void GeluToBFloat16(ref Operands op, float* tile, int m0, int rows, int n0, int cols)
        {
            bool pad = n0 + cols == op.N && op.N % 2 != 0;
            for (int r = 0; r < rows; r++)
            {
                float* t = tile + (long)r * NC;
                ushort* y = op.YBf16 + (long)(m0 + r) * op.YBf16Stride + n0;
                if (!op.Gelu) RoundToBFloat16(t, y, cols);
                else
                {
                    // One pass: each vector's GELU goes straight to its rounding, never back into the tile.
                    int c = 0;
                    for (; c + 16 <= cols; c += 16)
                        Avx512F.ConvertToVector256UInt16(DTypes.FloatToBF16(Activations.Gelu(Vector512.Load(t + c)))).Store(y + c);
                    for (; c < cols; c++) y[c] = DTypes.FloatToBF16(Activations.Gelu(t[c]));
                }
                if (pad) y[cols] = 0;
            }
        }

        /// <summary>
        /// The fused output work on a finished tile (rows [m0, +rows) × columns [n0, +cols)), while it is
        /// in cache: y += bias (when <paramref name="addBias"/>), GELU, the scaled residual add.
        /// </summary>
        private static void Epilogue(ref Operands op, int m0, int rows, int n0, int cols, bool addBias)
        {
            for (int r = m0; r < m0 + rows; r++)
            {
                float* y = op.Y + (long)r * op.YStride + n0;
                if (addBias)
                    for (int c = 0; c < cols; c++) y[c] += op.Bias[n0 + c];
                if (op.Gelu) Activations.Gelu(new Span<float>(y, cols));
            }
            if (op.ResidualScale != null) AddScaledToResidual(ref op, op.Y + (long)m0 * op.YStride + n0, op.YStride, m0, rows, n0, cols);
        }

        /// <summary>
        /// residual += y · scale over rows [m0, +rows) × columns [n0, +cols), y's row r at
        /// <paramref name="y"/> + (r − m0) · <paramref name="yStride"/>: multiply, then add, as torch does.
        /// </summary>
        private static void AddScaledToResidual(ref Operands op, float* y, int yStride, int m0, int rows, int n0, int cols)
        {
            float* scale = op.ResidualScale + n0;
            for (int r = 0; r < rows; r++, y += yStride)
            {
                float* res = op.Residual + (long)(m0 + r) * op.ResidualStride + n0;
                int c = 0;
                for (; c + 16 <= cols; c += 16)
                    (Vector512.Load(res + c) + Vector512.Load(y + c) * Vector512.Load(scale + c)).Store(res + c);
                for (; c < cols; c++) res[c] += y[c] * scale[c];
            }
        }

        /// <summary>Rounds input row <paramref name="row"/> to bfloat16 pairs (the bias is added by the tile kernel as it stores).</summary>
        private static void ConvertRow(ref Job job, int row)
        {
            ref Operands op = ref job.Op;
            float* src = op.X + (long)row * op.XStride;
            ushort* dst = (ushort*)(job.X + (long)row * job.RowPairs);
            if (op.NormWeight != null) ConvertNormalizedRow(ref op, src, dst);
            else RoundToBFloat16(src, dst, op.K);
            for (int k = op.K; k < 2 * job.RowPairs; k++) dst[k] = 0;
        }

        /// <summary>dst[i] = bfloat16(src[i]) for i &lt; count, rounded to nearest even (the rounding of every bfloat16 input row).</summary>
        private static void RoundToBFloat16(float* src, ushort* dst, int count)
        {
            int i = 0;
            for (; i + 16 <= count; i += 16)
                Avx512F.ConvertToVector256UInt16(DTypes.FloatToBF16(Vector512.Load(src + i))).Store(dst + i);
            for (; i < count; i++) dst[i] = DTypes.FloatToBF16(src[i]);
        }

        /// <summary>
        /// Writes bfloat16(LayerNorm(src)) over the whole row into <paramref name="dst"/>, the same
        /// float32 arithmetic as <see cref="Norms.LayerNorm"/> (two passes: mean, then squared
        /// deviations), then rounded.
        /// </summary>
        private static void ConvertNormalizedRow(ref Operands op, float* src, ushort* dst)
        {
            int d = op.K, i;
            var (mean, inv) = Norms.LayerNormMoments(src, d, op.NormEps);
            var meanV = Vector512.Create(mean);
            var invV = Vector512.Create(inv);
            float* w = op.NormWeight, b = op.NormBias;
            for (i = 0; i + 16 <= d; i += 16)
            {
                var v = Vector512.FusedMultiplyAdd((Vector512.Load(src + i) - meanV) * invV, Vector512.Load(w + i), Vector512.Load(b + i));
                Avx512F.ConvertToVector256UInt16(DTypes.FloatToBF16(v)).Store(dst + i);
            }
            for (; i < d; i++) dst[i] = DTypes.FloatToBF16(MathF.FusedMultiplyAdd((src[i] - mean) * inv, w[i], b[i]));
        }

        /// <summary>
        /// Packs weight columns [n0, n0+64) × all feature pairs as [pair][column] of bfloat16 pairs:
        /// 16 columns × 16 pairs at a time, the columns' stored rows transposed in registers. Columns
        /// past N and the missing half of an odd K's last pair are zero.
        /// </summary>
        private static void PackStrip(ref Operands op, int n0, uint* dst)
        {
            for (int c = 0; c < Strip; c += 16) PackColumns16(ref op, n0 + c, dst + c);
        }

        /// <summary>Weight columns [first, first+16) of a strip (those past N zero) at <paramref name="d"/>.</summary>
        private static void PackColumns16(ref Operands op, int first, uint* d)
        {
            int k = op.K, pairs = (k + 1) / 2;
            int fullPairs = k / 2;   // pairs with both halves inside K
            long rowBytes = k * 2L;
            int columns = Math.Clamp(op.N - first, 0, 16);
            int p = 0;
            if (columns == 16)
                for (; p + 16 <= fullPairs; p += 16)
                    Transpose16.Block(op.W + first * rowBytes + 4L * p, rowBytes, (byte*)(d + (long)p * Strip), Strip * 4);
            for (; p < pairs; p++)
                for (int i = 0; i < 16; i++)
                {
                    uint pair = 0;
                    if (i < columns)
                    {
                        pair = WeightBF16(ref op, first + i, 2 * p);
                        if (p < fullPairs) pair |= (uint)WeightBF16(ref op, first + i, 2 * p + 1) << 16;
                    }
                    d[(long)p * Strip + i] = pair;
                }
        }

        private static ushort WeightBF16(ref Operands op, int n, int k) => ((ushort*)op.W)[(long)n * op.K + k];

        private static int EvenBlocks(int blocks) => (blocks + 1) & ~1;

        /// <summary>
        /// Quantizes input row <paramref name="row"/> into its block records: 32 int8 (as
        /// <see cref="Quantized.QuantizeBlock(float*, sbyte*)"/>), the correction −offset·Σq, the scale d_x.
        /// </summary>
        private static void QuantizeRow(ref Job job, int row)
        {
            ref Operands op = ref job.Op;
            float* src = op.X + (long)row * op.XStride;
            byte* dst = (byte*)(job.X + (long)row * job.RowPairs);
            int offset = QuantRowsKernel.WeightOffset(op.Format!.Value);
            for (int b = 0; b < job.Blocks; b++, dst += QuantTileKernel.InputBlockBytes)
            {
                float d = Quantized.QuantizeBlock(src + b * BlockFormats.BlockSize, (sbyte*)dst);
                var q = Vector256.Load((sbyte*)dst);
                int sum = Vector256.Sum(Vector256.WidenLower(q)) + Vector256.Sum(Vector256.WidenUpper(q));
                *(int*)(dst + 32) = -offset * sum;
                *(float*)(dst + 36) = d;
            }
        }

        [ThreadStatic] private static float[]? _unpacked;

        /// <summary>
        /// Packs quantized weight columns [n0, n0+64) for <see cref="QuantTileKernel"/>: for each block,
        /// quad q (elements 4q…4q+3) of column c as 4 unsigned bytes w + offset at 2048·block + 256·q + 4·c;
        /// then every block's 64 scales as float32. Two blocks of 16 columns are unpacked to bytes at a
        /// time (a 64-byte row per column) and transposed as 16×16 dwords. Columns past N are zero.
        /// </summary>
        private static void PackQuantizedStrip(ref Job job, int n0, byte* dst)
        {
            ref Operands op = ref job.Op;
            var format = op.Format!.Value;
            int blocks = job.Blocks;
            long rowBytes = format.RowBytes(op.K);
            byte* unpacked = (byte*)Scratch.Align64(Scratch.Get(ref _unpacked, 16 * 64 / 4));
            for (int c = 0; c < Strip; c += 16)
            {
                int columns = Math.Clamp(op.N - (n0 + c), 0, 16);
                for (int b = 0; b < blocks; b += 2)
                {
                    for (int i = 0; i < 16; i++)
                    {
                        byte* to = unpacked + 64 * i;
                        if (i >= columns) { Vector512<byte>.Zero.Store(to); continue; }
                        byte* row = op.W + (n0 + c + i) * rowBytes;
                        UnpackBlock(format, row, b, to);
                        if (b + 1 < blocks) UnpackBlock(format, row, b + 1, to + 32);
                        else Vector256<byte>.Zero.Store(to + 32);
                    }
                    Transpose16.Block(unpacked, 64, dst + (long)b * QuantTileKernel.WeightBlockBytes + 4 * c, 256);
                }
            }
            float* scales = (float*)(dst + (long)EvenBlocks(blocks) * QuantTileKernel.WeightBlockBytes);
            for (int i = 0; i < Strip; i++)
            {
                Half* from = n0 + i < op.N ? op.Scales + (long)(n0 + i) * blocks : null;
                for (int b = 0; b < blocks; b++) scales[b * Strip + i] = from == null ? 0f : (float)from[b];
            }
        }

        /// <summary>Block <paramref name="b"/> of a quantized row as 32 unsigned bytes w + offset, in element order.</summary>
        private static void UnpackBlock(BlockFormat format, byte* row, int b, byte* to)
        {
            if (format == BlockFormat.Q8_0)
                (Vector256.Load(row + 32 * b) ^ Vector256.Create((byte)0x80)).Store(to);
            else
            {
                var bytes = Vector128.Load(row + 16 * b);
                (bytes & Vector128.Create((byte)15)).Store(to);
                Vector128.ShiftRightLogical(bytes, 4).Store(to + 16);
            }
        }

        /// <summary>
        /// <see cref="Compute"/> for quantized weights: output rows [MC·i, +MC) × the band's columns
        /// [NC·j, +NC), the blocks in order (later calls continue from C), then the bias.
        /// </summary>
        private static void ComputeQuantized(ref Job job, int band, int task)
        {
            ref Operands op = ref job.Op;
            int columnBlocks = ColumnBlocks(ref job, band);
            int m0 = task / columnBlocks * MC, c0 = task % columnBlocks * NC;
            int rows = Math.Min(MC, op.M - m0), cols = Math.Min(NC, ColumnsOf(ref job, band) - c0);
            int tiles = (cols + QuantTileKernel.Columns - 1) / QuantTileKernel.Columns;
            int full = rows / QuantTileKernel.MaxRows, rest = rows % QuantTileKernel.MaxRows;
            uint* panel = Panel(ref job, band);
            long scaleOffset = (long)EvenBlocks(job.Blocks) * QuantTileKernel.WeightBlockBytes;

            QuantTileArgs args = default;
            args.AStride = job.RowPairs * 4L;
            args.CStride = op.YStride * 4L;
            args.ATileStep = args.AStride * QuantTileKernel.MaxRows;
            args.CTileStep = args.CStride * QuantTileKernel.MaxRows;
            for (int b0 = 0; b0 < job.Blocks; b0 += job.BlockBlocks)
            {
                args.KBlocks = Math.Min(job.BlockBlocks, job.Blocks - b0);
                bool addToC = b0 > 0;
                for (int t = 0; t < tiles; t++)
                {
                    int tileCols = Math.Min(QuantTileKernel.Columns, cols - t * QuantTileKernel.Columns);
                    int groups = (tileCols + 15) / 16;
                    bool masked = tileCols % 16 != 0;
                    int col = c0 + t * QuantTileKernel.Columns, half = col % Strip;   // the tile's strip and its first column there
                    byte* strip = (byte*)(panel + (col / Strip) * job.StripFloats);
                    args.LastMask = masked ? (1L << (tileCols % 16)) - 1 : 0xFFFF;
                    args.A = (byte*)(job.X + (long)m0 * job.RowPairs) + (long)b0 * QuantTileKernel.InputBlockBytes;
                    args.B = strip + (long)b0 * QuantTileKernel.WeightBlockBytes + 4 * half;
                    args.S = (float*)(strip + scaleOffset) + (long)b0 * Strip + half;
                    args.C = op.Y + (long)m0 * op.YStride + band * job.BandCols + col;
                    if (full > 0)
                    {
                        args.MTiles = full;
                        QuantTileKernel.Get(QuantTileKernel.MaxRows, groups, masked, addToC)(&args);
                    }
                    if (rest > 0)
                    {
                        // The kernel keeps its row pointers in registers: step the arguments past the full tiles.
                        args.A += full * args.ATileStep;
                        args.C = (float*)((byte*)args.C + full * args.CTileStep);
                        args.MTiles = 1;
                        QuantTileKernel.Get(rest, groups, masked, addToC)(&args);
                    }
                }
            }
            if (op.Bias != null || op.Gelu || op.ResidualScale != null)
                Epilogue(ref op, m0, rows, band * job.BandCols + c0, cols, addBias: op.Bias != null);
        }
    }
}
