using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

public static unsafe partial class MatMul
{
    /// <summary>
    /// The few-rows strategy: every output is a dot product of an input row and a weight row, both
    /// contiguous along K. Weight rows are streamed once from memory (converted to float32 in
    /// registers) and reused, from L1/L2, for every input row, so for M ≤ 8 the speed is set by
    /// memory bandwidth. Work is split over blocks of weight rows.
    /// </summary>
    private static class DotProducts
    {
        /// <summary>Bytes of input rows kept hot per pass (about half of a 1 MiB L2).</summary>
        private const long InputBlockBytes = 512 * 1024;

        /// <summary>
        /// Longest row (in elements) for which a single input row is multiplied one weight row at a
        /// time (<see cref="RowDot{TLoad}"/>): the input row (≤ 16 KiB) stays in L1 and each thread
        /// reads its weight rows as one sequential stream, which the hardware prefetcher follows
        /// best (measured ~90% of read bandwidth at K = 3584, against ~72% for four interleaved rows).
        /// Longer rows would push the input row out of L1; for those, 4 rows at a time re-use each
        /// input vector 4 times and measured faster (~97% at K = 18944).
        /// </summary>
        private const int RowStreamMaxK = 4096;

        /// <summary>Most rows taken as a decoding batch: every weight is read from memory once for all of them.</summary>
        private const int FewRows = 16;

        private struct Job
        {
            public Operands Op;
            public int RowsPerTask;
        }

        public static void Run(in Operands op)
        {
            var job = new Job { Op = op };
            // Several tasks per thread so that dynamic scheduling evens out; multiples of 4 rows.
            int tasks = Math.Max(1, Math.Min((op.N + 3) / 4, KernelThreads.Count * 8));
            job.RowsPerTask = ((op.N + tasks - 1) / tasks + 3) & ~3;
            int taskCount = (op.N + job.RowsPerTask - 1) / job.RowsPerTask;
            delegate*<void*, int, void> body = op.WType switch
            {
                DType.BF16 => &RunTask<BF16Loader>,
                DType.F16 => &RunTask<F16Loader>,
                _ => &RunTask<F32Loader>,
            };
            KernelThreads.For(taskCount, &job, body);
        }

        private static void RunTask<TLoad>(void* context, int task) where TLoad : struct, IWeightLoader
        {
            ref Job job = ref *(Job*)context;
            ref Operands op = ref job.Op;
            int n0 = task * job.RowsPerTask;
            int n1 = Math.Min(op.N, n0 + job.RowsPerTask);
            long wRowBytes = (long)op.K * TLoad.ElementSize;
            if (op.M == 1 && op.K <= RowStreamMaxK)
            {
                for (int n = n0; n < n1; n++) op.Y[n] = RowDot<TLoad>(op.X, op.W + n * wRowBytes, op.K) + (op.Bias != null ? op.Bias[n] : 0f);
                return;
            }
            // Input rows are taken in blocks that fit in L2 (about half of it), so they are re-read
            // from L2 for every group of 4 weight rows; the weight rows are then streamed once per block.
            // A decoding batch (at most FewRows rows) is one block whatever K: reading its rows from L3
            // costs less than streaming the weights from memory again. Within a block, rows go 4 at a
            // time, a last 3 as a 4-row tile (one row repeated), a last 2 or 1 through their own
            // kernels, so each group of 4 weight rows is converted once per (up to) 4 input rows.
            int mBlock = op.M <= FewRows ? op.M
                : Math.Max(4, (int)Math.Min(op.M, (InputBlockBytes / ((long)op.K * sizeof(float))) & ~3L));
            for (int mb0 = 0; mb0 < op.M; mb0 += mBlock)
            {
                int mb1 = Math.Min(op.M, mb0 + mBlock);
                for (int n = n0; n < n1; n += 4)
                {
                    int nr = Math.Min(4, n1 - n);
                    byte* w0 = op.W + n * wRowBytes;
                    // Rows past the end repeat the last valid row; their results are discarded.
                    byte* w1 = w0 + Math.Min(1, nr - 1) * wRowBytes;
                    byte* w2 = w0 + Math.Min(2, nr - 1) * wRowBytes;
                    byte* w3 = w0 + Math.Min(3, nr - 1) * wRowBytes;
                    int mi = mb0;
                    for (; mi + 3 <= mb1; mi += 4)
                        Tile4x4<TLoad>(op, mi, Math.Min(4, mb1 - mi), n, nr, w0, w1, w2, w3);
                    if (mb1 - mi == 2) Tile2x4<TLoad>(op, mi, n, nr, w0, w1, w2, w3);
                    else if (mb1 - mi == 1) Tile1x4<TLoad>(op, mi, n, nr, w0, w1, w2, w3);
                }
            }
        }

        /// <summary>Σ x[kk]·w[kk] over one weight row, with four independent FMA chains.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static float RowDot<TLoad>(float* x, byte* w, int k) where TLoad : struct, IWeightLoader
        {
            int es = TLoad.ElementSize;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int kk = 0;
            for (; kk + 64 <= k; kk += 64)
            {
                byte* wp = w + (long)kk * es;
                a0 = Vector512.FusedMultiplyAdd(TLoad.Load16(wp), Vector512.Load(x + kk), a0);
                a1 = Vector512.FusedMultiplyAdd(TLoad.Load16(wp + 16 * es), Vector512.Load(x + kk + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(TLoad.Load16(wp + 32 * es), Vector512.Load(x + kk + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(TLoad.Load16(wp + 48 * es), Vector512.Load(x + kk + 48), a3);
            }
            for (; kk + 16 <= k; kk += 16)
                a0 = Vector512.FusedMultiplyAdd(TLoad.Load16(w + (long)kk * es), Vector512.Load(x + kk), a0);
            float s = Vector512.Sum((a0 + a1) + (a2 + a3));
            for (; kk < k; kk++) s += x[kk] * TLoad.Load1(w + (long)kk * es);
            return s;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Tile1x4<TLoad>(in Operands op, int mi, int n, int nr, byte* w0, byte* w1, byte* w2, byte* w3)
            where TLoad : struct, IWeightLoader
        {
            int k = op.K, es = TLoad.ElementSize;
            float* x = op.X + (long)mi * op.XStride;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int kk = 0;
            // Two independent accumulator sets hide FMA latency.
            for (; kk + 32 <= k; kk += 32)
            {
                var xv = Vector512.Load(x + kk);
                var xu = Vector512.Load(x + kk + 16);
                long o = (long)kk * es, o2 = (long)(kk + 16) * es;
                a0 = Vector512.FusedMultiplyAdd(TLoad.Load16(w0 + o), xv, a0);
                a1 = Vector512.FusedMultiplyAdd(TLoad.Load16(w1 + o), xv, a1);
                a2 = Vector512.FusedMultiplyAdd(TLoad.Load16(w2 + o), xv, a2);
                a3 = Vector512.FusedMultiplyAdd(TLoad.Load16(w3 + o), xv, a3);
                b0 = Vector512.FusedMultiplyAdd(TLoad.Load16(w0 + o2), xu, b0);
                b1 = Vector512.FusedMultiplyAdd(TLoad.Load16(w1 + o2), xu, b1);
                b2 = Vector512.FusedMultiplyAdd(TLoad.Load16(w2 + o2), xu, b2);
                b3 = Vector512.FusedMultiplyAdd(TLoad.Load16(w3 + o2), xu, b3);
            }
            for (; kk + 16 <= k; kk += 16)
            {
                var xv = Vector512.Load(x + kk);
                long o = (long)kk * es;
                a0 = Vector512.FusedMultiplyAdd(TLoad.Load16(w0 + o), xv, a0);
                a1 = Vector512.FusedMultiplyAdd(TLoad.Load16(w1 + o), xv, a1);
                a2 = Vector512.FusedMultiplyAdd(TLoad.Load16(w2 + o), xv, a2);
                a3 = Vector512.FusedMultiplyAdd(TLoad.Load16(w3 + o), xv, a3);
            }
            float s0 = Vector512.Sum(a0 + b0), s1 = Vector512.Sum(a1 + b1), s2 = Vector512.Sum(a2 + b2), s3 = Vector512.Sum(a3 + b3);
            for (; kk < k; kk++)
            {
                long o = (long)kk * es;
                float xs = x[kk];
                s0 += xs * TLoad.Load1(w0 + o);
                s1 += xs * TLoad.Load1(w1 + o);
                s2 += xs * TLoad.Load1(w2 + o);
                s3 += xs * TLoad.Load1(w3 + o);
            }
            Store(op, mi, n, nr, s0, s1, s2, s3);
        }

        /// <summary>Two input rows times four weight rows: each converted weight vector is used twice, eight FMA chains.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Tile2x4<TLoad>(in Operands op, int mi, int n, int nr, byte* w0, byte* w1, byte* w2, byte* w3)
            where TLoad : struct, IWeightLoader
        {
            int k = op.K, es = TLoad.ElementSize;
            float* x0 = op.X + (long)mi * op.XStride;
            float* x1 = x0 + op.XStride;
            Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
            Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
            int kk = 0;
            for (; kk + 16 <= k; kk += 16)
            {
                long o = (long)kk * es;
                var v0 = TLoad.Load16(w0 + o);
                var v1 = TLoad.Load16(w1 + o);
                var v2 = TLoad.Load16(w2 + o);
                var v3 = TLoad.Load16(w3 + o);
                var xv = Vector512.Load(x0 + kk);
                c00 = Vector512.FusedMultiplyAdd(v0, xv, c00); c01 = Vector512.FusedMultiplyAdd(v1, xv, c01);
                c02 = Vector512.FusedMultiplyAdd(v2, xv, c02); c03 = Vector512.FusedMultiplyAdd(v3, xv, c03);
                xv = Vector512.Load(x1 + kk);
                c10 = Vector512.FusedMultiplyAdd(v0, xv, c10); c11 = Vector512.FusedMultiplyAdd(v1, xv, c11);
                c12 = Vector512.FusedMultiplyAdd(v2, xv, c12); c13 = Vector512.FusedMultiplyAdd(v3, xv, c13);
            }
            float s00 = Vector512.Sum(c00), s01 = Vector512.Sum(c01), s02 = Vector512.Sum(c02), s03 = Vector512.Sum(c03);
            float s10 = Vector512.Sum(c10), s11 = Vector512.Sum(c11), s12 = Vector512.Sum(c12), s13 = Vector512.Sum(c13);
            for (; kk < k; kk++)
            {
                long o = (long)kk * es;
                float v0 = TLoad.Load1(w0 + o), v1 = TLoad.Load1(w1 + o), v2 = TLoad.Load1(w2 + o), v3 = TLoad.Load1(w3 + o);
                float xs = x0[kk]; s00 += xs * v0; s01 += xs * v1; s02 += xs * v2; s03 += xs * v3;
                xs = x1[kk]; s10 += xs * v0; s11 += xs * v1; s12 += xs * v2; s13 += xs * v3;
            }
            Store(op, mi, n, nr, s00, s01, s02, s03);
            Store(op, mi + 1, n, nr, s10, s11, s12, s13);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Tile4x4<TLoad>(in Operands op, int mi, int mr, int n, int nr, byte* w0, byte* w1, byte* w2, byte* w3)
            where TLoad : struct, IWeightLoader
        {
            int k = op.K, es = TLoad.ElementSize;
            float* x0 = op.X + (long)mi * op.XStride;
            float* x1 = x0 + op.XStride;
            float* x2 = x1 + op.XStride;
            // With mr = 3 the fourth row repeats the third; its results are discarded.
            float* x3 = x0 + (long)Math.Min(3, mr - 1) * op.XStride;
            Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
            Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
            Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
            Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
            int kk = 0;
            for (; kk + 16 <= k; kk += 16)
            {
                long o = (long)kk * es;
                var v0 = TLoad.Load16(w0 + o);
                var v1 = TLoad.Load16(w1 + o);
                var v2 = TLoad.Load16(w2 + o);
                var v3 = TLoad.Load16(w3 + o);
                var xv = Vector512.Load(x0 + kk);
                c00 = Vector512.FusedMultiplyAdd(v0, xv, c00); c01 = Vector512.FusedMultiplyAdd(v1, xv, c01);
                c02 = Vector512.FusedMultiplyAdd(v2, xv, c02); c03 = Vector512.FusedMultiplyAdd(v3, xv, c03);
                xv = Vector512.Load(x1 + kk);
                c10 = Vector512.FusedMultiplyAdd(v0, xv, c10); c11 = Vector512.FusedMultiplyAdd(v1, xv, c11);
                c12 = Vector512.FusedMultiplyAdd(v2, xv, c12); c13 = Vector512.FusedMultiplyAdd(v3, xv, c13);
                xv = Vector512.Load(x2 + kk);
                c20 = Vector512.FusedMultiplyAdd(v0, xv, c20); c21 = Vector512.FusedMultiplyAdd(v1, xv, c21);
                c22 = Vector512.FusedMultiplyAdd(v2, xv, c22); c23 = Vector512.FusedMultiplyAdd(v3, xv, c23);
                xv = Vector512.Load(x3 + kk);
                c30 = Vector512.FusedMultiplyAdd(v0, xv, c30); c31 = Vector512.FusedMultiplyAdd(v1, xv, c31);
                c32 = Vector512.FusedMultiplyAdd(v2, xv, c32); c33 = Vector512.FusedMultiplyAdd(v3, xv, c33);
            }
            float s00 = Vector512.Sum(c00), s01 = Vector512.Sum(c01), s02 = Vector512.Sum(c02), s03 = Vector512.Sum(c03);
            float s10 = Vector512.Sum(c10), s11 = Vector512.Sum(c11), s12 = Vector512.Sum(c12), s13 = Vector512.Sum(c13);
            float s20 = Vector512.Sum(c20), s21 = Vector512.Sum(c21), s22 = Vector512.Sum(c22), s23 = Vector512.Sum(c23);
            float s30 = Vector512.Sum(c30), s31 = Vector512.Sum(c31), s32 = Vector512.Sum(c32), s33 = Vector512.Sum(c33);
            for (; kk < k; kk++)
            {
                long o = (long)kk * es;
                float v0 = TLoad.Load1(w0 + o), v1 = TLoad.Load1(w1 + o), v2 = TLoad.Load1(w2 + o), v3 = TLoad.Load1(w3 + o);
                float xs = x0[kk]; s00 += xs * v0; s01 += xs * v1; s02 += xs * v2; s03 += xs * v3;
                xs = x1[kk]; s10 += xs * v0; s11 += xs * v1; s12 += xs * v2; s13 += xs * v3;
                xs = x2[kk]; s20 += xs * v0; s21 += xs * v1; s22 += xs * v2; s23 += xs * v3;
                xs = x3[kk]; s30 += xs * v0; s31 += xs * v1; s32 += xs * v2; s33 += xs * v3;
            }
            Store(op, mi, n, nr, s00, s01, s02, s03);
            Store(op, mi + 1, n, nr, s10, s11, s12, s13);
            Store(op, mi + 2, n, nr, s20, s21, s22, s23);
            if (mr > 3) Store(op, mi + 3, n, nr, s30, s31, s32, s33);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Store(in Operands op, int row, int n, int nr, float s0, float s1, float s2, float s3)
        {
            float* y = op.Y + (long)row * op.YStride + n;
            float* b = op.Bias;
            if (b != null) { s0 += b[n]; if (nr > 1) s1 += b[n + 1]; if (nr > 2) s2 += b[n + 2]; if (nr > 3) s3 += b[n + 3]; }
            y[0] = s0;
            if (nr > 1) y[1] = s1;
            if (nr > 2) y[2] = s2;
            if (nr > 3) y[3] = s3;
        }
    }
}
