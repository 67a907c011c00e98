using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Decoder;

/// <summary>
/// The slow visual tokens of one request and, per hybrid layer, the keys and values the layer's
/// cross-attention reads from them: input_layernorm (the hybrid layer normalizes the visual tokens
/// with its own input norm) → cross_attn_kv_proj → split. The projection's output features are laid
/// out (kv head, key|value, head dim) — the reference's rearrange 'BL Lv (H KV D) -> KV BL H Lv D' —
/// so for kv head h the key is features [h·2D, h·2D + D) and the value the next D. No rotary
/// embedding is applied to these keys.
/// </summary>
/// <remarks>
/// With <see cref="CacheProjections"/> (the default) each layer's keys/values are computed once per
/// request and reused by every later forward pass (prefill, then each decoding step that attends to
/// the slow tokens). Without it they are recomputed on every call, which is what the reference does
/// and what the equality test compares against.
/// </remarks>
public sealed class SlowKeyValues
{
    /// <summary>Slow tokens projected per matrix product: enough rows to keep the product efficient, few enough that the scratch stays small.</summary>
    private const int ProjectionChunkRows = 2048;

    private readonly float[] _slowTokens;
    private readonly (float[] Keys, float[] Values)?[] _perLayer;
    private float[]? _normed, _projected;

    public int Count { get; }
    public int Hidden { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public bool CacheProjections { get; }

    /// <param name="slowTokens">[count, hidden] row-major; not copied, must not change during the request.</param>
    public SlowKeyValues(float[] slowTokens, int count, int hidden, int layers, int kvHeads, int headDim, bool cacheProjections = true)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), "a request with no slow tokens has no cross-attention");
        if (slowTokens.Length < (long)count * hidden) throw new ArgumentException($"slow tokens hold {slowTokens.Length} floats; [{count}, {hidden}] needs more", nameof(slowTokens));
        _slowTokens = slowTokens;
        Count = count;
        Hidden = hidden;
        KvHeads = kvHeads;
        HeadDim = headDim;
        CacheProjections = cacheProjections;
        _perLayer = new (float[], float[])?[layers];
    }

    /// <summary>How many times a projection was computed (tests use it to prove the cache works).</summary>
    internal int ProjectionsComputed { get; private set; }

    /// <summary>Keys and values [count, kvHeads, headDim] for a hybrid layer.</summary>
    public (float[] Keys, float[] Values) For(DecoderLayerWeights layer, float rmsNormEps, MatMulPrecision precision = MatMulPrecision.Float32)
    {
        var cross = layer.CrossAttention ?? throw new InvalidOperationException($"layer {layer.Index} is not a hybrid layer");
        if (_perLayer[layer.Index] is { } cached) return cached;

        int rowFloats = KvHeads * HeadDim;
        var keys = new float[(long)Count * rowFloats];
        var values = new float[(long)Count * rowFloats];
        // In chunks of rows, so the normalized and projected scratch stays small however many slow tokens there are.
        for (int t0 = 0; t0 < Count; t0 += ProjectionChunkRows)
        {
            int n = Math.Min(ProjectionChunkRows, Count - t0);
            var normed = Grow(ref _normed, n * Hidden);
            Norms.RmsNorm(_slowTokens.AsSpan(t0 * Hidden, n * Hidden), layer.InputNorm, rmsNormEps, normed);
            var projected = Grow(ref _projected, n * 2 * rowFloats);
            MatMul.Linear(normed, n, cross.KvProj, cross.KvBias, projected, precision);
            for (int t = 0; t < n; t++)
                for (int h = 0; h < KvHeads; h++)
                {
                    var kv = projected.Slice((t * KvHeads + h) * 2 * HeadDim, 2 * HeadDim);
                    long at = ((long)(t0 + t) * KvHeads + h) * HeadDim;
                    kv[..HeadDim].CopyTo(keys.AsSpan((int)at, HeadDim));
                    kv[HeadDim..].CopyTo(values.AsSpan((int)at, HeadDim));
                }
        }
        ProjectionsComputed++;
        if (CacheProjections) _perLayer[layer.Index] = (keys, values);
        return (keys, values);
    }

    private static Span<float> Grow(ref float[]? buffer, int length)
    {
        if (buffer == null || buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, length);
    }
}
