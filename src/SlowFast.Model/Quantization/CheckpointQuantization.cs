using System.Text.Json.Nodes;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Model.Quantization;

/// <summary>
/// What config.json's <c>"quantization"</c> object says about a checkpoint whose linear weights are
/// block-quantized (written by <c>slowfast quantize</c>):
/// <code>
/// "quantization": { "format": "q4_0", "block_size": 32, "scales_suffix": ".scales",
///                   "parts": ["language_model"], "tensors": ["model.layers.0.self_attn.q_proj.weight", ...] }
/// </code>
/// Each listed tensor NAME of logical shape [N, K] is stored as NAME (U8 [N, K] for q8_0, [N, K/2] for
/// q4_0) and NAME.scales (F16 [N, K/32]); see README "Quantized weights" and tools/quant/blocks.py.
/// </summary>
public sealed record CheckpointQuantization(BlockFormat Format, IReadOnlySet<string> Tensors, bool IncludesVision)
{
    public const string ConfigKey = "quantization";
    public const string ScalesSuffix = ".scales";

    /// <summary>The config's quantization, null when it has none; a malformed one is a <see cref="UserError"/>.</summary>
    public static CheckpointQuantization? FromConfig(JsonObject? raw, string source)
    {
        if (raw == null || !raw.TryGetPropertyValue(ConfigKey, out var node) || node == null) return null;
        if (node is not JsonObject q) throw new UserError($"{source}: \"{ConfigKey}\" must be an object");
        string? format = (q["format"] as JsonValue)?.TryGetValue<string>(out var f) == true ? f : null;
        if (format == null || !BlockFormats.TryParseName(format, out var blockFormat))
            throw new UserError($"{source}: quantization format '{format ?? "(missing)"}' is not supported (q8_0 or q4_0)");
        if ((q["block_size"] as JsonValue)?.TryGetValue<int>(out int block) != true || block != BlockFormats.BlockSize)
            throw new UserError($"{source}: quantization block_size {q["block_size"]?.ToJsonString() ?? "(missing)"} is not supported ({format} blocks are {BlockFormats.BlockSize} elements)");
        string suffix = (q["scales_suffix"] as JsonValue)?.TryGetValue<string>(out var s) == true ? s : ScalesSuffix;
        if (suffix != ScalesSuffix) throw new UserError($"{source}: quantization scales_suffix '{suffix}' is not supported ('{ScalesSuffix}')");
        if (q["tensors"] is not JsonArray list || list.Count == 0) throw new UserError($"{source}: quantization lists no tensors");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in list)
            if ((item as JsonValue)?.TryGetValue<string>(out var name) == true) names.Add(name);
            else throw new UserError($"{source}: quantization tensors must be names");
        bool vision = q["parts"] is JsonArray parts && parts.Any(p => p?.ToString() == "vision");
        return new CheckpointQuantization(blockFormat, names, vision);
    }

    public JsonObject ToJson()
    {
        var parts = new JsonArray("language_model");
        if (IncludesVision) parts.Add("vision");
        return new JsonObject
        {
            ["format"] = Format.Name(),
            ["block_size"] = BlockFormats.BlockSize,
            ["scales_suffix"] = ScalesSuffix,
            ["method"] = Format == BlockFormat.Q8_0
                ? "llama.cpp Q8_0: per block d = max|x|/127 (float16), q = round(x/d) int8"
                : "llama.cpp Q4_0: per block d = m/-8 with m the element of largest magnitude (float16), q = min(15, trunc(x/d + 8.5)), byte j = q[j] | q[j+16] << 4",
            ["parts"] = parts,
            ["tensors"] = new JsonArray(Tensors.Order(StringComparer.Ordinal).Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
        };
    }

    /// <summary>
    /// Whether a tensor of the layout is a linear weight this project quantizes: the decoder's
    /// projections (attention, MLP, the hybrid layers' key/value projection) and lm_head; with
    /// <paramref name="includeVision"/> also the projector's and the ConvNeXt blocks' MLP matrices. Rows
    /// must be whole blocks; the embedding table, norms, biases, convolutions and the one-row gate stay as they are.
    /// </summary>
    public static bool IsQuantizable(WeightSpec w, bool includeVision)
    {
        if (w.Init != WeightInit.Linear || w.Shape.Length != 2 || w.Shape[0] < 2 || w.Shape[1] % BlockFormats.BlockSize != 0) return false;
        return w.Part switch
        {
            ModelPart.Llm or ModelPart.HybridCrossAttention => true,
            ModelPart.Projector => includeVision,
            ModelPart.VisionTower => includeVision && w.Name.Contains(".mlp.fc", StringComparison.Ordinal),
            _ => false,
        };
    }
}
