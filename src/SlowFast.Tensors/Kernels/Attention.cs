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
/// transposed once for all of them. Query rows (token, head) go four at a time through both
/// products (scores and probabilities·values), with 16 accumulators in registers, so every key or
/// value vector loaded feeds four rows: about one load per two FMAs instead of one per FMA.
/// </remarks>
public static unsafe class Attention
{
    private const int KeyBlock = 64;     // keys per block (4 vectors of scores per row)
    private const int QueryBlock = 16;   // query tokens per task
    private const int RowTile = 4;       // query rows (token, head) multiplied together

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
            // One query token (a decoding step): its heads read each key and value row directly, no
            // transposed key blocks (which would cost more than the products for one row).
            if (t == 1 && d % 16 == 0) KernelThreads.For(hkv, &job, &RunOneQueryTask);
            else KernelThreads.For(job.QueryBlocks * hkv, &job, &RunTask);
        }
    }

    [ThreadStatic] private static float[]? _oneQueryScores;

    /// <summary>
    /// The query heads of one kv head for a single query token, four heads at a time: scores of every
    /// visible key (each key row loaded once for the four heads), the softmax of each head, then the
    /// probability-weighted sum of the value rows in 64-float chunks (each chunk of a value row loaded once
    /// for the four heads, 16 accumulators). The group's key and value rows stay in L2 between tiles.
    /// </summary>
    private static void RunOneQueryTask(void* context, int kvHead)
    {
        ref Job job = ref *(Job*)context;
        int d = job.D, group = job.Group;
        int keys = (job.Positions != null ? job.Positions[0] : job.S - 1) + 1;
        long kvRowStride = (long)job.Hkv * d;
        long scoreStride = (keys + 15) & ~15;
        float* scores = Scratch.Align64(Scratch.Get(ref _oneQueryScores, 4 * scoreStride + 16));
        Span<float> inverseSum = stackalloc float[4];
        for (int h0 = 0; h0 < group; h0 += 4)
        {
            int heads = Math.Min(4, group - h0);
            float* q0 = job.Q + (long)(kvHead * group + h0) * d;
            // Missing heads of the last tile repeat the first (their results are not stored).
            float* q1 = heads > 1 ? q0 + d : q0, q2 = heads > 2 ? q0 + 2 * d : q0, q3 = heads > 3 ? q0 + 3 * d : q0;
            float* k = job.K + (long)kvHead * d;
            for (int j = 0; j < keys; j++, k += kvRowStride)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int dd = 0; dd < d; dd += 16)
                {
                    var kv = Vector512.Load(k + dd);
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(q0 + dd), kv, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Load(q1 + dd), kv, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.Load(q2 + dd), kv, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.Load(q3 + dd), kv, a3);
                }
                scores[j] = Vector512.Sum(a0) * job.Scale;
                scores[scoreStride + j] = Vector512.Sum(a1) * job.Scale;
                scores[2 * scoreStride + j] = Vector512.Sum(a2) * job.Scale;
                scores[3 * scoreStride + j] = Vector512.Sum(a3) * job.Scale;
            }
            for (int h = 0; h < 4; h++)
            {
                float* p = scores + h * scoreStride;
                inverseSum[h] = 1f / Kernels.Softmax.Numerators(p, keys, Elementwise.Max(new ReadOnlySpan<float>(p, keys)));
            }

            float* p0 = scores, p1 = scores + scoreStride, p2 = scores + 2 * scoreStride, p3 = scores + 3 * scoreStride;
            for (int c = 0; c < d; c += 64)
            {
                int vectors = Math.Min(4, (d - c) / 16);
                Vector512<float> b00 = default, b01 = default, b02 = default, b03 = default;
                Vector512<float> b10 = default, b11 = default, b12 = default, b13 = default;
                Vector512<float> b20 = default, b21 = default, b22 = default, b23 = default;
                Vector512<float> b30 = default, b31 = default, b32 = default, b33 = default;
                float* v = job.V + (long)kvHead * d + c;
                for (int j = 0; j < keys; j++, v += kvRowStride)
                {
                    // Chunks shorter than 64 floats read the row's first vector again (those sums are not stored).
                    var v0 = Vector512.Load(v);
                    var v1 = vectors > 1 ? Vector512.Load(v + 16) : v0;
                    var v2 = vectors > 2 ? Vector512.Load(v + 32) : v0;
                    var v3 = vectors > 3 ? Vector512.Load(v + 48) : v0;
                    var w = Vector512.Create(p0[j]);
                    b00 = Vector512.FusedMultiplyAdd(w, v0, b00); b01 = Vector512.FusedMultiplyAdd(w, v1, b01);
                    b02 = Vector512.FusedMultiplyAdd(w, v2, b02); b03 = Vector512.FusedMultiplyAdd(w, v3, b03);
                    w = Vector512.Create(p1[j]);
                    b10 = Vector512.FusedMultiplyAdd(w, v0, b10); b11 = Vector512.FusedMultiplyAdd(w, v1, b11);
                    b12 = Vector512.FusedMultiplyAdd(w, v2, b12); b13 = Vector512.FusedMultiplyAdd(w, v3, b13);
                    w = Vector512.Create(p2[j]);
                    b20 = Vector512.FusedMultiplyAdd(w, v0, b20); b21 = Vector512.FusedMultiplyAdd(w, v1, b21);
                    b22 = Vector512.FusedMultiplyAdd(w, v2, b22); b23 = Vector512.FusedMultiplyAdd(w, v3, b23);
                    w = Vector512.Create(p3[j]);
                    b30 = Vector512.FusedMultiplyAdd(w, v0, b30); b31 = Vector512.FusedMultiplyAdd(w, v1, b31);
                    b32 = Vector512.FusedMultiplyAdd(w, v2, b32); b33 = Vector512.FusedMultiplyAdd(w, v3, b33);
                }
                float* o = job.Out + (long)(kvHead * group + h0) * d + c;
                StoreChunk(o, vectors, inverseSum[0], b00, b01, b02, b03);
                if (heads > 1) StoreChunk(o + d, vectors, inverseSum[1], b10, b11, b12, b13);
                if (heads > 2) StoreChunk(o + 2 * d, vectors, inverseSum[2], b20, b21, b22, b23);
                if (heads > 3) StoreChunk(o + 3 * d, vectors, inverseSum[3], b30, b31, b32, b33);
            }
        }
    }

    private static void StoreChunk(float* o, int vectors, float scale, Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> e)
    {
        var s = Vector512.Create(scale);
        (a * s).Store(o);
        if (vectors > 1) (b * s).Store(o + 16);
        if (vectors > 2) (c * s).Store(o + 32);
        if (vectors > 3) (e * s).Store(o + 48);
    }

    private static void RunTask(void* context, int task)
    {
        ref Job job = ref *(Job*)context;
        int kvHead = task % job.Hkv;
        int t0 = task / job.Hkv * QueryBlock;
        int t1 = Math.Min(job.T, t0 + QueryBlock);
        int d = job.D, group = job.Group;
        // Rows are (token, head of the group) pairs, token-major; they are processed RowTile at a time.
        int rows = (t1 - t0) * group;
        int rowsPadded = (rows + RowTile - 1) / RowTile * RowTile;
        int dPadded = (d + 15) & ~15;

        // Scratch: transposed key block [dPadded, KeyBlock], probabilities [RowTile, KeyBlock],
        // outputs [rowsPadded, dPadded], running max/sum and last visible key [rowsPadded].
        float* scratch = Scratch.Align64(Scratch.Get(ref _scratch,
            (long)dPadded * KeyBlock + RowTile * KeyBlock + (long)rowsPadded * dPadded + 3L * rowsPadded + 64));
        float* kt = scratch;
        float* probs = kt + (long)dPadded * KeyBlock;
        float* acc = probs + RowTile * KeyBlock;
        float* runMax = acc + (long)rowsPadded * dPadded;
        float* runSum = runMax + rowsPadded;
        int* lastKey = (int*)(runSum + rowsPadded);
        new Span<float>(acc, rowsPadded * dPadded).Clear();
        new Span<float>(runMax, rowsPadded).Fill(float.NegativeInfinity);
        new Span<float>(runSum, rowsPadded).Clear();
        new Span<float>(kt, dPadded * KeyBlock).Clear(); // padding rows of D stay zero

        int keyEnd = 0;
        for (int r = 0; r < rowsPadded; r++)
        {
            // Padding rows see no key at all, so they never update and never read memory.
            int last = r >= rows ? -1 : job.Positions != null ? job.Positions[t0 + r / group] : job.S - 1;
            lastKey[r] = last;
            keyEnd = Math.Max(keyEnd, last + 1);
        }
        long kvRowStride = (long)job.Hkv * d;
        float* rowQ0 = job.Q + ((long)t0 * job.Hq + kvHead * group) * d;
        float* correction = stackalloc float[RowTile];

        for (int j0 = 0; j0 < keyEnd; j0 += KeyBlock)
        {
            int bk = Math.Min(KeyBlock, keyEnd - j0);
            TransposeKeys(job.K + j0 * kvRowStride + (long)kvHead * d, kvRowStride, bk, d, kt);
            float* vBlock = job.V + j0 * kvRowStride + (long)kvHead * d;

            for (int r0 = 0; r0 < rows; r0 += RowTile)
            {
                int tileLast = Math.Max(Math.Max(lastKey[r0], lastKey[r0 + 1]), Math.Max(lastKey[r0 + 2], lastKey[r0 + 3]));
                if (tileLast < j0) continue;
                // Query rows of the tile; padding rows repeat the first row (their results are unused).
                float* q0 = QueryRow(rowQ0, r0, group, job.Hq, d);
                float* q1 = r0 + 1 < rows ? QueryRow(rowQ0, r0 + 1, group, job.Hq, d) : q0;
                float* q2 = r0 + 2 < rows ? QueryRow(rowQ0, r0 + 2, group, job.Hq, d) : q0;
                float* q3 = r0 + 3 < rows ? QueryRow(rowQ0, r0 + 3, group, job.Hq, d) : q0;
                TileScores(q0, q1, q2, q3, kt, d, job.Scale, probs);

                for (int i = 0; i < RowTile; i++)
                {
                    int r = r0 + i;
                    int valid = Math.Min(bk, lastKey[r] - j0 + 1);
                    correction[i] = Softmax(probs + i * KeyBlock, valid, ref runMax[r], ref runSum[r]);
                }
                int tileValid = Math.Min(bk, tileLast - j0 + 1);
                TileValues(probs, tileValid, vBlock, kvRowStride, d, dPadded, acc + (long)r0 * dPadded, correction);
            }
        }

        for (int r = 0; r < rows; r++)
        {
            float inv = 1f / runSum[r];
            float* src = acc + (long)r * dPadded;
            float* dst = QueryRow(job.Out + ((long)t0 * job.Hq + kvHead * group) * d, r, group, job.Hq, d);
            for (int dd = 0; dd < d; dd++) dst[dd] = src[dd] * inv;
        }
    }

    /// <summary>Address of row r = (token offset r / group, head r % group) in a [T, Hq, D] tensor, from the tile's first row.</summary>
    private static float* QueryRow(float* first, int r, int group, int hq, int d) =>
        first + ((long)(r / group) * hq + r % group) * d;

    /// <summary>kt[dd, jj] = k[jj, dd] for the bk keys of a block; keys past bk are zero.</summary>
    private static void TransposeKeys(float* k, long stride, int bk, int d, float* kt)
    {
        for (int jj = 0; jj < KeyBlock; jj++)
        {
            if (jj < bk)
            {
                float* kr = k + jj * stride;
                for (int dd = 0; dd < d; dd++) kt[dd * KeyBlock + jj] = kr[dd];
            }
            else
            {
                for (int dd = 0; dd < d; dd++) kt[dd * KeyBlock + jj] = 0f;
            }
        }
    }

    /// <summary>
    /// scores[i, 0..64) = scale · Σ_d q_i[d] · kt[d, 0..64) for four query rows: 16 accumulators,
    /// each key vector loaded once for the four rows.
    /// </summary>
    private static void TileScores(float* q0, float* q1, float* q2, float* q3, float* kt, int d, float scale, float* scores)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default;
        for (int dd = 0; dd < d; dd++)
        {
            float* kr = kt + dd * KeyBlock;
            var k0 = Vector512.Load(kr); var k1 = Vector512.Load(kr + 16);
            var k2 = Vector512.Load(kr + 32); var k3 = Vector512.Load(kr + 48);
            var q = Vector512.Create(q0[dd]);
            a0 = Vector512.FusedMultiplyAdd(q, k0, a0); a1 = Vector512.FusedMultiplyAdd(q, k1, a1);
            a2 = Vector512.FusedMultiplyAdd(q, k2, a2); a3 = Vector512.FusedMultiplyAdd(q, k3, a3);
            q = Vector512.Create(q1[dd]);
            b0 = Vector512.FusedMultiplyAdd(q, k0, b0); b1 = Vector512.FusedMultiplyAdd(q, k1, b1);
            b2 = Vector512.FusedMultiplyAdd(q, k2, b2); b3 = Vector512.FusedMultiplyAdd(q, k3, b3);
            q = Vector512.Create(q2[dd]);
            c0 = Vector512.FusedMultiplyAdd(q, k0, c0); c1 = Vector512.FusedMultiplyAdd(q, k1, c1);
            c2 = Vector512.FusedMultiplyAdd(q, k2, c2); c3 = Vector512.FusedMultiplyAdd(q, k3, c3);
            q = Vector512.Create(q3[dd]);
            e0 = Vector512.FusedMultiplyAdd(q, k0, e0); e1 = Vector512.FusedMultiplyAdd(q, k1, e1);
            e2 = Vector512.FusedMultiplyAdd(q, k2, e2); e3 = Vector512.FusedMultiplyAdd(q, k3, e3);
        }
        var sc = Vector512.Create(scale);
        (a0 * sc).Store(scores); (a1 * sc).Store(scores + 16); (a2 * sc).Store(scores + 32); (a3 * sc).Store(scores + 48);
        scores += KeyBlock;
        (b0 * sc).Store(scores); (b1 * sc).Store(scores + 16); (b2 * sc).Store(scores + 32); (b3 * sc).Store(scores + 48);
        scores += KeyBlock;
        (c0 * sc).Store(scores); (c1 * sc).Store(scores + 16); (c2 * sc).Store(scores + 32); (c3 * sc).Store(scores + 48);
        scores += KeyBlock;
        (e0 * sc).Store(scores); (e1 * sc).Store(scores + 16); (e2 * sc).Store(scores + 32); (e3 * sc).Store(scores + 48);
    }

    /// <summary>
    /// Online-softmax step for one row: turns its scores (the first <paramref name="valid"/> are visible)
    /// into probabilities relative to the new running max, updates max and sum, and returns the factor
    /// the row's output accumulator must be scaled by. A row that sees no key of the block gets all-zero
    /// probabilities and factor 1.
    /// </summary>
    private static float Softmax(float* p, int valid, ref float runMax, ref float runSum)
    {
        if (valid <= 0)
        {
            new Span<float>(p, KeyBlock).Clear();
            return 1f;
        }
        for (int jj = valid; jj < KeyBlock; jj++) p[jj] = float.NegativeInfinity;
        var m = Vector512.Max(Vector512.Max(Vector512.Load(p), Vector512.Load(p + 16)),
                              Vector512.Max(Vector512.Load(p + 32), Vector512.Load(p + 48)));
        var m8 = Vector256.Max(m.GetLower(), m.GetUpper());
        var m4 = Vector128.Max(m8.GetLower(), m8.GetUpper());
        float blockMax = MathF.Max(MathF.Max(m4.GetElement(0), m4.GetElement(1)), MathF.Max(m4.GetElement(2), m4.GetElement(3)));
        float newMax = MathF.Max(runMax, blockMax);
        float correction = VectorMath.Exp(runMax - newMax); // 0 on the first block (runMax = −∞)
        var nm = Vector512.Create(newMax);
        var p0 = VectorMath.Exp(Vector512.Load(p) - nm);
        var p1 = VectorMath.Exp(Vector512.Load(p + 16) - nm);
        var p2 = VectorMath.Exp(Vector512.Load(p + 32) - nm);
        var p3 = VectorMath.Exp(Vector512.Load(p + 48) - nm);
        p0.Store(p); p1.Store(p + 16); p2.Store(p + 32); p3.Store(p + 48);
        runSum = runSum * correction + Vector512.Sum((p0 + p1) + (p2 + p3));
        runMax = newMax;
        return correction;
    }

    /// <summary>
    /// acc[i, :] = acc[i, :] · correction[i] + Σ_j probs[i, j] · v[j, :] for the four rows of a tile and
    /// the first <paramref name="valid"/> keys. Columns go 64 at a time with 16 accumulators held in
    /// registers across all keys (each value vector loaded once for the four rows), then 16 at a
    /// time, then one by one for a head dimension that is not a multiple of 16.
    /// </summary>
    private static void TileValues(float* probs, int valid, float* v, long vStride, int d, int dPadded, float* acc, float* correction)
    {
        float* acc0 = acc, acc1 = acc + dPadded, acc2 = acc + 2 * dPadded, acc3 = acc + 3 * dPadded;
        float* p0 = probs, p1 = probs + KeyBlock, p2 = probs + 2 * KeyBlock, p3 = probs + 3 * KeyBlock;
        var f0 = Vector512.Create(correction[0]); var f1 = Vector512.Create(correction[1]);
        var f2 = Vector512.Create(correction[2]); var f3 = Vector512.Create(correction[3]);
        int c = 0;
        for (; c + 64 <= d; c += 64)
        {
            var a0 = Vector512.Load(acc0 + c) * f0; var a1 = Vector512.Load(acc0 + c + 16) * f0;
            var a2 = Vector512.Load(acc0 + c + 32) * f0; var a3 = Vector512.Load(acc0 + c + 48) * f0;
            var b0 = Vector512.Load(acc1 + c) * f1; var b1 = Vector512.Load(acc1 + c + 16) * f1;
            var b2 = Vector512.Load(acc1 + c + 32) * f1; var b3 = Vector512.Load(acc1 + c + 48) * f1;
            var e0 = Vector512.Load(acc2 + c) * f2; var e1 = Vector512.Load(acc2 + c + 16) * f2;
            var e2 = Vector512.Load(acc2 + c + 32) * f2; var e3 = Vector512.Load(acc2 + c + 48) * f2;
            var g0 = Vector512.Load(acc3 + c) * f3; var g1 = Vector512.Load(acc3 + c + 16) * f3;
            var g2 = Vector512.Load(acc3 + c + 32) * f3; var g3 = Vector512.Load(acc3 + c + 48) * f3;
            for (int j = 0; j < valid; j++)
            {
                float* vr = v + j * vStride + c;
                var v0 = Vector512.Load(vr); var v1 = Vector512.Load(vr + 16);
                var v2 = Vector512.Load(vr + 32); var v3 = Vector512.Load(vr + 48);
                var w = Vector512.Create(p0[j]);
                a0 = Vector512.FusedMultiplyAdd(w, v0, a0); a1 = Vector512.FusedMultiplyAdd(w, v1, a1);
                a2 = Vector512.FusedMultiplyAdd(w, v2, a2); a3 = Vector512.FusedMultiplyAdd(w, v3, a3);
                w = Vector512.Create(p1[j]);
                b0 = Vector512.FusedMultiplyAdd(w, v0, b0); b1 = Vector512.FusedMultiplyAdd(w, v1, b1);
                b2 = Vector512.FusedMultiplyAdd(w, v2, b2); b3 = Vector512.FusedMultiplyAdd(w, v3, b3);
                w = Vector512.Create(p2[j]);
                e0 = Vector512.FusedMultiplyAdd(w, v0, e0); e1 = Vector512.FusedMultiplyAdd(w, v1, e1);
                e2 = Vector512.FusedMultiplyAdd(w, v2, e2); e3 = Vector512.FusedMultiplyAdd(w, v3, e3);
                w = Vector512.Create(p3[j]);
                g0 = Vector512.FusedMultiplyAdd(w, v0, g0); g1 = Vector512.FusedMultiplyAdd(w, v1, g1);
                g2 = Vector512.FusedMultiplyAdd(w, v2, g2); g3 = Vector512.FusedMultiplyAdd(w, v3, g3);
            }
            a0.Store(acc0 + c); a1.Store(acc0 + c + 16); a2.Store(acc0 + c + 32); a3.Store(acc0 + c + 48);
            b0.Store(acc1 + c); b1.Store(acc1 + c + 16); b2.Store(acc1 + c + 32); b3.Store(acc1 + c + 48);
            e0.Store(acc2 + c); e1.Store(acc2 + c + 16); e2.Store(acc2 + c + 32); e3.Store(acc2 + c + 48);
            g0.Store(acc3 + c); g1.Store(acc3 + c + 16); g2.Store(acc3 + c + 32); g3.Store(acc3 + c + 48);
        }
        for (; c + 16 <= d; c += 16)
        {
            var a = Vector512.Load(acc0 + c) * f0; var b = Vector512.Load(acc1 + c) * f1;
            var e = Vector512.Load(acc2 + c) * f2; var g = Vector512.Load(acc3 + c) * f3;
            for (int j = 0; j < valid; j++)
            {
                var vv = Vector512.Load(v + j * vStride + c);
                a = Vector512.FusedMultiplyAdd(Vector512.Create(p0[j]), vv, a);
                b = Vector512.FusedMultiplyAdd(Vector512.Create(p1[j]), vv, b);
                e = Vector512.FusedMultiplyAdd(Vector512.Create(p2[j]), vv, e);
                g = Vector512.FusedMultiplyAdd(Vector512.Create(p3[j]), vv, g);
            }
            a.Store(acc0 + c); b.Store(acc1 + c); e.Store(acc2 + c); g.Store(acc3 + c);
        }
        for (; c < d; c++)
        {
            float a = acc0[c] * correction[0], b = acc1[c] * correction[1], e = acc2[c] * correction[2], g = acc3[c] * correction[3];
            for (int j = 0; j < valid; j++)
            {
                float vv = v[j * vStride + c];
                a += p0[j] * vv; b += p1[j] * vv; e += p2[j] * vv; g += p3[j] * vv;
            }
            acc0[c] = a; acc1[c] = b; acc2[c] = e; acc3[c] = g;
        }
    }
}
