namespace SlowFast.Model.Decoder;

/// <summary>
/// One sequence's share of a batched forward pass: <see cref="Count"/> new positions that continue
/// its <see cref="Cache"/>, their input embeddings, which of them add the gated cross-attention to the
/// sequence's own slow tokens, and which of them need logits.
/// </summary>
/// <remarks>
/// Sequences in one batch are independent: each reads only its own cache, positions and slow tokens.
/// They share only the weight products, which run over the rows of every sequence at once.
/// </remarks>
public sealed class SequenceChunk
{
    /// <summary>The sequence's self-attention keys/values; the chunk is appended at <see cref="KvCache.Length"/>.</summary>
    public required KvCache Cache { get; init; }
    /// <summary>[Count, hidden]: the new positions' input embeddings.</summary>
    public required ReadOnlyMemory<float> Embeddings { get; init; }
    public required int Count { get; init; }
    /// <summary>Rows (0..Count-1) that add the gated cross-attention (see <see cref="CrossAttentionRows"/>); empty skips the branch.</summary>
    public ReadOnlyMemory<int> CrossAttentionRows { get; init; }
    /// <summary>The sequence's slow tokens' keys/values, or null when it has no visual input.</summary>
    public SlowKeyValues? Slow { get; init; }
    public LogitRows Logits { get; init; } = LogitRows.Last;
    /// <summary>[1, vocab] for <see cref="LogitRows.Last"/>, [Count, vocab] for <see cref="LogitRows.All"/>.</summary>
    public Memory<float> LogitsOut { get; init; }
}

/// <summary>Sees the hidden states after one decoder layer (<see cref="DecoderWorkspace.AfterLayer"/>).</summary>
public delegate void LayerObserver(int layer, ReadOnlySpan<float> hidden);

/// <summary>
/// The activation buffers of forward passes: owned by whoever runs the decoder (the engine, a test),
/// never by the shared model. Buffers grow on demand and are reused across layers and calls.
/// </summary>
public sealed class DecoderWorkspace
{
    internal float[] X = [], Normed = [], Q = [], K = [], V = [], Attention = [], Projected = [];
    internal float[] MlpGate = [], MlpUp = [], CrossQueries = [], CrossContext = [], LogitInput = [];
    internal int[] Positions = [];

    /// <summary>
    /// Called after each layer of a forward pass with the layer index and the hidden states of all the
    /// pass's rows ([rows, hidden]); null normally. Quality measurements read per-layer outputs here.
    /// </summary>
    public LayerObserver? AfterLayer { get; set; }

    internal static Span<T> Grow<T>(ref T[] buffer, long length)
    {
        if (buffer.Length < length) buffer = new T[length];
        return buffer.AsSpan(0, (int)length);
    }
}
