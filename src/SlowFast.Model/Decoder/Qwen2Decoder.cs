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
/// The Qwen2 decoder with the slow-fast hybrid layers. One forward pass runs positions
/// [cache.Length, cache.Length + count) — the whole prompt at once (prefill) or one token (decoding):
/// <code>
/// x = input embeddings (text embeddings with the fast visual tokens in place)
/// for each layer:
///     h = RMSNorm(x)                                   input_layernorm
///     q, k, v = h·Wqᵀ+bq, h·Wkᵀ+bk, h·Wvᵀ+bv           grouped-query heads; k, v go to the KV cache
///     q, k = rotary(q), rotary(k)                      rope_theta, positions 0..P-1, P, P+1, ...
///     a = causal attention(q, k[0..pos], v[0..pos])    every query head reads its group's kv head
///     [hybrid layer] a += gate(a) · cross-attention(q, slow keys, slow values)   for the selected rows
///     x = x + a·Woᵀ                                    o_proj, residual
///     x = x + down(silu(gate(h')) · up(h')),  h' = RMSNorm(x)   post_attention_layernorm, SwiGLU
/// logits = RMSNorm(x)·lm_headᵀ                         final norm; lm_head or the tied embeddings
/// </code>
/// Not thread-safe: the decoder owns one set of activation buffers, reused by every layer and call
/// (the model serializes requests).
/// </summary>
public sealed class Qwen2Decoder
{
    /// <summary>Rows per MLP chunk: the [rows, intermediate] activations are the largest of a layer.</summary>
    private const int MlpChunkRows = 256;
    /// <summary>Rows per lm_head chunk when logits of many rows are asked for.</summary>
    private const int LmHeadChunkRows = 64;

    private readonly int _hidden, _heads, _kvHeads, _headDim, _intermediate, _vocab;
    private readonly float _eps, _ropeTheta;
    private readonly bool _textOnly, _gateTanh;

    // Activation buffers (grown on demand, reused across layers and calls).
    private float[] _x = [], _normed = [], _q = [], _attention = [], _projected = [];
    private float[] _mlpGate = [], _mlpUp = [], _crossQueries = [], _crossContext = [];
    private int[] _positions = [];

    public SlowFastConfig Config { get; }
    public DecoderWeights Weights { get; }

    /// <summary>
    /// Arithmetic of the matrix products: <see cref="MatMulPrecision.Float32"/> (default, what the
    /// golden tests check) or <see cref="MatMulPrecision.BFloat16"/> (PyTorch's bf16 arithmetic, about
    /// twice as fast where the CPU has AVX512-BF16).
    /// </summary>
    public MatMulPrecision Precision { get; set; }

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
    /// Runs <paramref name="count"/> positions after those already in <paramref name="cache"/>.
    /// </summary>
    /// <param name="inputEmbeddings">[count, hidden]: the rows' input embeddings.</param>
    /// <param name="crossAttentionRows">Rows (0..count-1) that add the gated cross-attention to the slow tokens
    /// (see <see cref="CrossAttentionRows"/>); empty skips the branch.</param>
    /// <param name="slow">The request's slow tokens, or null when it has no visual input.</param>
    /// <param name="logits">[1, vocab] for <see cref="LogitRows.Last"/>, [count, vocab] for <see cref="LogitRows.All"/>.</param>
    public void Forward(ReadOnlySpan<float> inputEmbeddings, int count, KvCache cache, ReadOnlySpan<int> crossAttentionRows,
        SlowKeyValues? slow, LogitRows logitRows, Span<float> logits, CancellationToken cancellation = default)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count));
        if (inputEmbeddings.Length != count * _hidden) throw new ArgumentException($"input embeddings hold {inputEmbeddings.Length} floats; expected [{count}, {_hidden}]");
        int needLogits = logitRows switch { LogitRows.All => count * _vocab, LogitRows.Last => _vocab, _ => 0 };
        if (logits.Length < needLogits) throw new ArgumentException($"logits hold {logits.Length} floats; need {needLogits}", nameof(logits));
        cache.CheckAppend(cache.Length, count);

        int start = cache.Length, end = start + count;
        var positions = Grow(ref _positions, count);
        for (int i = 0; i < count; i++) positions[i] = start + i;

        var x = Grow(ref _x, count * _hidden);
        inputEmbeddings.CopyTo(x);
        int qFloats = _heads * _headDim, kvFloats = _kvHeads * _headDim;
        var normed = Grow(ref _normed, count * _hidden);
        var q = Grow(ref _q, count * qFloats);
        var attention = Grow(ref _attention, count * qFloats);
        var projected = Grow(ref _projected, count * _hidden);

        for (int l = 0; l < Weights.Layers.Length; l++)
        {
            cancellation.ThrowIfCancellationRequested();
            var layer = Weights.Layers[l];

            // Self-attention block.
            Norms.RmsNorm(x, layer.InputNorm, _eps, normed);
            MatMul.Linear(normed, count, layer.QProj, layer.QBias, q, Precision);
            var k = cache.KeySlot(l, start, count);
            var v = cache.ValueSlot(l, start, count);
            MatMul.Linear(normed, count, layer.KProj, layer.KBias, k, Precision);
            MatMul.Linear(normed, count, layer.VProj, layer.VBias, v, Precision);
            Rope.Apply(q, _heads, _headDim, positions, _ropeTheta);
            Rope.Apply(k, _kvHeads, _headDim, positions, _ropeTheta);
            Attention.Causal(q, positions, cache.Keys(l, end), cache.Values(l, end), _heads, _kvHeads, _headDim, attention);

            if (layer.IsHybrid && slow != null && !crossAttentionRows.IsEmpty)
                AddGatedCrossAttention(layer, attention, q, crossAttentionRows, slow);

            MatMul.Linear(attention, count, layer.OProj, default, projected, Precision);
            Elementwise.AddInPlace(x, projected);

            // MLP block, in row chunks so the [rows, intermediate] activations stay small.
            for (int r0 = 0; r0 < count; r0 += MlpChunkRows)
            {
                int rows = Math.Min(MlpChunkRows, count - r0);
                var xs = x.Slice(r0 * _hidden, rows * _hidden);
                var hs = normed.Slice(0, rows * _hidden);
                var gate = Grow(ref _mlpGate, rows * _intermediate);
                var up = Grow(ref _mlpUp, rows * _intermediate);
                Norms.RmsNorm(xs, layer.PostAttentionNorm, _eps, hs);
                MatMul.Linear(hs, rows, layer.GateProj, default, gate, Precision);
                MatMul.Linear(hs, rows, layer.UpProj, default, up, Precision);
                Activations.SiluMul(gate, up, gate);
                var down = projected.Slice(0, rows * _hidden);
                MatMul.Linear(gate, rows, layer.DownProj, default, down, Precision);
                Elementwise.AddInPlace(xs, down);
            }
        }
        cache.Commit(count);

        if (logitRows == LogitRows.None) return;
        cancellation.ThrowIfCancellationRequested();
        int firstRow = logitRows == LogitRows.Last ? count - 1 : 0;
        for (int r0 = firstRow; r0 < count; r0 += LmHeadChunkRows)
        {
            int rows = Math.Min(LmHeadChunkRows, count - r0);
            var hs = normed.Slice(0, rows * _hidden);
            Norms.RmsNorm(x.Slice(r0 * _hidden, rows * _hidden), Weights.FinalNorm, _eps, hs);
            MatMul.Linear(hs, rows, Weights.LmHead, default, logits.Slice((r0 - firstRow) * _vocab, rows * _vocab), Precision);
        }
    }

    /// <summary>
    /// The hybrid layer's branch, added to the self-attention output <paramref name="attention"/> before
    /// o_proj: each selected row's rotated query attends (unmasked, scale 1/√D, grouped heads) to the slow
    /// tokens' keys/values, and the result is scaled by the row's dynamic gate
    /// g = gate_proj(attention row) [tanh'd for "-tanh"], times the warm-up scalar for "-warmup"
    /// (raw in "vanilla", tanh'd in "text-only-vanilla" — as the reference differs).
    /// </summary>
    private void AddGatedCrossAttention(DecoderLayerWeights layer, Span<float> attention, ReadOnlySpan<float> q,
        ReadOnlySpan<int> rows, SlowKeyValues slow)
    {
        var cross = layer.CrossAttention!;
        var (keys, values) = slow.For(layer, _eps, Precision);
        int n = rows.Length, qFloats = _heads * _headDim;
        var queries = Grow(ref _crossQueries, n * qFloats);
        var context = Grow(ref _crossContext, n * qFloats);
        for (int i = 0; i < n; i++) q.Slice(rows[i] * qFloats, qFloats).CopyTo(queries.Slice(i * qFloats, qFloats));
        Attention.Full(queries, keys, values, _heads, _kvHeads, _headDim, context);

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

    private static Span<T> Grow<T>(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[length];
        return buffer.AsSpan(0, length);
    }
}
