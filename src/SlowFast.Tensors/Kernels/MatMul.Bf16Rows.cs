using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Kernels;

public static unsafe partial class MatMul
{
    /// <summary>
    /// Few rows in bfloat16 arithmetic with the weights read in their stored layout: a generated
    /// <see cref="Bf16RowsKernel"/> streams each weight row once from memory for all input rows.
    /// </summary>
    /// <remarks>
    /// The input rows are rounded to bfloat16 once per call into tiles of up to
    /// <see cref="TileMaxRows"/> rows (as even as possible), each tile interleaved by 32-element
    /// step and zero-padded past K. The weight rows are split into tasks over
    /// <see cref="KernelThreads"/>; a task takes its rows a chunk at a time, runs every tile over the
    /// chunk (so with several tiles the chunk is re-read from L2, not from memory), and sums each
    /// accumulator's 16 lanes (plus the bias) into y.
    /// </remarks>
    internal static class Bf16Rows
    {
        /// <summary>Most rows this path takes.</summary>
        public const int MaxRows = 16;
        /// <summary>Weight bytes per chunk when several tiles re-read it (held in L2 between tiles).</summary>
        private const long ChunkBytes = 128 * 1024;
        /// <summary>Most weight groups per kernel call (bounds the partial-sum buffer).</summary>
        private const int MaxChunkGroups = 8;

        /// <summary>
        /// Most input rows per tile. Tiles of 4 rows run 6 weight rows per group (24 accumulators, the
        /// inputs of a tile in L1), and a chunk of weight rows is read from memory once and from L2 by
        /// the other tiles; a larger tile would hold fewer weight rows per group and take its inputs from
        /// L2 at every step (figures: docs/benchmarks/bf16-few-rows-2026-12-01.md).
        /// </summary>
        private const int TileMaxRows = 4;

        [ThreadStatic] private static float[]? _input;
        [ThreadStatic] private static float[]? _partials;

        private struct Job
        {
            public Operands Op;
            public ushort* X;          // tiles of interleaved bf16 rows
            public int Tiles;
            public fixed int TileRows[4];
            public fixed long TileOffset[4];   // in ushorts from X
            public int WeightRows;     // per group, shared by all tiles
            public int RowsPerTask;
            public int ChunkGroups;
            public int Steps;          // 32-element steps of a row, the last possibly partial
        }

        public static void Run(in Operands op)
        {
            if (op.WType != DType.BF16) throw new ArgumentException($"the bfloat16 row kernel takes BF16 weights, not {op.WType}");
            if (op.M > MaxRows) throw new ArgumentOutOfRangeException(nameof(op), $"at most {MaxRows} rows");
            var job = new Job { Op = op, Steps = (op.K + 31) / 32 };
            job.Tiles = (op.M + TileMaxRows - 1) / TileMaxRows;
            job.WeightRows = Bf16RowsKernel.MaxWeightRows;
            long offset = 0;
            for (int t = 0; t < job.Tiles; t++)
            {
                int rows = op.M / job.Tiles + (t < op.M % job.Tiles ? 1 : 0);
                job.TileRows[t] = rows;
                job.TileOffset[t] = offset;
                offset += (long)job.Steps * rows * 32;
                job.WeightRows = Math.Min(job.WeightRows, Bf16RowsKernel.WeightRowsFor(rows));
            }
            job.X = (ushort*)Scratch.Align64(Scratch.Get(ref _input, offset / 2 + 16));
            for (int t = 0; t < job.Tiles; t++)
            {
                int first = 0;
                for (int u = 0; u < t; u++) first += job.TileRows[u];
                for (int r = 0; r < job.TileRows[t]; r++) RoundRow(ref job, t, r, first + r);
            }

            int nw = job.WeightRows;
            long groupBytes = (long)nw * op.K * 2;
            job.ChunkGroups = job.Tiles == 1 ? MaxChunkGroups : (int)Math.Clamp(ChunkBytes / groupBytes, 1, MaxChunkGroups);
            int groups = (op.N + nw - 1) / nw;
            // Several tasks per thread so that dynamic scheduling evens out; whole groups per task.
            int tasks = Math.Max(1, Math.Min(groups, KernelThreads.Count * 8));
            job.RowsPerTask = (groups + tasks - 1) / tasks * nw;
            int taskCount = (op.N + job.RowsPerTask - 1) / job.RowsPerTask;
            KernelThreads.For(taskCount, &job, &RunTask);
        }

        /// <summary>Input row <paramref name="m"/> as row <paramref name="r"/> of tile <paramref name="t"/>: bfloat16, zero past K.</summary>
        private static void RoundRow(ref Job job, int t, int r, int m)
        {
            ref Operands op = ref job.Op;
            int rows = job.TileRows[t];
            float* src = op.X + (long)m * op.XStride;
            ushort* tile = job.X + job.TileOffset[t] + r * 32;
            for (int s = 0; s < job.Steps; s++)
            {
                ushort* dst = tile + (long)s * rows * 32;
                int k0 = s * 32;
                if (k0 + 32 <= op.K)
                {
                    Avx512F.ConvertToVector256UInt16(DTypes.FloatToBF16(Vector512.Load(src + k0))).Store(dst);
                    Avx512F.ConvertToVector256UInt16(DTypes.FloatToBF16(Vector512.Load(src + k0 + 16))).Store(dst + 16);
                }
                else
                    for (int i = 0; i < 32; i++) dst[i] = k0 + i < op.K ? DTypes.FloatToBF16(src[k0 + i]) : (ushort)0;
            }
        }

        private static void RunTask(void* context, int task)
        {
            ref Job job = ref *(Job*)context;
            ref Operands op = ref job.Op;
            int nw = job.WeightRows;
            int n0 = task * job.RowsPerTask, n1 = Math.Min(op.N, n0 + job.RowsPerTask);
            int mainSteps = op.K / 32;
            bool tail = op.K % 32 != 0;
            long rowBytes = op.K * 2L;
            // Room for 16 more accumulators past the largest chunk (read by the last batch of Sum), then the sums.
            float* partials = Scratch.Align64(Scratch.Get(ref _partials, (MaxChunkGroups * 32 + 16) * 17L));
            float* sums = partials + (MaxChunkGroups * 32 + 16) * 16L;

            var args = new Bf16RowsArgs
            {
                WStride = rowBytes,
                KNeg = -64L * mainSteps,
                TailMask = tail ? (1L << (op.K % 32)) - 1 : 0,
            };
            for (int n = n0; n < n1;)
            {
                int left = n1 - n;
                // Whole groups of nw rows, then (at the end of the task) one group of the rest.
                int chunkNw = left >= nw ? nw : left;
                int chunkGroups = Math.Min(job.ChunkGroups, left / chunkNw);
                int m0 = 0;
                for (int t = 0; t < job.Tiles; t++)
                {
                    int rows = job.TileRows[t];
                    args.X = job.X + job.TileOffset[t];
                    args.W = op.W + n * rowBytes + 64L * mainSteps;
                    args.Out = partials;
                    args.Groups = chunkGroups;
                    args.GroupStep = chunkNw * rowBytes;
                    Bf16RowsKernel.Get(rows, chunkNw, tail)(&args);
                    Sum(ref op, partials, sums, m0, rows, n, chunkNw, chunkGroups);
                    m0 += rows;
                }
                n += chunkGroups * chunkNw;
            }
        }

        /// <summary>
        /// y[m0 + r, n + g·nw + j] = the sum of accumulator (g, r, j)'s 16 partial sums (+ bias). The
        /// accumulators are reduced 16 at a time into one vector of 16 sums; a last incomplete batch
        /// reduces whatever follows it in the buffer too (lanes never mix), and those sums are dropped.
        /// </summary>
        internal static void Sum(ref Operands op, float* partials, float* sums, int m0, int rows, int n, int nw, int groups)
        {
            int count = groups * rows * nw;
            for (int i = 0; i < count; i += 16) Reduce16(partials + i * 16L).Store(sums + i);
            int slot = 0;
            for (int g = 0; g < groups; g++)
                for (int r = 0; r < rows; r++)
                {
                    float* y = op.Y + (long)(m0 + r) * op.YStride + n + g * nw;
                    if (op.Bias == null)
                        for (int j = 0; j < nw; j++) y[j] = sums[slot++];
                    else
                    {
                        float* bias = op.Bias + n + g * nw;
                        for (int j = 0; j < nw; j++) y[j] = sums[slot++] + bias[j];
                    }
                }
        }

        /// <summary>Lane i of the result = the sum of the 16 floats at p + 16·i, for i in 0..15.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<float> Reduce16(float* p)
        {
            // Pairs of vectors → each 128-bit lane holds 2 then 4 vectors' partial sums; then the four
            // lanes are added across vectors with 128-bit shuffles, leaving vector i's sum in lane i.
            var w0 = Pairs4(p, 0); var w1 = Pairs4(p, 4); var w2 = Pairs4(p, 8); var w3 = Pairs4(p, 12);
            var z01 = Avx512F.Shuffle4x128(w0, w1, 0x88) + Avx512F.Shuffle4x128(w0, w1, 0xDD);
            var z23 = Avx512F.Shuffle4x128(w2, w3, 0x88) + Avx512F.Shuffle4x128(w2, w3, 0xDD);
            return Avx512F.Shuffle4x128(z01, z23, 0x88) + Avx512F.Shuffle4x128(z01, z23, 0xDD);
        }

        /// <summary>Vectors v..v+3 at p: in each 128-bit lane L, element e = the sum over that lane of vector v + e.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<float> Pairs4(float* p, int v)
        {
            Vector512<float> a = Vector512.Load(p + 16 * v), b = Vector512.Load(p + 16 * (v + 1));
            Vector512<float> c = Vector512.Load(p + 16 * (v + 2)), d = Vector512.Load(p + 16 * (v + 3));
            var ab = Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b);     // per lane: a, b, a, b
            var cd = Avx512F.UnpackLow(c, d) + Avx512F.UnpackHigh(c, d);
            // 64-bit unpacks move pairs of floats; the sum is a float sum.
            return Avx512F.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle() + Avx512F.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
        }
    }
}
