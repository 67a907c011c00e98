using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Tensors;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast inspect</c>: what a checkpoint is, checked against its config.</summary>
public static class InspectCommand
{
    public static readonly CommandSpec Spec = new("inspect",
        "Summarize a checkpoint: layers (which are hybrid), parameters per part, dtype, visual token counts; with --flops, the compute of each part.",
        [
            new("model", "DIR|ID", ModelArgument.Description + " (or --preset)"),
            new("preset", "tiny|small|7b", "a preset's shapes instead of a checkpoint (with --flops)"),
            new("frames", "N", "frames of a video, for the fast/slow token counts", "64"),
            new("flops", null, "FLOPs and bytes of weights and activations of each part (vision tower, projector, pooling, LLM prefill, slow K/V projections, cross-attention, one decode step)"),
            DesignOption.Spec,
            new("text-tokens", "N", "with --flops: text tokens of the prompt (the chat template and a short question are about 26)", "26"),
            new("json", null, "print one JSON object instead of text"),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        int frames = a.Int("frames", 1, 1_000_000);
        bool json = a.Flag("json");
        if (a.Has("model") == a.Has("preset")) throw new UsageError("inspect: give one of --model and --preset");
        if (a.Has("preset") && !a.Flag("flops")) throw new UsageError("inspect: --preset needs --flops (a preset has no checkpoint to summarize)");
        var design = DesignOption.Parse(a);
        int textTokens = a.Int("text-tokens", 1, 1_000_000);
        var prompt = new PromptText(textTokens, Math.Min(PromptText.Typical.TextBeforeVisual, textTokens));
        if (a.Has("preset"))
        {
            var config = Presets.Get(a.Required("preset"));
            var cost = ComputeCost.For(config, frames, design, prompt, ComputeCost.WeightBytesFor(config));
            Console.Out.Write(json ? CostJson(cost).ToJsonString(Indented) + "\n" : CostText(cost));
            return 0;
        }
        using var model = ModelDirectory.Open(ModelArgument.Resolve(a.Required("model")));
        var summary = Summarize(model, frames);
        if (a.Flag("flops"))
        {
            var stored = model.StoredDTypes();
            double bytesPerWeight = stored.Count == 0 ? 2 : stored[0].DType.SizeOf();
            summary["compute"] = CostJson(ComputeCost.For(model.Config, frames, design, prompt, bytesPerWeight));
        }
        Console.Out.Write(json ? summary.ToJsonString(Indented) + "\n"
            : ToText(summary) + (summary["compute"] is JsonObject ? CostText(summary["compute"]!.AsObject()) : ""));
        return 0;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static JsonObject CostJson(ComputeCost cost)
    {
        var parts = new JsonObject();
        foreach (var p in cost.Parts)
            parts[p.Name] = new JsonObject { ["flops"] = p.Flops, ["weight_bytes"] = p.WeightBytes, ["activation_bytes"] = p.ActivationBytes };
        return new JsonObject
        {
            ["design"] = cost.Design == VisualDesign.Baseline ? "baseline" : "slowfast",
            ["frames"] = cost.Plan.Frames,
            ["text_tokens"] = cost.Prompt.TextTokens,
            ["positions"] = cost.Positions,
            ["sequence_visual_tokens"] = cost.SequenceVisualTokens,
            ["cross_attended_tokens"] = cost.CrossAttendedTokens,
            ["cross_attention_rows"] = cost.CrossAttentionRows,
            ["parts"] = parts,
            ["llm_prefill_flops"] = cost.LlmPrefillFlops,
        };
    }

    private static string CostText(ComputeCost cost) => CostText(CostJson(cost));

    private static string CostText(JsonObject c)
    {
        static string Si(double v, string unit) => v >= 1e12 ? $"{v / 1e12:F2} T{unit}" : v >= 1e9 ? $"{v / 1e9:F2} G{unit}" : v >= 1e6 ? $"{v / 1e6:F2} M{unit}" : v >= 1e3 ? $"{v / 1e3:F2} K{unit}" : $"{v:F0} {unit}";
        var w = new StringWriter();
        w.WriteLine($"compute        {c["design"]}: {c["frames"]} frames, {c["positions"]} positions in the sequence ({c["text_tokens"]} text + {c["sequence_visual_tokens"]} visual), " +
            $"{c["cross_attended_tokens"]} cross-attended tokens read by {c["cross_attention_rows"]} rows a hybrid layer");
        w.WriteLine($"  {"part",-22} {"FLOPs",12} {"weights",12} {"activations",12}");
        foreach (var (name, node) in c["parts"]!.AsObject())
        {
            var p = node!.AsObject();
            w.WriteLine($"  {name,-22} {Si((double)p["flops"]!, "FLOP"),12} {Si((double)p["weight_bytes"]!, "B"),12} {Si((double)p["activation_bytes"]!, "B"),12}");
        }
        w.WriteLine($"  LLM prefill in all (prefill + slow K/V + cross-attention): {Si((double)c["llm_prefill_flops"]!, "FLOP")}");
        w.WriteLine("  (weights: distinct bytes read, stored dtype; the tower re-reads its weights every frame. activations: float32 inputs and outputs of each product)");
        return w.ToString();
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
