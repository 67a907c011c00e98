using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Decoder;

namespace SlowFast.Benchmarks;

/// <summary>
/// The paper's cost claim, in this engine: the LLM prefill of the self-attention-only baseline at 16
/// frames against the slow-fast design at 16, 32, 64, 96 and 128 frames, each with the strides of the
/// released checkpoint for that frame count (s1t4 up to 64 frames, s1t6 at 96, s2t4 at 128), as
/// counted FLOPs (<see cref="ComputeCost"/>) and measured time, both as ratios to the baseline.
/// </summary>
/// <remarks>
/// "LLM prefill" is the decoder over the prompt: every layer over the positions in the sequence,
/// plus — slow-fast only — the hybrid layers' slow K/V projections and cross-attention. The vision
/// tower, the projector and lm_head are not in it. Without a checkpoint the time is measured on one
/// plain and one hybrid decoder layer of the config's real shapes (random weights) and summed over
/// the layers; with one (<c>--model</c>) the whole decoder runs.
/// </remarks>
public static class BaselineComparison
{
    /// <summary>A row: design, frame count, and the fast-token strides of the checkpoint released for that count.</summary>
    public sealed record Case(VisualDesign Design, int Frames, int SamplingStride, int TemporalStride)
    {
        public string Strides => $"s{SamplingStride}t{TemporalStride}";
        public string Name => Design == VisualDesign.Baseline ? $"baseline {Frames}" : $"slow-fast {Frames} {Strides}";
    }

    public static readonly Case[] Cases =
    [
        new(VisualDesign.Baseline, 16, 1, 4),
        new(VisualDesign.SlowFast, 16, 1, 4),
        new(VisualDesign.SlowFast, 32, 1, 4),
        new(VisualDesign.SlowFast, 64, 1, 4),
        new(VisualDesign.SlowFast, 96, 1, 6),
        new(VisualDesign.SlowFast, 128, 2, 4),
    ];

    /// <summary>The chat template with a short question: 26 text tokens, 14 before the video.</summary>
    public static readonly PromptText Text = PromptText.Typical;

    public static SlowFastConfig ConfigFor(SlowFastConfig config, Case c) => SlowFastConfig.WithOverrides(config,
        [$"fast_token_temporal_sampling_stride={c.SamplingStride}", $"fast_token_temporal_stride={c.TemporalStride}"], c.Name);

    /// <summary>Counts and measures every case. <paramref name="modelDir"/>: the whole decoder of a checkpoint; null: sampled layers of <paramref name="config"/>.</summary>
    public static JsonObject Run(SlowFastConfig config, string source, string? modelDir, int reps, LayerCache layers, TextWriter log)
    {
        using var model = modelDir == null ? null : ModelDirectory.Open(modelDir);
        if (model != null) config = model.Config;
        var decoder = model == null ? null : new Qwen2Decoder(config, DecoderWeights.From(model));
        var rows = new JsonArray();
        double baseFlops = 0, baseTime = 0;
        foreach (var c in Cases)
        {
            var cfg = ConfigFor(config, c);
            var cost = ComputeCost.For(cfg, c.Frames, c.Design, Text);
            var shape = new PromptShape(Text.TextBeforeVisual, (int)cost.SequenceVisualTokens, Text.TextTokens - Text.TextBeforeVisual, (int)cost.CrossAttendedTokens);
            log.WriteLine($"{c.Name}: {shape.Positions} positions, {shape.SlowTokens} slow tokens");
            double seconds = decoder != null
                ? WholeDecoder(decoder, cfg, shape, reps, layers.Precision)
                : SampledLayers(cfg, shape, reps, layers, log);
            double flops = cost.LlmPrefillFlops - LmHeadFlops(cfg);
            if (c == Cases[0]) (baseFlops, baseTime) = (flops, seconds);
            log.WriteLine($"  {flops / 1e12:F3} TFLOP ({flops / baseFlops:F4}x), {seconds:F2} s ({seconds / baseTime:F3}x)");
            rows.Add(new JsonObject
            {
                ["name"] = c.Name, ["design"] = c.Design == VisualDesign.Baseline ? "baseline" : "slowfast", ["frames"] = c.Frames, ["strides"] = c.Strides,
                ["positions"] = shape.Positions, ["sequence_visual_tokens"] = shape.FastTokens, ["cross_attended_tokens"] = shape.SlowTokens,
                ["cross_attention_rows"] = cost.CrossAttentionRows,
                ["layers_flops"] = cost.Part(ComputeCost.Prefill).Flops - LmHeadFlops(cfg),
                ["slow_kv_flops"] = cost.Part(ComputeCost.SlowKeyValues).Flops,
                ["cross_attention_flops"] = cost.Part(ComputeCost.CrossAttention).Flops,
                ["flops"] = flops, ["flops_ratio"] = flops / baseFlops,
                ["prefill_s"] = seconds, ["time_ratio"] = seconds / baseTime,
            });
        }
        return new JsonObject
        {
            ["source"] = source,
            ["mode"] = decoder != null ? "whole decoder" : "sampled layers",
            ["layers"] = config.NumHiddenLayers, ["hybrid_layers"] = config.HybridLayers.Count,
            ["text_tokens"] = Text.TextTokens, ["reps"] = reps,
            ["precision"] = Tensors.Kernels.MatMul.EffectiveName(layers.Precision),
            ["rows"] = rows,
        };
    }

    private static double LmHeadFlops(SlowFastConfig c) => 2.0 * c.HiddenSize * c.VocabSize;

    /// <summary>Prefill time summed over the layers: plain layers at the sequence's length, hybrid ones with the slow tokens (a hybrid layer with none runs the plain computation).</summary>
    private static double SampledLayers(SlowFastConfig c, PromptShape shape, int reps, LayerCache layers, TextWriter log)
    {
        var plain = layers.Get(c, hybrid: false, shape with { SlowTokens = 0 }, reps, decodeReps: 2, log);
        double hybrid = shape.SlowTokens > 0 ? layers.Get(c, hybrid: true, shape, reps, decodeReps: 2, log).Prefill.Median : plain.Prefill.Median;
        int hybridCount = c.HybridLayers.Count;
        return (c.NumHiddenLayers - hybridCount) * plain.Prefill.Median + hybridCount * hybrid;
    }

    /// <summary>The checkpoint's whole decoder over the prompt (random embeddings), slow keys/values made fresh each repetition.</summary>
    private static double WholeDecoder(Qwen2Decoder decoder, SlowFastConfig c, PromptShape shape, int reps, Tensors.Kernels.MatMulPrecision precision)
    {
        int hidden = c.HiddenSize;
        var embeddings = RandomData.Floats((long)shape.Positions * hidden, 0.05f, 21);
        var slowTokens = shape.SlowTokens > 0 ? RandomData.Floats((long)shape.SlowTokens * hidden, 0.05f, 22) : null;
        var rows = slowTokens == null ? [] : CrossAttentionRows.ForPrompt(c, shape.TokenTypes());
        var cache = decoder.CreateCache(shape.Positions + 1);
        var workspace = new DecoderWorkspace();
        var t = Timing.Measure(() => { cache.Clear(); return slowTokens == null ? null : decoder.CreateSlowKeyValues(slowTokens, shape.SlowTokens); },
            slow => decoder.Forward(embeddings, shape.Positions, cache, rows, slow, LogitRows.None, default, precision, workspace), reps, warmups: 0);
        return t.Median;
    }

    private static string Flops(double f) => f >= 1e12 ? $"{f / 1e12:F3} T" : f >= 1e9 ? $"{f / 1e9:F2} G" : $"{f / 1e6:F2} M";

    public static string ToMarkdown(JsonObject r)
    {
        static string F(JsonNode? n, string f) => ((double)n!).ToString(f, CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.AppendLine($"## Slow-fast against the self-attention-only baseline: LLM prefill ({r["source"]}, {r["mode"]}, {r["precision"]} arithmetic)").AppendLine();
        sb.AppendLine($"{r["text_tokens"]} text tokens around the video; {r["layers"]} decoder layers, {r["hybrid_layers"]} of them hybrid. FLOPs: the decoder layers over the " +
            "sequence, plus the slow tokens' K/V projections and the cross-attention (no vision tower, projector or lm_head). Time: median of " +
            $"{r["reps"]} prefills, {(r["mode"]!.ToString() == "sampled layers" ? "one plain and one hybrid layer of the real shapes (random weights) measured and summed over the layers" : "the whole decoder")}.").AppendLine();
        sb.AppendLine("| design | frames | fast strides | positions | cross-attended tokens | LLM prefill FLOPs | × baseline 16 | of which slow K/V + cross-attention | prefill s | × baseline 16 |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var row in r["rows"]!.AsArray())
        {
            var o = row!.AsObject();
            double extra = (double)o["slow_kv_flops"]! + (double)o["cross_attention_flops"]!;
            sb.AppendLine($"| {o["design"]} | {o["frames"]} | {o["strides"]} | {o["positions"]} | {o["cross_attended_tokens"]} | {Flops((double)o["flops"]!)} | " +
                $"{F(o["flops_ratio"], "F4")} | {Flops(extra)} | {F(o["prefill_s"], "F2")} | {F(o["time_ratio"], "F3")} |");
        }
        sb.AppendLine();
        return sb.ToString();
    }
}
