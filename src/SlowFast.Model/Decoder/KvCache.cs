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

    /// <summary>Bytes a cache of <paramref name="capacity"/> positions takes (what the engine's memory budget counts).</summary>
    public static long BytesFor(SlowFastConfig config, int capacity) =>
        2L * config.NumHiddenLayers * capacity * config.NumKeyValueHeads * config.HeadDim * sizeof(float);

    internal long Bytes => 2L * _keys.Length * Capacity * _rowFloats * sizeof(float);

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

    /// <summary>Forgets every position (the buffers are kept, e.g. for benchmark repetitions).</summary>
    public void Clear() => Length = 0;

    /// <summary>
    /// Starts this (empty) cache with positions [0, <paramref name="positions"/>) of <paramref name="source"/>:
    /// a shared prefix whose keys and values do not depend on anything after it (causal attention).
    /// </summary>
    public void CopyPrefixFrom(KvCache source, int positions)
    {
        if (Length != 0) throw new InvalidOperationException($"KV cache holds {Length} positions; a prefix goes into an empty cache");
        if (positions < 0 || positions > source.Length) throw new ArgumentOutOfRangeException(nameof(positions), $"{positions} positions of a cache holding {source.Length}");
        if (source._rowFloats != _rowFloats || source._keys.Length != _keys.Length) throw new ArgumentException("KV caches of different shapes");
        CheckAppend(0, positions);
        for (int l = 0; l < _keys.Length; l++)
        {
            source._keys[l].AsSpan(0, positions * _rowFloats).CopyTo(_keys[l]);
            source._values[l].AsSpan(0, positions * _rowFloats).CopyTo(_values[l]);
        }
        Length = positions;
    }
}
