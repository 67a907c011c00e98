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
/// plain and one hybrid decoder layer of the config's real shapes (random weights), the cases in
/// turn round after round, and summed over the layers; with one (<c>--model</c>) the whole decoder runs.
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
        var configs = Cases.Select(c => ConfigFor(config, c)).ToArray();
        var costs = Cases.Select((c, i) => ComputeCost.For(configs[i], c.Frames, c.Design, Text)).ToArray();
        var shapes = costs.Select(cost => new PromptShape(Text.TextBeforeVisual, (int)cost.SequenceVisualTokens,
            Text.TextTokens - Text.TextBeforeVisual, (int)cost.CrossAttendedTokens)).ToArray();
        for (int i = 0; i < Cases.Length; i++)
            log.WriteLine($"{Cases[i].Name}: {shapes[i].Positions} positions, {shapes[i].SlowTokens} slow tokens");
        double[] seconds = decoder != null
            ? shapes.Select((shape, i) => WholeDecoder(decoder, configs[i], shape, reps, layers.Precision)).ToArray()
            : SampledLayers(config, shapes, reps, layers.Precision, log);

        var rows = new JsonArray();
        double baseFlops = costs[0].LlmPrefillFlops - LmHeadFlops(config), baseTime = seconds[0];
        for (int i = 0; i < Cases.Length; i++)
        {
            var (c, cost) = (Cases[i], costs[i]);
            double flops = cost.LlmPrefillFlops - LmHeadFlops(config);
            log.WriteLine($"{c.Name}: {flops / 1e12:F3} TFLOP ({flops / baseFlops:F4}x), {seconds[i]:F2} s ({seconds[i] / baseTime:F3}x)");
            rows.Add(new JsonObject
            {
                ["name"] = c.Name, ["design"] = c.Design == VisualDesign.Baseline ? "baseline" : "slowfast", ["frames"] = c.Frames, ["strides"] = c.Strides,
                ["positions"] = shapes[i].Positions, ["sequence_visual_tokens"] = shapes[i].FastTokens, ["cross_attended_tokens"] = shapes[i].SlowTokens,
                ["cross_attention_rows"] = cost.CrossAttentionRows,
                ["layers_flops"] = cost.Part(ComputeCost.Prefill).Flops - LmHeadFlops(config),
                ["slow_kv_flops"] = cost.Part(ComputeCost.SlowKeyValues).Flops,
                ["cross_attention_flops"] = cost.Part(ComputeCost.CrossAttention).Flops,
                ["flops"] = flops, ["flops_ratio"] = flops / baseFlops,
                ["prefill_s"] = seconds[i], ["time_ratio"] = seconds[i] / baseTime,
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

    /// <summary>
    /// Prefill time of every case summed over the layers: plain layers at the sequence's length, hybrid
    /// ones with the case's slow tokens (a hybrid layer with none runs the plain computation). The cases
    /// are measured in turn, round after round, so a change in the machine's load touches them alike;
    /// each case's time is its median over the rounds.
    /// </summary>
    private static double[] SampledLayers(SlowFastConfig config, PromptShape[] shapes, int reps, Tensors.Kernels.MatMulPrecision precision, TextWriter log)
    {
        var plain = new DecoderLayerBench(config, hybrid: false, Tensors.DType.BF16, precision);
        var hybrid = new DecoderLayerBench(config, hybrid: true, Tensors.DType.BF16, precision);
        var plainTimes = new Dictionary<int, List<double>>();
        var hybridTimes = shapes.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round <= reps; round++) // round 0 warms up
        {
            var plainThisRound = new Dictionary<int, double>();
            for (int i = 0; i < shapes.Length; i++)
            {
                var shape = shapes[i];
                if (!plainThisRound.ContainsKey(shape.Positions))
                    plainThisRound[shape.Positions] = plain.Measure(shape with { SlowTokens = 0 }, 1, 1, warmups: 0).Prefill.Median;
                double h = shape.SlowTokens > 0 ? hybrid.Measure(shape, 1, 1, warmups: 0).Prefill.Median : plainThisRound[shape.Positions];
                if (round > 0) hybridTimes[i].Add(h);
            }
            if (round > 0)
                foreach (var (p, t) in plainThisRound) (plainTimes.TryGetValue(p, out var l) ? l : plainTimes[p] = []).Add(t);
            log.WriteLine(round == 0 ? "  warm-up round done" : $"  round {round} of {reps} done");
        }
        int hybridCount = config.HybridLayers.Count, plainCount = config.NumHiddenLayers - hybridCount;
        return shapes.Select((shape, i) => plainCount * Timing.MedianOf(plainTimes[shape.Positions]) + hybridCount * Timing.MedianOf(hybridTimes[i])).ToArray();
    }

    private static double LmHeadFlops(SlowFastConfig c) => 2.0 * c.HiddenSize * c.VocabSize;

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
            $"{r["reps"]} prefills, {(r["mode"]!.ToString() == "sampled layers" ? "one plain and one hybrid layer of the real shapes (random weights), the cases measured in turn round after round (so the machine's load touches them alike), summed over the layers" : "the whole decoder")}.").AppendLine();
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
