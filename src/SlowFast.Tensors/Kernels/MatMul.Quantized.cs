using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SlowFast.Tensors.Kernels.Jit;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Tensors.Kernels;

public static unsafe partial class MatMul
{
    /// <summary>
    /// Products with block-quantized weights, in integer arithmetic as llama.cpp does: each input row
    /// is quantized on the fly per 32-element block to int8 (d = max|x| / 127, q = round-half-even(x / d),
    /// d kept in float32), each block's dot product of integers is exact, and
    /// y = Σ_blocks float(Σ q_x·q_w) · d_w · d_x in float32 (+ bias).
    /// </summary>
    /// <remarks>
    /// The weights are read as stored (memory-mapped integers and float16 scales), never converted to a
    /// float copy. Where AVX512-VNNI kernels run and K is whole kernel steps (64 elements for Q8_0, 128
    /// for Q4_0), rows go through
    /// <see cref="QuantRowsKernel"/> in blocks of <see cref="RowBlock"/> rows: tiles of up to 4 rows, the
    /// weight rows split into tasks over <see cref="KernelThreads"/> (as <see cref="Bf16Rows"/> does); a
    /// chunk of weight rows is read from memory once per row block and from L2 by its other tiles.
    /// Elsewhere a scalar loop computes the same sums (in another order).
    /// </remarks>
    internal static class Quantized
    {
        /// <summary>Input rows per pass over the weights (4 tiles of 4).</summary>
        public const int RowBlock = 16;
        /// <summary>
        /// Row count from which <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision)"/>
        /// sends products with <paramref name="format"/> weights to the GEMM's integer tiles
        /// (<see cref="QuantTileKernel"/>), which pack the weights once per band and reuse them across all
        /// rows; below it the row kernel reads them as stored, once per <see cref="RowBlock"/> rows. Q4_0's
        /// row kernel reads half Q8_0's bytes, so it stays ahead to more rows (crossovers measured on
        /// 7b-sized matrices: docs/benchmarks/quant-prefill-2026-12-01.md). Tests may override it for
        /// their own thread (<see cref="GemmMinRowsOverride"/>: the two paths round differently, so a
        /// setting shared across threads would change other tests' results while they run).
        /// </summary>
        internal static int GemmMinRows(BlockFormat format) =>
            GemmMinRowsOverride ?? (format == BlockFormat.Q8_0 ? 20 : 36);

        /// <summary>When set, the row count from which every format goes to the GEMM, on this thread.</summary>
        internal static int? GemmMinRowsOverride
        {
            get => _gemmMinRows;
            set => _gemmMinRows = value;
        }
        [ThreadStatic] private static int? _gemmMinRows;
        private const int TileMaxRows = QuantRowsKernel.MaxRows;
        /// <summary>Weight bytes per chunk when several tiles re-read it (held in L2 between tiles).</summary>
        private const long ChunkBytes = 128 * 1024;
        private const int MaxChunkGroups = 8;

        [ThreadStatic] private static float[]? _input;
        [ThreadStatic] private static float[]? _partials;
        private static readonly byte* _constants = BuildConstants();

        private struct Job
        {
            public Operands Op;
            public BlockFormat Format;
            public Half* Scales;
            public byte* X;
            public int Tiles;
            public fixed int TileRows[4];
            public fixed long TileOffset[4];   // bytes from X
            public int WeightRows;
            public int RowsPerTask;
            public int ChunkGroups;
            public int Steps;
            public long RowBytes;
            public bool ScaleGroups;
        }

        public static void Run(in Operands op, BlockFormat format, Half* scales)
        {
            if (!QuantRowsKernel.IsSupported || op.K % QuantRowsKernel.StepElements(format) != 0)
            {
                Scalar(in op, format, scales);
                return;
            }
            for (int m0 = 0; m0 < op.M; m0 += RowBlock)
            {
                var block = op;
                block.M = Math.Min(RowBlock, op.M - m0);
                block.X = op.X + (long)m0 * op.XStride;
                block.Y = op.Y + (long)m0 * op.YStride;
                RunBlock(in block, format, scales);
            }
        }

        private static void RunBlock(in Operands op, BlockFormat format, Half* scales)
        {
            var job = new Job { Op = op, Format = format, Scales = scales, Steps = op.K / QuantRowsKernel.StepElements(format), RowBytes = format.RowBytes(op.K) };
            int stepBytes = QuantRowsKernel.InputStepBytes(format);
            job.Tiles = (op.M + TileMaxRows - 1) / TileMaxRows;
            job.WeightRows = QuantRowsKernel.MaxWeightRows;
            long offset = 0;
            for (int t = 0; t < job.Tiles; t++)
            {
                int rows = op.M / job.Tiles + (t < op.M % job.Tiles ? 1 : 0);
                job.TileRows[t] = rows;
                job.TileOffset[t] = offset;
                offset += (long)job.Steps * rows * stepBytes;
            }
            job.X = (byte*)Scratch.Align64(Scratch.Get(ref _input, offset / 4 + 16));
            job.ScaleGroups = job.Tiles == 1 && job.TileRows[0] == 1 && job.Steps % QuantRowsKernel.ScaleLoadSteps(format) == 0;
            for (int t = 0, first = 0; t < job.Tiles; first += job.TileRows[t], t++)
                for (int r = 0; r < job.TileRows[t]; r++)
                    QuantizeInput(format, op.X + (long)(first + r) * op.XStride, op.K,
                        job.X + job.TileOffset[t] + r * stepBytes, job.TileRows[t] * stepBytes, job.ScaleGroups);

            int nw = job.WeightRows;
            long groupBytes = nw * job.RowBytes;
            job.ChunkGroups = job.Tiles == 1 ? MaxChunkGroups : (int)Math.Clamp(ChunkBytes / groupBytes, 1, MaxChunkGroups);
            int groups = (op.N + nw - 1) / nw;
            int tasks = Math.Max(1, Math.Min(groups, KernelThreads.Count * 8));
            job.RowsPerTask = (groups + tasks - 1) / tasks * nw;
            int taskCount = (op.N + job.RowsPerTask - 1) / job.RowsPerTask;
            KernelThreads.For(taskCount, &job, &RunTask);
        }

        private static void RunTask(void* context, int task)
        {
            ref Job job = ref *(Job*)context;
            ref Operands op = ref job.Op;
            int nw = job.WeightRows;
            int n0 = task * job.RowsPerTask, n1 = Math.Min(op.N, n0 + job.RowsPerTask);
            long scaleRowBytes = op.K / BlockFormats.BlockSize * 2L;
            float* partials = Scratch.Align64(Scratch.Get(ref _partials, (MaxChunkGroups * 16 + 16) * 17L));
            float* sums = partials + (MaxChunkGroups * 16 + 16) * 16L;
            var args = new QuantRowsArgs
            {
                WStride = job.RowBytes, KNeg = -job.RowBytes,
                SStride = scaleRowBytes, SNeg = -(long)QuantRowsKernel.ScaleStepBytes(job.Format) * job.Steps,
                Consts = _constants + (job.Format == BlockFormat.Q8_0 ? 0 : ConstantBytes),
                Ahead = PrefetchGroups(nw * job.RowBytes) * nw * job.RowBytes,
            };
            for (int n = n0; n < n1;)
            {
                int left = n1 - n;
                int chunkNw = left >= nw ? nw : left;
                int chunkGroups = Math.Min(job.ChunkGroups, left / chunkNw);
                int m0 = 0;
                for (int t = 0; t < job.Tiles; t++)
                {
                    int rows = job.TileRows[t];
                    args.X = job.X + job.TileOffset[t];
                    args.W = op.W + n * job.RowBytes + job.RowBytes;
                    args.S = (byte*)job.Scales + n * scaleRowBytes + scaleRowBytes;
                    args.Out = partials;
                    args.Groups = chunkGroups;
                    args.GroupStepW = chunkNw * job.RowBytes;
                    args.GroupStepS = chunkNw * scaleRowBytes;
                    QuantRowsKernel.Get(job.Format, rows, chunkNw, job.ScaleGroups)(&args);
                    Bf16Rows.Sum(ref op, partials, sums, m0, rows, n, chunkNw, chunkGroups);
                    m0 += rows;
                }
                n += chunkGroups * chunkNw;
            }
        }

        /// <summary>
        /// Bytes ahead of the weights it reads from which the kernel prefetches into L2, at least: about a
        /// microsecond of one core's streaming, well past a memory access's latency, and a small share of
        /// L2 (used where the kernel prefetches the groups ahead, <see cref="QuantPrefetch.RowAndGroups"/>).
        /// </summary>
        private const long PrefetchBytes = 24 * 1024;

        private static long PrefetchGroups(long groupBytes) => Math.Max(1, (PrefetchBytes + groupBytes - 1) / groupBytes);

        /// <summary>
        /// One input row for the kernel: per step, at <paramref name="dst"/> + s·<paramref name="stepStride"/>,
        /// the step's int8 in the format's byte order (<see cref="QuantRowsKernel.ElementOfByte"/>), each
        /// int32 lane's correction −offset·Σ(the input integers it multiplies) and each lane's block scale d.
        /// With <paramref name="scaleGroups"/> (one input row, for the kernel's scale groups) the scales are
        /// instead given per group of <see cref="QuantRowsKernel.ScaleLoadSteps"/> steps: the group's 16
        /// block scales in block order, where its first step's lane scales would be.
        /// </summary>
        internal static void QuantizeInput(BlockFormat format, float* x, int k, byte* dst, long stepStride, bool scaleGroups = false)
        {
            if (!Vector512.IsHardwareAccelerated || !Avx512BW.IsSupported)
            {
                QuantizeInputScalar(format, x, k, dst, stepStride, scaleGroups);
                return;
            }
            int groupSteps = QuantRowsKernel.ScaleLoadSteps(format);
            float* groupScales = stackalloc float[16];
            int elements = QuantRowsKernel.StepElements(format), inputBytes = QuantRowsKernel.InputBytes(format);
            bool q4 = format == BlockFormat.Q4_0;
            var ones8 = Vector512.Create((byte)1);
            var ones16 = Vector512.Create((short)1);
            var minusOffset = Vector512.Create(-QuantRowsKernel.WeightOffset(format));
            // Lane l's scale is block BlockOfLane(l)'s: lanes 0–7, 8–15 (Q8_0) or four lanes a block (Q4_0).
            var laneBlocks = q4 ? Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                                : Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
            for (int s = 0; s < k / elements; s++)
            {
                byte* step = dst + s * stepStride;
                float* xs = x + s * elements;
                Vector512<float> d;
                Vector512<int> sums;
                if (!q4)
                {
                    float d0 = QuantizeBlock(xs, (sbyte*)step, (sbyte*)step + 16);
                    float d1 = QuantizeBlock(xs + 32, (sbyte*)step + 32, (sbyte*)step + 48);
                    d = Vector512.Create(d0, d1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                    sums = LaneSums(Vector512.Load((sbyte*)step), ones8, ones16);
                }
                else
                {
                    // Elements 0–15 of block b go to bytes 16b… of the first vector, 16–31 to the second's.
                    float d0 = QuantizeBlock(xs, (sbyte*)step, (sbyte*)step + 64);
                    float d1 = QuantizeBlock(xs + 32, (sbyte*)step + 16, (sbyte*)step + 80);
                    float d2 = QuantizeBlock(xs + 64, (sbyte*)step + 32, (sbyte*)step + 96);
                    float d3 = QuantizeBlock(xs + 96, (sbyte*)step + 48, (sbyte*)step + 112);
                    d = Vector512.Create(d0, d1, d2, d3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                    // Both vectors' products add into the same 16 lanes.
                    sums = LaneSums(Vector512.Load((sbyte*)step), ones8, ones16) + LaneSums(Vector512.Load((sbyte*)step + 64), ones8, ones16);
                }
                (sums * minusOffset).Store((int*)(step + inputBytes));
                if (!scaleGroups) Avx512F.PermuteVar16x32(d, laneBlocks).Store((float*)(step + inputBytes + 64));
                else
                {
                    int u = s % groupSteps, blocks = elements / BlockFormats.BlockSize;
                    for (int b = 0; b < blocks; b++) groupScales[u * blocks + b] = d[b];
                    if (u == groupSteps - 1) Vector512.Load(groupScales).Store((float*)(step - u * stepStride + inputBytes + 64));
                }
            }
        }

        /// <summary>Int32 lane l = the sum of signed bytes 4l … 4l + 3.</summary>
        private static Vector512<int> LaneSums(Vector512<sbyte> bytes, Vector512<byte> ones8, Vector512<short> ones16) =>
            Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(ones8, bytes), ones16);

        /// <summary>The layout of <see cref="QuantizeInput"/>, element by element (the tests compare them).</summary>
        internal static void QuantizeInputScalar(BlockFormat format, float* x, int k, byte* dst, long stepStride, bool scaleGroups = false)
        {
            int groupSteps = QuantRowsKernel.ScaleLoadSteps(format);
            int offset = QuantRowsKernel.WeightOffset(format);
            int elements = QuantRowsKernel.StepElements(format), inputBytes = QuantRowsKernel.InputBytes(format);
            int blocks = elements / BlockFormats.BlockSize;
            bool q4 = format == BlockFormat.Q4_0;
            sbyte* q = stackalloc sbyte[BlockFormats.BlockSize];
            float* d = stackalloc float[blocks];
            for (int s = 0; s < k / elements; s++)
            {
                byte* step = dst + s * stepStride;
                for (int b = 0; b < blocks; b++)
                {
                    d[b] = QuantizeBlockScalar(x + s * elements + b * BlockFormats.BlockSize, q);
                    for (int i = 0; i < BlockFormats.BlockSize; i++)
                    {
                        int at = q4 ? (i < 16 ? 16 * b + i : 64 + 16 * b + i - 16) : 32 * b + i;
                        step[at] = (byte)q[i];
                    }
                }
                int* correction = (int*)(step + inputBytes);
                float* lane = (float*)(step + inputBytes + 64);
                for (int l = 0; l < 16; l++)
                {
                    int sum = 0;
                    for (int v = 0; v < inputBytes; v += 64)   // every 64-byte vector adds into the same 16 lanes
                        for (int i = v + 4 * l; i < v + 4 * l + 4; i++) sum += (sbyte)step[i];
                    correction[l] = -offset * sum;
                    if (!scaleGroups) lane[l] = d[QuantRowsKernel.BlockOfLane(format, l)];
                }
                if (scaleGroups)
                {
                    int u = s % groupSteps;
                    float* first = (float*)(step - u * stepStride + inputBytes + 64);
                    for (int b = 0; b < blocks; b++) first[u * blocks + b] = d[b];
                }
            }
        }

        /// <summary>
        /// 32 floats → 32 int8 and their scale: d = max|x| / 127, q = round-half-even(x / d) (0 when d = 0),
        /// x / d computed as x · (1 / d). Vectorized; <see cref="QuantizeBlockScalar"/> is the same arithmetic
        /// element by element (the tests compare them).
        /// </summary>
        internal static float QuantizeBlock(float* x, sbyte* q) => QuantizeBlock(x, q, q + 16);

        /// <summary><see cref="QuantizeBlock(float*, sbyte*)"/> with elements 0–15 stored at <paramref name="first"/>, 16–31 at <paramref name="second"/>.</summary>
        internal static float QuantizeBlock(float* x, sbyte* first, sbyte* second)
        {
            if (!Vector512.IsHardwareAccelerated)
            {
                sbyte* q = stackalloc sbyte[32];
                float scale = QuantizeBlockScalar(x, q);
                new ReadOnlySpan<sbyte>(q, 16).CopyTo(new Span<sbyte>(first, 16));
                new ReadOnlySpan<sbyte>(q + 16, 16).CopyTo(new Span<sbyte>(second, 16));
                return scale;
            }
            var lo = Vector512.Load(x);
            var hi = Vector512.Load(x + 16);
            float amax = MaxOf(Vector512.Max(Vector512.Abs(lo), Vector512.Abs(hi)));
            float d = amax / 127f;
            var id = Vector512.Create(d != 0 ? 1f / d : 0f);
            var limit = Vector512.Create(127);
            var qlo = Vector512.Clamp(Vector512.ConvertToInt32(Vector512.Round(lo * id)), -limit, limit);
            var qhi = Vector512.Clamp(Vector512.ConvertToInt32(Vector512.Round(hi * id)), -limit, limit);
            Avx512F.ConvertToVector128SByte(qlo).Store(first);
            Avx512F.ConvertToVector128SByte(qhi).Store(second);
            return d;
        }

        private static float MaxOf(Vector512<float> v)
        {
            var m = Vector256.Max(v.GetLower(), v.GetUpper());
            var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
            float r = m4[0];
            for (int i = 1; i < 4; i++) r = MathF.Max(r, m4[i]);
            return r;
        }

        /// <summary>The arithmetic of <see cref="QuantizeBlock(float*, sbyte*)"/>, one element at a time.</summary>
        internal static float QuantizeBlockScalar(float* x, sbyte* q)
        {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            for (int i = 0; i < 32; i++) q[i] = (sbyte)Math.Clamp(MathF.Round(x[i] * id), -127f, 127f);
            return d;
        }

        /// <summary>The same sums without generated code (any CPU, any K that is whole blocks).</summary>
        private static void Scalar(in Operands op, BlockFormat format, Half* scales)
        {
            int blocks = op.K / BlockFormats.BlockSize;
            long rowBytes = format.RowBytes(op.K);
            var q = new sbyte[op.K];
            var d = new float[blocks];
            var w = new int[32];
            for (int m = 0; m < op.M; m++)
            {
                float* x = op.X + (long)m * op.XStride;
                fixed (sbyte* pq = q)
                    for (int b = 0; b < blocks; b++) d[b] = QuantizeBlockScalar(x + b * 32, pq + b * 32);
                for (int n = 0; n < op.N; n++)
                {
                    byte* row = op.W + n * rowBytes;
                    Half* rowScales = scales + (long)n * blocks;
                    float acc = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        WeightIntegers(format, row, b, w);
                        int dot = 0;
                        for (int i = 0; i < 32; i++) dot += w[i] * q[b * 32 + i];
                        acc += dot * ((float)rowScales[b] * d[b]);
                    }
                    op.Y[(long)m * op.YStride + n] = acc + (op.Bias == null ? 0 : op.Bias[n]);
                }
            }
        }

        /// <summary>Block <paramref name="b"/> of a quantized row as 32 signed integers.</summary>
        internal static void WeightIntegers(BlockFormat format, byte* row, int b, Span<int> w)
        {
            if (format == BlockFormat.Q8_0)
                for (int i = 0; i < 32; i++) w[i] = (sbyte)row[b * 32 + i];
            else
                for (int i = 0; i < 16; i++)
                {
                    byte v = row[b * 16 + i];
                    w[i] = (v & 15) - 8;
                    w[i + 16] = (v >> 4) - 8;
                }
        }

        /// <summary>Bytes of one format's constants.</summary>
        private const int ConstantBytes = 128 + 64 * 8;

        /// <summary>
        /// Per format (Q8_0 at 0, Q4_0 at <see cref="ConstantBytes"/>): the byte mask (sign bits, or low
        /// nibbles), the scale lane indexes of a step, and those of each step of a scale group (step u's
        /// lanes read the converted scales u·blocks + their block).
        /// </summary>
        private static byte* BuildConstants()
        {
            byte* p = (byte*)NativeMemory.AlignedAlloc(2 * ConstantBytes, 64);
            foreach (var (format, at) in new[] { (BlockFormat.Q8_0, 0), (BlockFormat.Q4_0, ConstantBytes) })
            {
                byte* c = p + at;
                int blocks = QuantRowsKernel.StepElements(format) / BlockFormats.BlockSize;
                for (int i = 0; i < 64; i++) c[i] = format == BlockFormat.Q8_0 ? (byte)0x80 : (byte)0x0F;
                for (int l = 0; l < 16; l++) ((int*)(c + 64))[l] = QuantRowsKernel.BlockOfLane(format, l);
                for (int u = 0; u < QuantRowsKernel.ScaleLoadSteps(format); u++)
                    for (int l = 0; l < 16; l++) ((int*)(c + 128 + 64 * u))[l] = u * blocks + QuantRowsKernel.BlockOfLane(format, l);
            }
            return p;
        }
    }
}
