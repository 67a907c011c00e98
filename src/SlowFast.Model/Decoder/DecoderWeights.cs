using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Decoder;

/// <summary>
/// The Qwen2 decoder's weights, bound once from a checkpoint: big matrices stay memory-mapped in their
/// stored dtype or block format (<see cref="WeightMatrix"/>, <see cref="ModelDirectory.Linear"/>); the small vectors (norms, biases, gates) are copied to
/// float32 arrays because every kernel reads them as floats.
/// </summary>
public sealed class DecoderWeights
{
    /// <summary>Token embedding table [vocab, hidden], read one row per token.</summary>
    public required TensorView Embedding { get; init; }
    public required DecoderLayerWeights[] Layers { get; init; }
    public required float[] FinalNorm { get; init; }
    /// <summary>lm_head [vocab, hidden], or the embedding table when the checkpoint ties them.</summary>
    public required WeightMatrix LmHead { get; init; }

    public static DecoderWeights From(ModelDirectory model)
    {
        var c = model.Config;
        var layers = new DecoderLayerWeights[c.NumHiddenLayers];
        for (int i = 0; i < layers.Length; i++) layers[i] = DecoderLayerWeights.From(model, i);
        var embedding = model.Get("model.embed_tokens.weight");
        return new DecoderWeights
        {
            Embedding = embedding,
            Layers = layers,
            FinalNorm = model.Get("model.norm.weight").ToFloatArray(),
            LmHead = c.TieWordEmbeddings ? WeightMatrix.From(embedding) : model.Linear("lm_head.weight"),
        };
    }

    /// <summary>Copies the embedding of <paramref name="tokenId"/> into <paramref name="row"/>.</summary>
    public void Embed(int tokenId, Span<float> row)
    {
        long vocab = Embedding.Dim(0);
        if ((ulong)tokenId >= (ulong)vocab)
            throw new UserError($"token id {tokenId} is outside the model's vocabulary of {vocab}");
        Embedding.ToFloat((long)tokenId * row.Length, row);
    }
}

/// <summary>One decoder layer; the cross-attention fields are set only on hybrid layers.</summary>
public sealed class DecoderLayerWeights
{
    public required int Index { get; init; }
    public required float[] InputNorm { get; init; }
    public required WeightMatrix QProj { get; init; }
    public required float[] QBias { get; init; }
    public required WeightMatrix KProj { get; init; }
    public required float[] KBias { get; init; }
    public required WeightMatrix VProj { get; init; }
    public required float[] VBias { get; init; }
    public required WeightMatrix OProj { get; init; }
    public required float[] PostAttentionNorm { get; init; }
    public required WeightMatrix GateProj { get; init; }
    public required WeightMatrix UpProj { get; init; }
    public required WeightMatrix DownProj { get; init; }
    /// <summary>Non-null on hybrid layers.</summary>
    public CrossAttentionWeights? CrossAttention { get; init; }

    public bool IsHybrid => CrossAttention != null;

    public static DecoderLayerWeights From(ModelDirectory model, int i)
    {
        string p = CheckpointLayout.Layer(i);
        WeightMatrix M(string name) => model.Linear(p + name);
        float[] F(string name) => model.Get(p + name).ToFloatArray();
        return new DecoderLayerWeights
        {
            Index = i,
            InputNorm = F("input_layernorm.weight"),
            QProj = M("self_attn.q_proj.weight"),
            QBias = F("self_attn.q_proj.bias"),
            KProj = M("self_attn.k_proj.weight"),
            KBias = F("self_attn.k_proj.bias"),
            VProj = M("self_attn.v_proj.weight"),
            VBias = F("self_attn.v_proj.bias"),
            OProj = M("self_attn.o_proj.weight"),
            PostAttentionNorm = F("post_attention_layernorm.weight"),
            GateProj = M("mlp.gate_proj.weight"),
            UpProj = M("mlp.up_proj.weight"),
            DownProj = M("mlp.down_proj.weight"),
            CrossAttention = model.Config.IsHybridLayer(i) ? CrossAttentionWeights.From(model, i) : null,
        };
    }
}

/// <summary>
/// A hybrid layer's extra weights: the slow tokens' key/value projection, the dynamic gate (a linear map
/// of the self-attention output to one scalar a position) and the optional warm-up scalar.
/// </summary>
public sealed class CrossAttentionWeights
{
    /// <summary>[2·kvHeads·headDim, hidden]; its output is laid out (kv head, key|value, head dim).</summary>
    public required WeightMatrix KvProj { get; init; }
    public required float[] KvBias { get; init; }
    public required float[] GateWeight { get; init; }
    public required float GateBias { get; init; }
    /// <summary>The learned warm-up scalar, or null when the gating type has no warm-up.</summary>
    public float? WarmUpGate { get; init; }

    public static CrossAttentionWeights From(ModelDirectory model, int i)
    {
        string p = CheckpointLayout.Layer(i) + "self_attn.";
        return new CrossAttentionWeights
        {
            KvProj = model.Linear(p + "cross_attn_kv_proj.weight"),
            KvBias = model.Get(p + "cross_attn_kv_proj.bias").ToFloatArray(),
            GateWeight = model.Get(p + "cross_attn_gate_proj.0.weight").ToFloatArray(),
            GateBias = model.Get(p + "cross_attn_gate_proj.0.bias").ToFloatArray()[0],
            WarmUpGate = model.Config.GateHasWarmup ? model.Get(p + "cross_attn_warm_up_gate").ToFloatArray()[0] : null,
        };
    }
}
