namespace SlowFast.Model;

/// <summary>Which part of the model a tensor belongs to (for parameter counts and loading).</summary>
public enum ModelPart { Llm, HybridCrossAttention, Projector, VisionTower }

/// <summary>One tensor a checkpoint must have: its name as the reference's PyTorch modules name it, and its shape.</summary>
public sealed record WeightSpec(string Name, long[] Shape, ModelPart Part, WeightInit Init)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>How create-model fills a tensor with random values (a test checkpoint must exercise every path).</summary>
public enum WeightInit { Linear, Embedding, Bias, NormWeight, NormBias, LayerScale, Gate }

/// <summary>
/// The names and shapes of every tensor of a slow-fast checkpoint, derived from its config. Names are
/// exactly the reference's state-dict keys: the Qwen2 decoder under <c>model.</c>, the hybrid layers'
/// <c>self_attn.cross_attn_*</c> additions, the projector <c>model.mm_projector.*</c> (nn.Sequential
/// indices: Linear at 0, GELU at 1, Linear at 2, ...), and the ConvNeXt tower under
/// <c>model.vision_tower.vision_tower.</c> (timm names; the layer scale is <c>.weight</c> of the block,
/// stored as <c>.gamma</c> by older exports).
/// </summary>
public static class CheckpointLayout
{
    public const string VisionPrefix = "model.vision_tower.vision_tower.";
    public const string ProjectorPrefix = "model.mm_projector.";

    public static string Layer(int i) => $"model.layers.{i}.";

    public static IReadOnlyList<WeightSpec> For(SlowFastConfig c)
    {
        var list = new List<WeightSpec>();
        void Add(string name, ModelPart part, WeightInit init, params long[] shape) => list.Add(new WeightSpec(name, shape, part, init));

        int h = c.HiddenSize, d = c.HeadDim, q = c.NumAttentionHeads * d, kv = c.NumKeyValueHeads * d;
        Add("model.embed_tokens.weight", ModelPart.Llm, WeightInit.Embedding, c.VocabSize, h);
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string p = Layer(i);
            Add(p + "input_layernorm.weight", ModelPart.Llm, WeightInit.NormWeight, h);
            Add(p + "self_attn.q_proj.weight", ModelPart.Llm, WeightInit.Linear, q, h);
            Add(p + "self_attn.q_proj.bias", ModelPart.Llm, WeightInit.Bias, q);
            Add(p + "self_attn.k_proj.weight", ModelPart.Llm, WeightInit.Linear, kv, h);
            Add(p + "self_attn.k_proj.bias", ModelPart.Llm, WeightInit.Bias, kv);
            Add(p + "self_attn.v_proj.weight", ModelPart.Llm, WeightInit.Linear, kv, h);
            Add(p + "self_attn.v_proj.bias", ModelPart.Llm, WeightInit.Bias, kv);
            Add(p + "self_attn.o_proj.weight", ModelPart.Llm, WeightInit.Linear, h, q);
            if (c.IsHybridLayer(i))
            {
                Add(p + "self_attn.cross_attn_kv_proj.weight", ModelPart.HybridCrossAttention, WeightInit.Linear, 2 * kv, h);
                Add(p + "self_attn.cross_attn_kv_proj.bias", ModelPart.HybridCrossAttention, WeightInit.Bias, 2 * kv);
                Add(p + "self_attn.cross_attn_gate_proj.0.weight", ModelPart.HybridCrossAttention, WeightInit.Linear, 1, h);
                Add(p + "self_attn.cross_attn_gate_proj.0.bias", ModelPart.HybridCrossAttention, WeightInit.Bias, 1);
                if (c.GateHasWarmup)
                    Add(p + "self_attn.cross_attn_warm_up_gate", ModelPart.HybridCrossAttention, WeightInit.Gate, 1);
            }
            Add(p + "post_attention_layernorm.weight", ModelPart.Llm, WeightInit.NormWeight, h);
            Add(p + "mlp.gate_proj.weight", ModelPart.Llm, WeightInit.Linear, c.IntermediateSize, h);
            Add(p + "mlp.up_proj.weight", ModelPart.Llm, WeightInit.Linear, c.IntermediateSize, h);
            Add(p + "mlp.down_proj.weight", ModelPart.Llm, WeightInit.Linear, h, c.IntermediateSize);
        }
        Add("model.norm.weight", ModelPart.Llm, WeightInit.NormWeight, h);
        if (!c.TieWordEmbeddings) Add("lm_head.weight", ModelPart.Llm, WeightInit.Linear, c.VocabSize, h);

        int mm = c.MmHiddenSize ?? c.Vision.HiddenSize;
        if (c.MmProjectorType == "linear")
        {
            Add(ProjectorPrefix + "weight", ModelPart.Projector, WeightInit.Linear, h, mm);
            Add(ProjectorPrefix + "bias", ModelPart.Projector, WeightInit.Bias, h);
        }
        else
        {
            for (int i = 0; i < c.ProjectorDepth; i++)
            {
                Add($"{ProjectorPrefix}{2 * i}.weight", ModelPart.Projector, WeightInit.Linear, h, i == 0 ? mm : h);
                Add($"{ProjectorPrefix}{2 * i}.bias", ModelPart.Projector, WeightInit.Bias, h);
            }
        }

        AddConvNext(c.Vision, list);
        return list;
    }

    private static void AddConvNext(ConvNextConfig v, List<WeightSpec> list)
    {
        void Add(string name, WeightInit init, params long[] shape) => list.Add(new WeightSpec(VisionPrefix + name, shape, ModelPart.VisionTower, init));
        int p = v.PatchSize, k = v.KernelSize;
        Add("stem.0.weight", WeightInit.Linear, v.Dims[0], 3, p, p);
        Add("stem.0.bias", WeightInit.Bias, v.Dims[0]);
        Add("stem.1.weight", WeightInit.NormWeight, v.Dims[0]);
        Add("stem.1.bias", WeightInit.NormBias, v.Dims[0]);
        for (int s = 0; s < v.Dims.Length; s++)
        {
            int dim = v.Dims[s];
            if (s > 0)
            {
                Add($"stages.{s}.downsample.0.weight", WeightInit.NormWeight, v.Dims[s - 1]);
                Add($"stages.{s}.downsample.0.bias", WeightInit.NormBias, v.Dims[s - 1]);
                Add($"stages.{s}.downsample.1.weight", WeightInit.Linear, dim, v.Dims[s - 1], 2, 2);
                Add($"stages.{s}.downsample.1.bias", WeightInit.Bias, dim);
            }
            for (int b = 0; b < v.Depths[s]; b++)
            {
                string blk = $"stages.{s}.blocks.{b}.";
                Add(blk + "conv_dw.weight", WeightInit.Linear, dim, 1, k, k);
                Add(blk + "conv_dw.bias", WeightInit.Bias, dim);
                Add(blk + "norm.weight", WeightInit.NormWeight, dim);
                Add(blk + "norm.bias", WeightInit.NormBias, dim);
                Add(blk + "mlp.fc1.weight", WeightInit.Linear, 4 * dim, dim);
                Add(blk + "mlp.fc1.bias", WeightInit.Bias, 4 * dim);
                Add(blk + "mlp.fc2.weight", WeightInit.Linear, dim, 4 * dim);
                Add(blk + "mlp.fc2.bias", WeightInit.Bias, dim);
                Add(blk + "weight", WeightInit.LayerScale, dim);
            }
        }
        if (v.NumClasses > 0)
        {
            Add("head.norm.weight", WeightInit.NormWeight, v.Dims[^1]);
            Add("head.norm.bias", WeightInit.NormBias, v.Dims[^1]);
            Add("head.fc.weight", WeightInit.Linear, v.NumClasses, v.Dims[^1]);
            Add("head.fc.bias", WeightInit.Bias, v.NumClasses);
        }
    }

    /// <summary>Older exports name the ConvNeXt layer scale "gamma"; the reference renames it to "weight" on load.</summary>
    public static IEnumerable<string> AlternativeNames(string name)
    {
        yield return name;
        if (name.StartsWith(VisionPrefix, StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal)
            && name.Contains(".blocks.") && name.Split('.').Length == 8)
            yield return name[..^".weight".Length] + ".gamma";
    }
}
