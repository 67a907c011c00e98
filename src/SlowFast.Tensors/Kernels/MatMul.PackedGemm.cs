using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SlowFast.Tensors.Kernels;

public static unsafe partial class MatMul
{
    /// <summary>
    /// The many-rows strategy: a cache-blocked, packed GEMM (Goto/BLIS style).
    /// </summary>
    /// <remarks>
    /// Used only for K up to <see cref="KC"/> (<see cref="PackedMaxCols"/>), so all features are one
    /// block: (1) the input rows are packed into
    /// micro-panels of <see cref="MR"/> rows stored k-major (one job, split over threads); (2) the
    /// output columns are cut into blocks of <see cref="NC"/> weights, one task each: the task
    /// converts its weight block (BF16/F16 → float32, once) into an L2-sized packed panel of
    /// <see cref="NR"/>-column strips, then runs the MR×NR register-blocked microkernel over every
    /// input micro-panel, accumulating into y. The microkernel keeps 16 Vector512 accumulators,
    /// broadcasts input values and loads two weight vectors per k.
    /// </remarks>
    private static class PackedGemm
    {
        public const int MR = 8;     // input rows per micro-tile
        public const int NR = 32;    // output columns per micro-tile (2 × Vector512)
        public const int KC = 256;   // input features per block
        public const int NC = 256;   // output columns per task (packed weight panel: NC×KC floats = 256 KiB)

        [ThreadStatic] private static float[]? _weightPanel;
        [ThreadStatic] private static float[]? _inputPanel;

        private struct Job
        {
            public Operands Op;
            public float* PackedX;   // [ceil(M/MR)][kc][MR]
        }

        public static void Run(in Operands op)
        {
            if (op.K > KC) throw new ArgumentException($"the packed GEMM takes at most {KC} features, not {op.K}");
            int mPanels = (op.M + MR - 1) / MR;
            var job = new Job { Op = op };
            job.PackedX = Scratch.Align64(Scratch.Get(ref _inputPanel, (long)mPanels * MR * KC + 64));
            int nTasks = (op.N + NC - 1) / NC;
            delegate*<void*, int, void> compute = op.WType switch
            {
                DType.BF16 => &ComputeTask<BF16Loader>,
                DType.F16 => &ComputeTask<F16Loader>,
                _ => &ComputeTask<F32Loader>,
            };
            KernelThreads.For(mPanels, &job, &PackInputTask);
            KernelThreads.For(nTasks, &job, compute);
        }

        /// <summary>Packs input rows [panel·MR, +MR) × all features k-major; rows past M are zero.</summary>
        private static void PackInputTask(void* context, int panel)
        {
            ref Job job = ref *(Job*)context;
            ref Operands op = ref job.Op;
            int kc = op.K;
            float* dst = job.PackedX + (long)panel * MR * kc;
            int m0 = panel * MR;
            int rows = Math.Min(MR, op.M - m0);
            for (int r = 0; r < MR; r++)
            {
                if (r < rows)
                {
                    float* src = op.X + (long)(m0 + r) * op.XStride;
                    for (int kk = 0; kk < kc; kk++) dst[kk * MR + r] = src[kk];
                }
                else
                {
                    for (int kk = 0; kk < kc; kk++) dst[kk * MR + r] = 0f;
                }
            }
        }

        private static void ComputeTask<TLoad>(void* context, int task) where TLoad : struct, IWeightLoader
        {
            ref Job job = ref *(Job*)context;
            ref Operands op = ref job.Op;
            int kc = op.K;
            int n0 = task * NC;
            int nc = Math.Min(NC, op.N - n0);
            int strips = (nc + NR - 1) / NR;
            float* panel = Scratch.Align64(Scratch.Get(ref _weightPanel, (long)NC * KC + 64));
            PackWeights<TLoad>(op, n0, nc, 0, kc, panel);

            int mPanels = (op.M + MR - 1) / MR;
            float* tile = stackalloc float[MR * NR];
            for (int mp = 0; mp < mPanels; mp++)
            {
                float* a = job.PackedX + (long)mp * MR * kc;
                int m0 = mp * MR;
                int rows = Math.Min(MR, op.M - m0);
                for (int s = 0; s < strips; s++)
                {
                    int col = n0 + s * NR;
                    int cols = Math.Min(NR, op.N - col);
                    float* b = panel + (long)s * NR * kc;
                    float* y = op.Y + (long)m0 * op.YStride + col;
                    if (rows == MR && cols == NR)
                    {
                        InitTile(y, op.YStride, op.Bias, col, MR, NR);
                        Kernel8x32(a, b, kc, y, op.YStride);
                    }
                    else
                    {
                        // Edge tile: work on a full-size scratch tile and copy the valid part back.
                        for (int r = 0; r < MR; r++)
                            for (int j = 0; j < NR; j++)
                                tile[r * NR + j] = r < rows && j < cols
                                    ? (op.Bias != null ? op.Bias[col + j] : 0f)
                                    : 0f;
                        Kernel8x32(a, b, kc, tile, NR);
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < cols; j++)
                                y[(long)r * op.YStride + j] = tile[r * NR + j];
                    }
                }
            }
        }

        private static void InitTile(float* y, long stride, float* bias, int col, int rows, int cols)
        {
            var b0 = bias != null ? Vector512.Load(bias + col) : Vector512<float>.Zero;
            var b1 = bias != null ? Vector512.Load(bias + col + 16) : Vector512<float>.Zero;
            for (int r = 0; r < rows; r++)
            {
                b0.Store(y + r * stride);
                b1.Store(y + r * stride + 16);
            }
        }

        /// <summary>
        /// Converts weights rows [n0, n0+nc) × features [k0, k0+kc) into strips of NR columns, each
        /// stored k-major ([kc][NR]); columns past nc are zero. Works in 16×16 blocks: 16 rows ×
        /// 16 features are loaded (converted to float32 in registers), transposed in registers and
        /// stored as 16 k-rows of 16 columns.
        /// </summary>
        private static void PackWeights<TLoad>(in Operands op, int n0, int nc, int k0, int kc, float* panel) where TLoad : struct, IWeightLoader
        {
            long rowBytes = (long)op.K * TLoad.ElementSize;
            int es = TLoad.ElementSize;
            int strips = (nc + NR - 1) / NR;
            int kcVec = kc & ~15;
            var block = stackalloc Vector512<float>[16];
            for (int s = 0; s < strips; s++)
            {
                float* dst = panel + (long)s * NR * kc;
                for (int half = 0; half < NR; half += 16)
                {
                    int firstRow = s * NR + half;
                    int rows = Math.Clamp(nc - firstRow, 0, 16);
                    byte* src = op.W + (n0 + firstRow) * rowBytes + (long)k0 * es;
                    for (int kk = 0; kk < kcVec; kk += 16)
                    {
                        for (int r = 0; r < 16; r++)
                            block[r] = r < rows ? TLoad.Load16(src + r * rowBytes + (long)kk * es) : Vector512<float>.Zero;
                        if (Avx512F.IsSupported) Transpose16.Block((byte*)block, 64, (byte*)(dst + (long)kk * NR + half), NR * sizeof(float));
                        else
                            for (int i = 0; i < 16; i++)
                                for (int j = 0; j < 16; j++) dst[(long)(kk + i) * NR + half + j] = block[j][i];
                    }
                    for (int kk = kcVec; kk < kc; kk++)
                        for (int r = 0; r < 16; r++)
                            dst[(long)kk * NR + half + r] = r < rows ? TLoad.Load1(src + r * rowBytes + (long)kk * es) : 0f;
                }
            }
        }

        /// <summary>c[8, 32] += a[8 × kc] · b[kc × 32] with a and b packed k-major.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Kernel8x32(float* a, float* b, int kc, float* c, long ldc)
        {
            float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
            float* c4 = c + 4 * ldc, c5 = c + 5 * ldc, c6 = c + 6 * ldc, c7 = c + 7 * ldc;
            var r00 = Vector512.Load(c0); var r01 = Vector512.Load(c0 + 16);
            var r10 = Vector512.Load(c1); var r11 = Vector512.Load(c1 + 16);
            var r20 = Vector512.Load(c2); var r21 = Vector512.Load(c2 + 16);
            var r30 = Vector512.Load(c3); var r31 = Vector512.Load(c3 + 16);
            var r40 = Vector512.Load(c4); var r41 = Vector512.Load(c4 + 16);
            var r50 = Vector512.Load(c5); var r51 = Vector512.Load(c5 + 16);
            var r60 = Vector512.Load(c6); var r61 = Vector512.Load(c6 + 16);
            var r70 = Vector512.Load(c7); var r71 = Vector512.Load(c7 + 16);
            for (int k = 0; k < kc; k++)
            {
                var b0 = Vector512.Load(b);
                var b1 = Vector512.Load(b + 16);
                var av = Vector512.Create(a[0]); r00 = Vector512.FusedMultiplyAdd(av, b0, r00); r01 = Vector512.FusedMultiplyAdd(av, b1, r01);
                av = Vector512.Create(a[1]); r10 = Vector512.FusedMultiplyAdd(av, b0, r10); r11 = Vector512.FusedMultiplyAdd(av, b1, r11);
                av = Vector512.Create(a[2]); r20 = Vector512.FusedMultiplyAdd(av, b0, r20); r21 = Vector512.FusedMultiplyAdd(av, b1, r21);
                av = Vector512.Create(a[3]); r30 = Vector512.FusedMultiplyAdd(av, b0, r30); r31 = Vector512.FusedMultiplyAdd(av, b1, r31);
                av = Vector512.Create(a[4]); r40 = Vector512.FusedMultiplyAdd(av, b0, r40); r41 = Vector512.FusedMultiplyAdd(av, b1, r41);
                av = Vector512.Create(a[5]); r50 = Vector512.FusedMultiplyAdd(av, b0, r50); r51 = Vector512.FusedMultiplyAdd(av, b1, r51);
                av = Vector512.Create(a[6]); r60 = Vector512.FusedMultiplyAdd(av, b0, r60); r61 = Vector512.FusedMultiplyAdd(av, b1, r61);
                av = Vector512.Create(a[7]); r70 = Vector512.FusedMultiplyAdd(av, b0, r70); r71 = Vector512.FusedMultiplyAdd(av, b1, r71);
                a += MR;
                b += NR;
            }
            r00.Store(c0); r01.Store(c0 + 16);
            r10.Store(c1); r11.Store(c1 + 16);
            r20.Store(c2); r21.Store(c2 + 16);
            r30.Store(c3); r31.Store(c3 + 16);
            r40.Store(c4); r41.Store(c4 + 16);
            r50.Store(c5); r51.Store(c5 + 16);
            r60.Store(c6); r61.Store(c6 + 16);
            r70.Store(c7); r71.Store(c7 + 16);
        }
    }
}
