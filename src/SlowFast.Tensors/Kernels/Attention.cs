using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Scaled dot-product attention with grouped-query heads, fused with an online (streaming) softmax:
/// keys are visited in blocks and each query row keeps a running max, running sum and running
/// output, so no [heads, T, S] score matrix is ever materialised. Scale is 1/√D.
/// </summary>
/// <remarks>
/// Layouts: q and output [T, Hq, D]; k and v [S, Hkv, D]. Query head h reads kv head
/// h / (Hq/Hkv). Work is split over (block of queries, kv head) pairs on <see cref="KernelThreads"/>;
/// all query heads that share a kv head are processed together so each key block is loaded and
/// transposed once for all of them.
/// </remarks>
public static unsafe class Attention
{
    private const int KeyBlock = 64;     // keys per block (4 vectors of scores per row)
    private const int QueryBlock = 16;   // query tokens per task

    [ThreadStatic] private static float[]? _scratch;

    private struct Job
    {
        public float* Q, K, V, Out;
        public int* Positions; // null: no mask (every query sees every key)
        public int T, S, Hq, Hkv, D, Group, QueryBlocks;
        public float Scale;
    }

    /// <summary>
    /// Causal attention: query t attends keys 0..queryPositions[t] inclusive (absolute positions,
    /// so the same call serves prefill and KV-cached decoding). Every position must be &lt; S.
    /// </summary>
    public static void Causal(ReadOnlySpan<float> q, ReadOnlySpan<int> queryPositions, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        int hq, int hkv, int d, Span<float> output)
    {
        int t = queryPositions.Length;
        int s = Check(q, k, v, hq, hkv, d, output, t);
        foreach (int p in queryPositions)
            if ((uint)p >= (uint)s) throw new ArgumentOutOfRangeException(nameof(queryPositions), $"query position {p} is outside the {s} keys");
        fixed (int* pos = queryPositions) Run(q, pos, k, v, hq, hkv, d, output, t, s);
    }

    /// <summary>Unmasked attention (every query sees all S keys), e.g. cross-attention to visual tokens. T = q.Length / (Hq·D).</summary>
    public static void Full(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int hq, int hkv, int d, Span<float> output)
    {
        if (hq <= 0 || d <= 0) throw new ArgumentOutOfRangeException(nameof(hq));
        int t = q.Length / (hq * d);
        int s = Check(q, k, v, hq, hkv, d, output, t);
        Run(q, null, k, v, hq, hkv, d, output, t, s);
    }

    private static int Check(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int hq, int hkv, int d, Span<float> output, int t)
    {
        if (hq <= 0 || hkv <= 0 || d <= 0 || hq % hkv != 0)
            throw new ArgumentException($"attention heads: {hq} query heads must be a positive multiple of {hkv} kv heads, head dim {d} positive");
        if (q.Length != (long)t * hq * d) throw new ArgumentException($"q has {q.Length} floats; expected [{t}, {hq}, {d}]", nameof(q));
        if (output.Length != q.Length) throw new ArgumentException($"output has {output.Length} floats; expected {q.Length}", nameof(output));
        if (k.Length != v.Length || k.Length % (hkv * d) != 0 || k.Length == 0)
            throw new ArgumentException($"k ({k.Length} floats) and v ({v.Length}) must both be [S, {hkv}, {d}] with S > 0");
        return k.Length / (hkv * d);
    }

    private static void Run(ReadOnlySpan<float> q, int* positions, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        int hq, int hkv, int d, Span<float> output, int t, int s)
    {
        if (t == 0) return;
        fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v) fixed (float* po = output)
        {
            var job = new Job
            {
                Q = pq, K = pk, V = pv, Out = po, Positions = positions,
                T = t, S = s, Hq = hq, Hkv = hkv, D = d, Group = hq / hkv,
                QueryBlocks = (t + QueryBlock - 1) / QueryBlock,
                Scale = 1f / MathF.Sqrt(d),
            };
            KernelThreads.For(job.QueryBlocks * hkv, &job, &RunTask);
        }
    }

    private static void RunTask(void* context, int task)
    {
        ref Job job = ref *(Job*)context;
        int kvHead = task % job.Hkv;
        int t0 = task / job.Hkv * QueryBlock;
        int t1 = Math.Min(job.T, t0 + QueryBlock);
        int d = job.D, group = job.Group;
        int rows = (t1 - t0) * group;
        int dPadded = (d + 15) & ~15;

        // Scratch: transposed key block [dPadded, KeyBlock], two score rows [KeyBlock], outputs [rows, dPadded], max/sum [rows].
        float* scratch = Scratch.Align64(Scratch.Get(ref _scratch, (long)dPadded * KeyBlock + 2 * KeyBlock + (long)rows * dPadded + 2L * rows + 64));
        float* kt = scratch;
        float* scores = kt + (long)dPadded * KeyBlock;
        float* scores2 = scores + KeyBlock;
        float* acc = scores2 + KeyBlock;
        float* runMax = acc + (long)rows * dPadded;
        float* runSum = runMax + rows;
        new Span<float>(acc, rows * dPadded).Clear();
        new Span<float>(runMax, rows).Fill(float.NegativeInfinity);
        new Span<float>(runSum, rows).Clear();
        new Span<float>(kt, dPadded * KeyBlock).Clear(); // padding rows of D stay zero

        int keyEnd = job.S;
        if (job.Positions != null)
        {
            keyEnd = 0;
            for (int t = t0; t < t1; t++) keyEnd = Math.Max(keyEnd, job.Positions[t] + 1);
        }
        long kvRowStride = (long)job.Hkv * d;

        for (int j0 = 0; j0 < keyEnd; j0 += KeyBlock)
        {
            int bk = Math.Min(KeyBlock, keyEnd - j0);
            // Transpose this key block: kt[dd, jj] = k[j0 + jj, kvHead, dd]; keys past bk are zero.
            for (int jj = 0; jj < KeyBlock; jj++)
            {
                if (jj < bk)
                {
                    float* kr = job.K + (j0 + jj) * kvRowStride + (long)kvHead * d;
                    for (int dd = 0; dd < d; dd++) kt[dd * KeyBlock + jj] = kr[dd];
                }
                else
                {
                    for (int dd = 0; dd < d; dd++) kt[dd * KeyBlock + jj] = 0f;
                }
            }

            for (int t = t0; t < t1; t++)
            {
                int lastKey = job.Positions != null ? job.Positions[t] : job.S - 1;
                if (lastKey < j0) continue;
                int valid = Math.Min(bk, lastKey - j0 + 1);
                float* vBlock = job.V + j0 * kvRowStride + (long)kvHead * d;
                for (int g = 0; g < group; g += 2)
                {
                    int head = kvHead * group + g;
                    int row = (t - t0) * group + g;
                    float* qr = job.Q + ((long)t * job.Hq + head) * d;
                    if (g + 1 < group)
                    {
                        // Two heads of the same token: each key-block load feeds both rows.
                        BlockScores2(qr, qr + d, kt, d, job.Scale, scores, scores2);
                        for (int jj = valid; jj < KeyBlock; jj++) { scores[jj] = float.NegativeInfinity; scores2[jj] = float.NegativeInfinity; }
                        UpdateRow(scores, valid, vBlock, kvRowStride, d, acc + (long)row * dPadded, ref runMax[row], ref runSum[row]);
                        UpdateRow(scores2, valid, vBlock, kvRowStride, d, acc + (long)(row + 1) * dPadded, ref runMax[row + 1], ref runSum[row + 1]);
                    }
                    else
                    {
                        BlockScores(qr, kt, d, job.Scale, scores);
                        for (int jj = valid; jj < KeyBlock; jj++) scores[jj] = float.NegativeInfinity;
                        UpdateRow(scores, valid, vBlock, kvRowStride, d, acc + (long)row * dPadded, ref runMax[row], ref runSum[row]);
                    }
                }
            }
        }

        for (int t = t0; t < t1; t++)
            for (int g = 0; g < group; g++)
            {
                int head = kvHead * group + g;
                int row = (t - t0) * group + g;
                float inv = 1f / runSum[row];
                float* src = acc + (long)row * dPadded;
                float* dst = job.Out + ((long)t * job.Hq + head) * d;
                for (int dd = 0; dd < d; dd++) dst[dd] = src[dd] * inv;
            }
    }

    /// <summary>scores[0..64) = scale · Σ_d q[d] · kt[d, 0..64).</summary>
    private static void BlockScores(float* q, float* kt, int d, float scale, float* scores)
    {
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
        for (int dd = 0; dd < d; dd++)
        {
            var qv = Vector512.Create(q[dd]);
            float* kr = kt + dd * KeyBlock;
            s0 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(kr), s0);
            s1 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(kr + 16), s1);
            s2 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(kr + 32), s2);
            s3 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(kr + 48), s3);
        }
        var sc = Vector512.Create(scale);
        (s0 * sc).Store(scores);
        (s1 * sc).Store(scores + 16);
        (s2 * sc).Store(scores + 32);
        (s3 * sc).Store(scores + 48);
    }

    /// <summary>Two query rows at once: 8 independent FMA chains, each key vector loaded once for both.</summary>
    private static void BlockScores2(float* q0, float* q1, float* kt, int d, float scale, float* scores0, float* scores1)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        for (int dd = 0; dd < d; dd++)
        {
            float* kr = kt + dd * KeyBlock;
            var k0 = Vector512.Load(kr); var k1 = Vector512.Load(kr + 16);
            var k2 = Vector512.Load(kr + 32); var k3 = Vector512.Load(kr + 48);
            var qa = Vector512.Create(q0[dd]);
            a0 = Vector512.FusedMultiplyAdd(qa, k0, a0); a1 = Vector512.FusedMultiplyAdd(qa, k1, a1);
            a2 = Vector512.FusedMultiplyAdd(qa, k2, a2); a3 = Vector512.FusedMultiplyAdd(qa, k3, a3);
            var qb = Vector512.Create(q1[dd]);
            b0 = Vector512.FusedMultiplyAdd(qb, k0, b0); b1 = Vector512.FusedMultiplyAdd(qb, k1, b1);
            b2 = Vector512.FusedMultiplyAdd(qb, k2, b2); b3 = Vector512.FusedMultiplyAdd(qb, k3, b3);
        }
        var sc = Vector512.Create(scale);
        (a0 * sc).Store(scores0); (a1 * sc).Store(scores0 + 16); (a2 * sc).Store(scores0 + 32); (a3 * sc).Store(scores0 + 48);
        (b0 * sc).Store(scores1); (b1 * sc).Store(scores1 + 16); (b2 * sc).Store(scores1 + 32); (b3 * sc).Store(scores1 + 48);
    }

    /// <summary>Online-softmax update of one query row with one block of scores (entries ≥ valid are −∞).</summary>
    private static void UpdateRow(float* scores, int valid, float* v, long vStride, int d, float* acc, ref float runMax, ref float runSum)
    {
        var m = Vector512.Max(Vector512.Max(Vector512.Load(scores), Vector512.Load(scores + 16)),
                              Vector512.Max(Vector512.Load(scores + 32), Vector512.Load(scores + 48)));
        float blockMax = float.NegativeInfinity;
        for (int i = 0; i < 16; i++) blockMax = MathF.Max(blockMax, m[i]);
        float newMax = MathF.Max(runMax, blockMax);
        float correction = MathF.Exp(runMax - newMax); // 0 on the first block (runMax = −∞)
        var nm = Vector512.Create(newMax);
        var p0 = Vector512.Exp(Vector512.Load(scores) - nm);
        var p1 = Vector512.Exp(Vector512.Load(scores + 16) - nm);
        var p2 = Vector512.Exp(Vector512.Load(scores + 32) - nm);
        var p3 = Vector512.Exp(Vector512.Load(scores + 48) - nm);
        p0.Store(scores); p1.Store(scores + 16); p2.Store(scores + 32); p3.Store(scores + 48);
        runSum = runSum * correction + Vector512.Sum(p0 + p1 + p2 + p3);
        runMax = newMax;

        int dv = d & ~15;
        if (correction != 1f)
        {
            var c = Vector512.Create(correction);
            for (int dd = 0; dd < dv; dd += 16) (Vector512.Load(acc + dd) * c).Store(acc + dd);
            for (int dd = dv; dd < d; dd++) acc[dd] *= correction;
        }
        // acc += Σ_j p_j · v_j. Columns go 64 at a time with the partial sums in registers across all
        // keys of the block (8 chains: 4 column vectors × even/odd keys).
        int d64 = d & ~63;
        for (int c = 0; c < d64; c += 64)
        {
            Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default;
            Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default;
            int j = 0;
            for (; j + 2 <= valid; j += 2)
            {
                float* vr = v + j * vStride + c;
                var w0 = Vector512.Create(scores[j]);
                e0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr), e0); e1 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr + 16), e1);
                e2 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr + 32), e2); e3 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr + 48), e3);
                vr += vStride;
                var w1 = Vector512.Create(scores[j + 1]);
                o0 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(vr), o0); o1 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(vr + 16), o1);
                o2 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(vr + 32), o2); o3 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(vr + 48), o3);
            }
            if (j < valid)
            {
                float* vr = v + j * vStride + c;
                var w0 = Vector512.Create(scores[j]);
                e0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr), e0); e1 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr + 16), e1);
                e2 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr + 32), e2); e3 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(vr + 48), e3);
            }
            (Vector512.Load(acc + c) + e0 + o0).Store(acc + c);
            (Vector512.Load(acc + c + 16) + e1 + o1).Store(acc + c + 16);
            (Vector512.Load(acc + c + 32) + e2 + o2).Store(acc + c + 32);
            (Vector512.Load(acc + c + 48) + e3 + o3).Store(acc + c + 48);
        }
        for (int j = 0; j < valid && d64 < d; j++)
        {
            float p = scores[j];
            var pv = Vector512.Create(p);
            float* vr = v + j * vStride;
            int dd = d64;
            for (; dd < dv; dd += 16) Vector512.FusedMultiplyAdd(pv, Vector512.Load(vr + dd), Vector512.Load(acc + dd)).Store(acc + dd);
            for (; dd < d; dd++) acc[dd] += p * vr[dd];
        }
    }
}
