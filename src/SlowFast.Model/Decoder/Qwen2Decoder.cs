using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Decoder;

/// <summary>Which positions of a forward pass get logits.</summary>
public enum LogitRows
{
    /// <summary>No logits (e.g. a prefill whose next token is already known).</summary>
    None,
    /// <summary>The last position only (prefill before generation, every decoding step).</summary>
    Last,
    /// <summary>Every position ([count, vocab]; the <c>forward</c> command).</summary>
    All,
}

/// <summary>
/// The Qwen2 decoder with the slow-fast hybrid layers. One forward pass runs a batch of sequences,
/// each continuing its own KV cache by some positions — a whole prompt or a chunk of one (prefill),
/// or one token (decoding):
/// <code>
/// x = input embeddings of every sequence's new rows (text embeddings with the fast visual tokens in place)
/// for each layer:
///     h = RMSNorm(x)                                   input_layernorm
///     q, k, v = h·Wqᵀ+bq, h·Wkᵀ+bk, h·Wvᵀ+bv           all rows at once; grouped-query heads
///     q, k = rotary(q), rotary(k)                      each row at its own sequence's position
///     per sequence:
///         k, v go to the sequence's KV cache
///         a = causal attention(q, k[0..pos], v[0..pos])    its own cache only
///         [hybrid layer] a += gate(a) · cross-attention(q, its slow keys, its slow values)   selected rows
///     x = x + a·Woᵀ                                    o_proj, residual
///     x = x + down(silu(gate(h')) · up(h')),  h' = RMSNorm(x)   post_attention_layernorm, SwiGLU
/// logits = RMSNorm(x)·lm_headᵀ                         final norm; lm_head or the tied embeddings
/// </code>
/// The weight products run over the rows of all sequences together, so decoding M sequences reads
/// the weights once, not M times; attention never mixes sequences.
/// </summary>
/// <remarks>
/// Immutable and safe to share: the config and the memory-mapped weights. Everything a pass mutates
/// — the caches, the slow keys/values, the activations (<see cref="DecoderWorkspace"/>) — is passed in.
/// </remarks>
public sealed class Qwen2Decoder
{
    /// <summary>
    /// Rows per MLP chunk. The [rows, intermediate] activations are the largest of a layer (two of them:
    /// 78 MB at 512 rows of Qwen2-7B). With the weights as stored, every chunk's gate, up and down
    /// products pack their weights for the bfloat16 GEMM anew (136 MB each for Qwen2-7B), so a chunk
    /// holds all rows of one of the engine's default prefill chunks (<c>EngineOptions.PrefillChunkTokens</c>)
    /// and packs them once per prefill chunk (measurements: docs/benchmarks/prefill-2026-12-02-mlp-chunk.md).
    /// </summary>
    internal const int MlpChunkRows = 512;
    /// <summary>Rows per lm_head chunk when logits of many rows are asked for.</summary>
    private const int LmHeadChunkRows = 64;

    private readonly int _hidden, _heads, _kvHeads, _headDim, _intermediate, _vocab;
    private readonly float _eps, _ropeTheta;
    private readonly bool _textOnly, _gateTanh;

    public SlowFastConfig Config { get; }
    public DecoderWeights Weights { get; }

    public Qwen2Decoder(SlowFastConfig config, DecoderWeights weights)
    {
        Config = config;
        Weights = weights;
        _hidden = config.HiddenSize;
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        _intermediate = config.IntermediateSize;
        _vocab = config.VocabSize;
        _eps = (float)config.RmsNormEps;
        _ropeTheta = (float)config.RopeTheta;
        _textOnly = config.TextOnlyCrossAttention;
        _gateTanh = config.GateHasTanh;
    }

    public int Hidden => _hidden;
    public int VocabSize => _vocab;

    public KvCache CreateCache(int capacity) => new(Config.NumHiddenLayers, capacity, _kvHeads, _headDim);

    public SlowKeyValues CreateSlowKeyValues(float[] slowTokens, int count, bool cacheProjections = true) =>
        new(slowTokens, count, _hidden, Config.NumHiddenLayers, _kvHeads, _headDim, cacheProjections);

    /// <summary>Writes the embeddings of <paramref name="ids"/> into <paramref name="embeddings"/> ([ids.Length, hidden]).</summary>
    public void Embed(ReadOnlySpan<int> ids, Span<float> embeddings)
    {
        for (int i = 0; i < ids.Length; i++) Weights.Embed(ids[i], embeddings.Slice(i * _hidden, _hidden));
    }

    /// <summary>
    /// One sequence: runs <paramref name="count"/> positions after those already in <paramref name="cache"/>
    /// (a batch of one; see <see cref="Forward(IReadOnlyList{SequenceChunk}, DecoderWorkspace, MatMulPrecision, CancellationToken)"/>).
    /// </summary>
    public void Forward(ReadOnlyMemory<float> inputEmbeddings, int count, KvCache cache, int[] crossAttentionRows,
        SlowKeyValues? slow, LogitRows logitRows, Memory<float> logits, MatMulPrecision precision = MatMulPrecision.Float32,
        DecoderWorkspace? workspace = null, CancellationToken cancellation = default)
    {
        var chunk = new SequenceChunk
        {
            Cache = cache, Embeddings = inputEmbeddings, Count = count,
            CrossAttentionRows = crossAttentionRows, Slow = slow, Logits = logitRows, LogitsOut = logits,
        };
        Forward([chunk], workspace ?? new DecoderWorkspace(), precision, cancellation);
    }

    /// <summary>
    /// Runs every chunk of <paramref name="batch"/> (distinct sequences) one step: the chunk's positions
    /// are appended to its cache and its logits written.
    /// </summary>
    /// <param name="precision">Arithmetic of the matrix products: <see cref="MatMulPrecision.Float32"/>
    /// (what the golden tests hold to the reference) or <see cref="MatMulPrecision.BFloat16"/>
    /// (PyTorch's bf16 arithmetic, about twice as fast where the CPU has AVX512-BF16).</param>
    public void Forward(IReadOnlyList<SequenceChunk> batch, DecoderWorkspace ws, MatMulPrecision precision,
        CancellationToken cancellation = default)
    {
        int rows = CheckBatch(batch);
        int qFloats = _heads * _headDim, kvFloats = _kvHeads * _headDim;
        var positions = DecoderWorkspace.Grow(ref ws.Positions, rows);
        var x = DecoderWorkspace.Grow(ref ws.X, (long)rows * _hidden);
        for (int s = 0, r = 0; s < batch.Count; r += batch[s].Count, s++)
        {
            var chunk = batch[s];
            chunk.Embeddings.Span.CopyTo(x.Slice(r * _hidden, chunk.Count * _hidden));
            for (int i = 0; i < chunk.Count; i++) positions[r + i] = chunk.Cache.Length + i;
        }
        var normed = DecoderWorkspace.Grow(ref ws.Normed, (long)rows * _hidden);
        var q = DecoderWorkspace.Grow(ref ws.Q, (long)rows * qFloats);
        var k = DecoderWorkspace.Grow(ref ws.K, (long)rows * kvFloats);
        var v = DecoderWorkspace.Grow(ref ws.V, (long)rows * kvFloats);
        var attention = DecoderWorkspace.Grow(ref ws.Attention, (long)rows * qFloats);
        var projected = DecoderWorkspace.Grow(ref ws.Projected, (long)rows * _hidden);

        for (int l = 0; l < Weights.Layers.Length; l++)
        {
            cancellation.ThrowIfCancellationRequested();
            var layer = Weights.Layers[l];

            // Self-attention block: the products over every row, the attention per sequence.
            Norms.RmsNorm(x, layer.InputNorm, _eps, normed);
            MatMul.Linear(normed, rows, layer.QProj, layer.QBias, q, precision);
            MatMul.Linear(normed, rows, layer.KProj, layer.KBias, k, precision);
            MatMul.Linear(normed, rows, layer.VProj, layer.VBias, v, precision);
            Rope.Apply(q, _heads, _headDim, positions, _ropeTheta);
            Rope.Apply(k, _kvHeads, _headDim, positions, _ropeTheta);
            for (int s = 0, r = 0; s < batch.Count; r += batch[s].Count, s++)
            {
                var chunk = batch[s];
                int start = chunk.Cache.Length, end = start + chunk.Count;
                k.Slice(r * kvFloats, chunk.Count * kvFloats).CopyTo(chunk.Cache.KeySlot(l, start, chunk.Count));
                v.Slice(r * kvFloats, chunk.Count * kvFloats).CopyTo(chunk.Cache.ValueSlot(l, start, chunk.Count));
                var qs = q.Slice(r * qFloats, chunk.Count * qFloats);
                var attended = attention.Slice(r * qFloats, chunk.Count * qFloats);
                Tensors.Kernels.Attention.Causal(qs, positions.Slice(r, chunk.Count), chunk.Cache.Keys(l, end), chunk.Cache.Values(l, end),
                    _heads, _kvHeads, _headDim, attended);
                if (layer.IsHybrid && chunk.Slow != null && !chunk.CrossAttentionRows.IsEmpty)
                    AddGatedCrossAttention(layer, attended, qs, chunk.CrossAttentionRows.Span, chunk.Slow, ws, precision);
            }

            MatMul.Linear(attention, rows, layer.OProj, default, projected, precision);
            Elementwise.AddInPlace(x, projected);

            // MLP block, in row chunks so the [rows, intermediate] activations stay small.
            for (int r0 = 0; r0 < rows; r0 += MlpChunkRows)
            {
                int n = Math.Min(MlpChunkRows, rows - r0);
                var xs = x.Slice(r0 * _hidden, n * _hidden);
                var hs = normed.Slice(0, n * _hidden);
                var gate = DecoderWorkspace.Grow(ref ws.MlpGate, (long)n * _intermediate);
                var up = DecoderWorkspace.Grow(ref ws.MlpUp, (long)n * _intermediate);
                Norms.RmsNorm(xs, layer.PostAttentionNorm, _eps, hs);
                MatMul.Linear(hs, n, layer.GateProj, default, gate, precision);
                MatMul.Linear(hs, n, layer.UpProj, default, up, precision);
                Activations.SiluMul(gate, up, gate);
                var down = projected.Slice(0, n * _hidden);
                MatMul.Linear(gate, n, layer.DownProj, default, down, precision);
                Elementwise.AddInPlace(xs, down);
            }
            ws.AfterLayer?.Invoke(l, x);
        }
        foreach (var chunk in batch) chunk.Cache.Commit(chunk.Count);

        cancellation.ThrowIfCancellationRequested();
        WriteLogits(batch, x, ws, precision);
    }

    /// <summary>Checks the batch and returns its total row count.</summary>
    private int CheckBatch(IReadOnlyList<SequenceChunk> batch)
    {
        if (batch.Count == 0) throw new ArgumentException("a forward pass needs at least one sequence", nameof(batch));
        long rows = 0;
        var caches = new HashSet<KvCache>(ReferenceEqualityComparer.Instance);
        foreach (var chunk in batch)
        {
            if (chunk.Count <= 0) throw new ArgumentOutOfRangeException(nameof(batch), $"a chunk of {chunk.Count} positions");
            if (chunk.Embeddings.Length != (long)chunk.Count * _hidden)
                throw new ArgumentException($"input embeddings hold {chunk.Embeddings.Length} floats; expected [{chunk.Count}, {_hidden}]");
            long need = chunk.Logits switch { LogitRows.All => (long)chunk.Count * _vocab, LogitRows.Last => _vocab, _ => 0 };
            if (chunk.LogitsOut.Length < need) throw new ArgumentException($"logits hold {chunk.LogitsOut.Length} floats; need {need}");
            foreach (int r in chunk.CrossAttentionRows.Span)
                if ((uint)r >= (uint)chunk.Count) throw new ArgumentOutOfRangeException(nameof(batch), $"cross-attention row {r} outside the chunk's {chunk.Count} rows");
            if (!caches.Add(chunk.Cache)) throw new ArgumentException("a sequence appears twice in one batch");
            chunk.Cache.CheckAppend(chunk.Cache.Length, chunk.Count);
            rows += chunk.Count;
        }
        if (rows > int.MaxValue / Math.Max(_hidden, _heads * _headDim)) throw new ArgumentException($"a batch of {rows} rows is too large");
        return (int)rows;
    }

    /// <summary>
    /// Final norm and lm_head for the rows that need logits, all sequences' rows together (so a
    /// decoding step reads lm_head once for the whole batch), in chunks of rows.
    /// </summary>
    private void WriteLogits(IReadOnlyList<SequenceChunk> batch, ReadOnlySpan<float> x, DecoderWorkspace ws, MatMulPrecision precision)
    {
        var wanted = new List<(int Row, SequenceChunk Chunk, int Index)>();
        for (int s = 0, r = 0; s < batch.Count; r += batch[s].Count, s++)
        {
            var chunk = batch[s];
            if (chunk.Logits == LogitRows.Last) wanted.Add((r + chunk.Count - 1, chunk, 0));
            else if (chunk.Logits == LogitRows.All)
                for (int i = 0; i < chunk.Count; i++) wanted.Add((r + i, chunk, i));
        }
        for (int w0 = 0; w0 < wanted.Count; w0 += LmHeadChunkRows)
        {
            int n = Math.Min(LmHeadChunkRows, wanted.Count - w0);
            var gathered = DecoderWorkspace.Grow(ref ws.Projected, (long)n * _hidden);
            var hs = DecoderWorkspace.Grow(ref ws.Normed, (long)n * _hidden);
            for (int i = 0; i < n; i++) x.Slice(wanted[w0 + i].Row * _hidden, _hidden).CopyTo(gathered.Slice(i * _hidden, _hidden));
            Norms.RmsNorm(gathered, Weights.FinalNorm, _eps, hs);
            var logits = DecoderWorkspace.Grow(ref ws.LogitInput, (long)n * _vocab);
            MatMul.Linear(hs, n, Weights.LmHead, default, logits, precision);
            for (int i = 0; i < n; i++)
            {
                var (_, chunk, index) = wanted[w0 + i];
                logits.Slice(i * _vocab, _vocab).CopyTo(chunk.LogitsOut.Span.Slice(index * _vocab, _vocab));
            }
        }
    }

    /// <summary>
    /// The hybrid layer's branch, added to one sequence's self-attention output <paramref name="attention"/>
    /// before o_proj: each selected row's rotated query attends (unmasked, scale 1/√D, grouped heads) to
    /// the sequence's slow tokens' keys/values, and the result is scaled by the row's dynamic gate
    /// g = gate_proj(attention row) [tanh'd for "-tanh"], times the warm-up scalar for "-warmup"
    /// (raw in "vanilla", tanh'd in "text-only-vanilla" — as the reference differs).
    /// </summary>
    private void AddGatedCrossAttention(DecoderLayerWeights layer, Span<float> attention, ReadOnlySpan<float> q,
        ReadOnlySpan<int> rows, SlowKeyValues slow, DecoderWorkspace ws, MatMulPrecision precision)
    {
        var cross = layer.CrossAttention!;
        var (keys, values) = slow.For(layer, _eps, precision);
        int n = rows.Length, qFloats = _heads * _headDim;
        var queries = DecoderWorkspace.Grow(ref ws.CrossQueries, (long)n * qFloats);
        var context = DecoderWorkspace.Grow(ref ws.CrossContext, (long)n * qFloats);
        for (int i = 0; i < n; i++) q.Slice(rows[i] * qFloats, qFloats).CopyTo(queries.Slice(i * qFloats, qFloats));
        Tensors.Kernels.Attention.Full(queries, keys, values, _heads, _kvHeads, _headDim, context);

        float warmUp = cross.WarmUpGate is float w ? (_textOnly ? MathF.Tanh(w) : w) : 1f;
        for (int i = 0; i < n; i++)
        {
            var row = attention.Slice(rows[i] * qFloats, qFloats);
            // The gate reads the row before the context is added.
            float gate = Elementwise.Dot(cross.GateWeight, row) + cross.GateBias;
            if (_gateTanh) gate = MathF.Tanh(gate);
            gate *= warmUp;
            Elementwise.AddScaledInPlace(row, context.Slice(i * qFloats, qFloats), gate);
        }
    }
}
