using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Model;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast inspect</c>: what a checkpoint is, checked against its config.</summary>
public static class InspectCommand
{
    public static readonly CommandSpec Spec = new("inspect",
        "Summarize a checkpoint: layers (which are hybrid), parameters per part, dtype, visual token counts.",
        [
            new("model", "DIR|ID", ModelArgument.Description, Required: true),
            new("frames", "N", "frames of a video, for the fast/slow token counts", "64"),
            new("json", null, "print one JSON object instead of text"),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        int frames = a.Int("frames", 1, 100_000);
        using var model = ModelDirectory.Open(ModelArgument.Resolve(a.Required("model")));
        var summary = Summarize(model, frames);
        Console.Out.Write(a.Flag("json") ? summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n" : ToText(summary));
        return 0;
    }

    public static JsonObject Summarize(ModelDirectory model, int frames)
    {
        var c = model.Config;
        var counts = model.ParameterCounts();
        var video = VisualTokenPlan.For(c, frames);
        var image = VisualTokenPlan.For(c, 1);
        long llm = counts[ModelPart.Llm] + counts[ModelPart.HybridCrossAttention];
        return new JsonObject
        {
            ["model"] = model.Path,
            ["model_type"] = SlowFastConfig.ModelType,
            ["dtype"] = string.Join(", ", model.StoredDTypes().Select(d => $"{d.DType} ({d.Bytes / 1e9:F2} GB)")),
            ["decoder"] = new JsonObject
            {
                ["layers"] = c.NumHiddenLayers,
                ["hybrid_layers"] = new JsonArray(c.HybridLayers.Select(i => (JsonNode)i).ToArray()),
                ["hidden_size"] = c.HiddenSize,
                ["intermediate_size"] = c.IntermediateSize,
                ["attention_heads"] = c.NumAttentionHeads,
                ["key_value_heads"] = c.NumKeyValueHeads,
                ["head_dim"] = c.HeadDim,
                ["vocab_size"] = c.VocabSize,
                ["rope_theta"] = c.RopeTheta,
                ["tie_word_embeddings"] = c.TieWordEmbeddings,
                ["cross_attn_implementation"] = c.CrossAttnImplementation,
                ["cross_attn_gating_type"] = c.CrossAttnGatingType,
            },
            ["vision_tower"] = new JsonObject
            {
                ["name"] = c.MmVisionTower,
                ["depths"] = new JsonArray(c.Vision.Depths.Select(d => (JsonNode)d).ToArray()),
                ["dims"] = new JsonArray(c.Vision.Dims.Select(d => (JsonNode)d).ToArray()),
                ["image_size"] = c.Vision.ImageSize,
                ["tokens_per_frame"] = c.Vision.TokensPerFrame,
                ["token_grid"] = $"{c.Vision.TokensPerSide}x{c.Vision.TokensPerSide}",
                ["width"] = c.Vision.HiddenSize,
            },
            ["projector"] = $"{c.MmProjectorType} ({c.MmHiddenSize} -> {c.HiddenSize})",
            ["parameters"] = new JsonObject
            {
                ["llm"] = llm,
                ["llm_hybrid_cross_attention"] = counts[ModelPart.HybridCrossAttention],
                ["projector"] = counts[ModelPart.Projector],
                ["vision_tower"] = counts[ModelPart.VisionTower],
                ["total"] = counts.Values.Sum(),
            },
            ["visual_tokens"] = new JsonObject
            {
                ["frames"] = frames,
                ["slow_tokens_per_frame"] = video.SlowTokensPerFrame,
                ["slow_tokens"] = video.SlowTokens,
                ["fast_frames"] = video.FastFrames,
                ["fast_tokens_per_frame"] = video.FastTokensPerFrame,
                ["fast_tokens"] = video.FastTokens,
                ["image_fast_tokens"] = image.FastTokens,
                ["image_slow_tokens"] = image.SlowTokens,
            },
        };
    }

    private static string B(long n) => n >= 1e9 ? $"{n / 1e9:F2} B" : n >= 1e6 ? $"{n / 1e6:F2} M" : $"{n / 1e3:F1} K";

    public static string ToText(JsonObject s)
    {
        var d = s["decoder"]!.AsObject();
        var v = s["vision_tower"]!.AsObject();
        var p = s["parameters"]!.AsObject();
        var t = s["visual_tokens"]!.AsObject();
        var w = new StringWriter();
        w.WriteLine($"model          {s["model"]}");
        w.WriteLine($"type           {s["model_type"]}, stored as {s["dtype"]}");
        w.WriteLine($"decoder        Qwen2: {d["layers"]} layers, hidden {d["hidden_size"]}, {d["attention_heads"]} heads / {d["key_value_heads"]} KV heads of {d["head_dim"]}, MLP {d["intermediate_size"]}, vocab {d["vocab_size"]}, rope_theta {d["rope_theta"]}, tied embeddings {((bool)d["tie_word_embeddings"]! ? "yes" : "no")}");
        w.WriteLine($"hybrid layers  {string.Join(", ", d["hybrid_layers"]!.AsArray().Select(x => x!.ToString()))} ({d["cross_attn_implementation"]}, gate {d["cross_attn_gating_type"]})");
        w.WriteLine($"vision tower   {v["name"]}: ConvNeXt depths {string.Join("/", v["depths"]!.AsArray())} dims {string.Join("/", v["dims"]!.AsArray())} at {v["image_size"]} px -> {v["token_grid"]} = {v["tokens_per_frame"]} tokens a frame of width {v["width"]}");
        w.WriteLine($"projector      {s["projector"]}");
        w.WriteLine($"parameters     LLM {B((long)p["llm"]!)} (of which hybrid cross-attention {B((long)p["llm_hybrid_cross_attention"]!)}), projector {B((long)p["projector"]!)}, vision tower {B((long)p["vision_tower"]!)}, total {B((long)p["total"]!)}");
        w.WriteLine($"video tokens   {t["frames"]} frames -> slow {t["slow_tokens"]} ({t["frames"]} x {t["slow_tokens_per_frame"]}, cross-attended), fast {t["fast_tokens"]} ({t["fast_frames"]} x {t["fast_tokens_per_frame"]}, in the sequence)");
        w.WriteLine($"image tokens   1 image -> slow {t["image_slow_tokens"]}, fast {t["image_fast_tokens"]}");
        return w.ToString();
    }
}
