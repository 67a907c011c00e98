namespace SlowFast.Model.Decoder;

/// <summary>
/// The self-attention keys and values of every position processed so far, per layer, laid out
/// [position, kvHeads, headDim] (the layout <see cref="SlowFast.Tensors.Kernels.Attention"/> reads).
/// Sized once to the context a request actually uses (prompt + new tokens), never to the model's
/// maximum context.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys;
    private readonly float[][] _values;
    private readonly int _rowFloats;

    public int Capacity { get; }
    /// <summary>Positions 0..Length-1 are filled.</summary>
    public int Length { get; private set; }

    public KvCache(int layers, int capacity, int kvHeads, int headDim)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity));
        Capacity = capacity;
        _rowFloats = kvHeads * headDim;
        _keys = new float[layers][];
        _values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new float[(long)capacity * _rowFloats];
            _values[l] = new float[(long)capacity * _rowFloats];
        }
    }

    /// <summary>Bytes held (for progress messages and memory estimates).</summary>
    public long Bytes => 2L * _keys.Length * Capacity * _rowFloats * sizeof(float);

    /// <summary>Where layer <paramref name="layer"/> writes the keys of positions [start, start + count).</summary>
    public Span<float> KeySlot(int layer, int start, int count) => _keys[layer].AsSpan(start * _rowFloats, count * _rowFloats);
    public Span<float> ValueSlot(int layer, int start, int count) => _values[layer].AsSpan(start * _rowFloats, count * _rowFloats);

    /// <summary>The keys of positions [0, end) of one layer.</summary>
    public ReadOnlySpan<float> Keys(int layer, int end) => _keys[layer].AsSpan(0, end * _rowFloats);
    public ReadOnlySpan<float> Values(int layer, int end) => _values[layer].AsSpan(0, end * _rowFloats);

    /// <summary>Checks that [start, start + count) continues the cache and fits in it.</summary>
    public void CheckAppend(int start, int count)
    {
        if (start != Length) throw new InvalidOperationException($"KV cache holds {Length} positions; cannot append at {start}");
        if (start + count > Capacity) throw new InvalidOperationException($"KV cache of {Capacity} positions cannot hold {start + count}");
    }

    /// <summary>Marks [Length, Length + count) filled, after every layer has written them.</summary>
    public void Commit(int count) => Length += count;

    /// <summary>Forgets every position (the buffers are kept for the next request of the same size).</summary>
    public void Clear() => Length = 0;
}
