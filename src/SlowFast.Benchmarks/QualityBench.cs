using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Benchmarks;

/// <summary>
/// <c>slowfast bench --quality</c>: how far a block-quantized decoder strays from its original on the
/// same inputs. For each prompt of a fixed set (text only, and prompts with the fast and slow visual
/// tokens of a video — random features, as the benchmarks' models have random weights) both run the
/// prefill, then greedy decoding driven by the original's tokens (teacher forcing). Reported: the
/// relative error ‖h_q − h‖ / ‖h‖ of every layer's output over the prefill rows, the KL divergence
/// KL(p ‖ p_q) of every next-token distribution, and the share of steps whose greedy token agrees.
/// </summary>
/// <remarks>
/// Random weights make logits nearly flat, so the KL figures and agreement are not those of the
/// released weights; the command runs unchanged on a real checkpoint (<c>--model DIR</c>).
/// </remarks>
public static class QualityBench
{
    private sealed record Prompt(string Name, int[] Ids, float[]? Fast, int FastCount, float[]? Slow, int SlowCount);

    public static JsonObject Run(string dir, string source, IReadOnlyList<BlockFormat> formats, int frames, int steps,
        MatMulPrecision precision, TextWriter log)
    {
        using var original = ModelDirectory.Open(dir);
        if (original.Quantization != null) throw new UserError($"bench --quality: {dir} is quantized already; give its original");
        var config = original.Config;
        var reference = new Qwen2Decoder(config, DecoderWeights.From(original));
        var prompts = Prompts(config, frames);
        var result = new JsonObject
        {
            ["source"] = source, ["precision"] = MatMul.EffectiveName(precision), ["frames"] = frames, ["steps"] = steps,
            ["prompts"] = new JsonArray(prompts.Select(p => (JsonNode)p.Name).ToArray()),
        };
        var variants = new JsonArray();
        foreach (var format in formats)
        {
            log.WriteLine($"quality: {format.Name()} against the original ({prompts.Count} prompts, {steps} greedy steps each)");
            using var quantizedDir = ModelDirectory.Open(dir, format);
            var quantized = new Qwen2Decoder(config, DecoderWeights.From(quantizedDir));
            var layerError = new double[config.NumHiddenLayers];
            var layerNorm = new double[config.NumHiddenLayers];
            double klSum = 0, klMax = 0;
            int agree = 0, total = 0;
            foreach (var p in prompts)
            {
                var (kl, same, count) = Compare(reference, quantized, p, steps, precision, layerError, layerNorm);
                klSum += kl.Sum();
                klMax = Math.Max(klMax, kl.Max());
                agree += same;
                total += count;
                log.WriteLine($"  {p.Name}: mean KL {kl.Average():G3}, greedy agreement {same}/{count}");
            }
            var layers = new JsonArray();
            for (int l = 0; l < layerError.Length; l++) layers.Add(Math.Sqrt(layerError[l] / layerNorm[l]));
            variants.Add(new JsonObject
            {
                ["format"] = format.Name(),
                ["layer_relative_error"] = layers,
                ["kl_mean"] = klSum / total, ["kl_max"] = klMax,
                ["greedy_agreement"] = (double)agree / total, ["steps"] = total,
            });
            log.WriteLine($"  {format.Name()}: last layer relative error {Math.Sqrt(layerError[^1] / layerNorm[^1]):G3}, mean KL {klSum / total:G3}, greedy agreement {100.0 * agree / total:F1}%");
        }
        result["variants"] = variants;
        return result;
    }

    /// <summary>Fixed prompts: text only, and two videos of <paramref name="frames"/> frames (random visual features, seeded).</summary>
    private static List<Prompt> Prompts(SlowFastConfig config, int frames)
    {
        int hidden = config.HiddenSize, limit = Math.Min(config.VocabSize, 151643);
        int[] Ids(int count, int seed, int placeholderAt = -1)
        {
            var ids = new int[count];
            for (int i = 0; i < count; i++) ids[i] = (int)((i * 7919L + seed * 104729L + 13) % limit);
            if (placeholderAt >= 0) ids[placeholderAt] = DecoderPrompt.ImagePlaceholder;
            return ids;
        }
        var list = new List<Prompt> { new("text", Ids(48, 1), null, 0, null, 0) };
        var shape = PromptShape.ForFrames(config, frames);
        for (int v = 0; v < 2; v++)
        {
            var fast = RandomData.Floats((long)shape.FastTokens * hidden, 0.05f, (ulong)(40 + v));
            float[]? slow = shape.SlowTokens > 0 ? RandomData.Floats((long)shape.SlowTokens * hidden, 0.05f, (ulong)(50 + v)) : null;
            list.Add(new($"video {v + 1} ({frames} frames)", Ids(shape.TextTokens + 1, 2 + v, shape.TextBefore), fast, shape.FastTokens, slow, shape.SlowTokens));
        }
        return list;
    }

    private static (List<double> Kl, int Same, int Count) Compare(Qwen2Decoder reference, Qwen2Decoder quantized, Prompt p, int steps,
        MatMulPrecision precision, double[] layerError, double[] layerNorm)
    {
        var config = reference.Config;
        var refPrompt = DecoderPrompt.Build(reference, p.Ids, p.Fast, p.FastCount, p.Name);
        var qPrompt = DecoderPrompt.Build(quantized, p.Ids, p.Fast, p.FastCount, p.Name);
        var rows = CrossAttentionRows.ForPrompt(config, refPrompt.TokenTypes);
        var refCache = reference.CreateCache(refPrompt.Length + steps + 1);
        var qCache = quantized.CreateCache(qPrompt.Length + steps + 1);
        var refSlow = p.Slow != null ? reference.CreateSlowKeyValues(p.Slow, p.SlowCount) : null;
        var qSlow = p.Slow != null ? quantized.CreateSlowKeyValues(p.Slow, p.SlowCount) : null;
        var refLogits = new float[reference.VocabSize];
        var qLogits = new float[quantized.VocabSize];

        // Prefill: keep the original's layer outputs, then measure the quantized ones against them.
        var saved = new float[config.NumHiddenLayers][];
        var refWs = new DecoderWorkspace { AfterLayer = (l, h) => saved[l] = h.ToArray() };
        reference.Forward(refPrompt.Embeddings, refPrompt.Length, refCache, rows, refSlow, LogitRows.Last, refLogits, precision, refWs);
        var qWs = new DecoderWorkspace
        {
            AfterLayer = (l, h) =>
            {
                var r = saved[l];
                for (int i = 0; i < r.Length; i++)
                {
                    double d = h[i] - r[i];
                    layerError[l] += d * d;
                    layerNorm[l] += (double)r[i] * r[i];
                }
            },
        };
        quantized.Forward(qPrompt.Embeddings, qPrompt.Length, qCache, rows, qSlow, LogitRows.Last, qLogits, precision, qWs);
        refWs.AfterLayer = qWs.AfterLayer = null;

        var kl = new List<double>();
        int same = 0;
        var embedding = new float[reference.Hidden];
        for (int s = 0; ; s++)
        {
            int token = Sampler.ArgMax(refLogits);
            kl.Add(KlDivergence(refLogits, qLogits));
            if (Sampler.ArgMax(qLogits) == token) same++;
            if (s == steps) break;
            reference.Embed([token], embedding);
            reference.Forward(embedding, 1, refCache, [], refSlow, LogitRows.Last, refLogits, precision, refWs);
            quantized.Embed([token], embedding);
            quantized.Forward(embedding, 1, qCache, [], qSlow, LogitRows.Last, qLogits, precision, qWs);
        }
        return (kl, same, kl.Count);
    }

    /// <summary>KL(softmax(p) ‖ softmax(q)) in double precision.</summary>
    public static double KlDivergence(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        double maxP = double.NegativeInfinity, maxQ = double.NegativeInfinity;
        for (int i = 0; i < p.Length; i++) { maxP = Math.Max(maxP, p[i]); maxQ = Math.Max(maxQ, q[i]); }
        double sumP = 0, sumQ = 0;
        for (int i = 0; i < p.Length; i++) { sumP += Math.Exp(p[i] - maxP); sumQ += Math.Exp(q[i] - maxQ); }
        double logZp = maxP + Math.Log(sumP), logZq = maxQ + Math.Log(sumQ), kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double logP = p[i] - logZp, logQ = q[i] - logZq;
            kl += Math.Exp(logP) * (logP - logQ);
        }
        return Math.Max(0, kl);
    }

    public static string ToMarkdown(JsonObject r, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"# Quantization quality: {r["source"]}").AppendLine();
        sb.AppendLine($"`{command}`").AppendLine();
        sb.AppendLine($"Prompts: {string.Join(", ", r["prompts"]!.AsArray().Select(n => n!.ToString()))}; {r["steps"]} greedy steps each after the prefill (the original's tokens drive both models); arithmetic {r["precision"]}.").AppendLine();
        sb.AppendLine("| format | greedy tokens identical | mean KL(p‖p_q) | max KL | relative error, first layer | … middle | … last layer |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var v in r["variants"]!.AsArray())
        {
            var layers = v!["layer_relative_error"]!.AsArray().Select(x => (double)x!).ToArray();
            sb.AppendLine(string.Create(inv, $"| {v["format"]} | {100 * (double)v["greedy_agreement"]!:F1}% of {v["steps"]} | {(double)v["kl_mean"]!:G3} | {(double)v["kl_max"]!:G3} | {layers[0]:G3} | {layers[layers.Length / 2]:G3} | {layers[^1]:G3} |"));
        }
        sb.AppendLine().AppendLine("Relative error of every layer's output (‖h_q − h‖ / ‖h‖ over the prefill rows of all prompts):").AppendLine();
        foreach (var v in r["variants"]!.AsArray())
            sb.AppendLine($"- {v!["format"]}: " + string.Join(", ", v["layer_relative_error"]!.AsArray().Select(x => ((double)x!).ToString("G3", inv))));
        return sb.ToString();
    }
}
