using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Decoder;
using SlowFast.Model.Engine;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>
/// The decoder's matrices as stored (memory-mapped; every bfloat16 product packs its weights) against
/// packed once at load (<see cref="EngineOptions.PackDecoderWeights"/>), on a real checkpoint, in rounds
/// that alternate the two loads: a video question's prefill, a follow-up question's prefill (few new
/// positions: the prompt's start comes from the prefix cache), and decoding with one and with eight
/// sequences. Each load is warmed up first (every weight read once), so neither side waits on the disk.
/// </summary>
public static class PackedDecoderBench
{
    private static readonly string[] Sides = ["stored", "packed"];

    public static JsonObject Run(string dir, string source, int frames, MatMulPrecision precision, bool quick, TextWriter log)
    {
        if (MatMul.Effective(precision) != MatMulPrecision.BFloat16)
            throw new UserError("bench --compare-packed-decoder: packing is for bfloat16 arithmetic, which this run does not use (--precision bf16 on a CPU with AVX512-BF16)");
        int rounds = quick ? 1 : 4, newTokens = quick ? 4 : 8;   // ABBA twice: this machine's bandwidth drifts with other tenants
        var figures = Sides.ToDictionary(s => s, _ => new List<Figures>());
        for (int round = 0; round < rounds; round++)
            foreach (var side in round % 2 == 0 ? Sides : Sides.Reverse())
            {
                log.WriteLine($"  packed decoder, round {round + 1} of {rounds}: decoder {side}");
                var f = Measure(dir, side == "packed", frames, precision, newTokens);
                figures[side].Add(f);
                // The packed matrices are garbage now: give their memory back to the system before the next
                // load (an ordinary collection keeps the freed regions committed, and the stored side would
                // run with the page cache short of the checkpoint).
                GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                log.WriteLine($"    load {f.LoadSeconds:F1} s, video prefill {f.VideoPositions} positions {f.VideoPrefillSeconds:F2} s, " +
                    $"follow-up {f.FollowUpNewPositions} new positions {f.FollowUpPrefillSeconds:F3} s, decoding {f.OneSequenceRate:F2} tokens/s alone, {f.EightSequencesRate:F2} with 8");
            }

        var result = new JsonObject { ["source"] = source, ["frames"] = frames, ["rounds"] = rounds, ["new_tokens"] = newTokens };
        foreach (var side in Sides)
        {
            var all = figures[side];
            result[side] = new JsonObject
            {
                ["load_s"] = Timing.MedianOf(all.Select(f => f.LoadSeconds)),
                ["packing_s"] = Timing.MedianOf(all.Select(f => f.PackingSeconds)),
                ["video_prompt_positions"] = all[0].VideoPositions,
                ["video_prefill_s"] = Timing.MedianOf(all.Select(f => f.VideoPrefillSeconds)),
                ["follow_up_new_positions"] = all[0].FollowUpNewPositions,
                ["follow_up_prefill_s"] = Timing.MedianOf(all.Select(f => f.FollowUpPrefillSeconds)),
                ["one_sequence_tokens_per_s"] = Timing.MedianOf(all.Select(f => f.OneSequenceRate)),
                ["eight_sequences_tokens_per_s"] = Timing.MedianOf(all.Select(f => f.EightSequencesRate)),
                ["working_set_bytes"] = Timing.MedianOf(all.Select(f => (double)f.WorkingSet)),
            };
        }
        return result;
    }

    private sealed record Figures(double LoadSeconds, double PackingSeconds, int VideoPositions, double VideoPrefillSeconds,
        int FollowUpNewPositions, double FollowUpPrefillSeconds, double OneSequenceRate, double EightSequencesRate, long WorkingSet);

    private static Figures Measure(string dir, bool pack, int frames, MatMulPrecision precision, int newTokens)
    {
        var clock = Stopwatch.StartNew();
        using var model = ModelDirectory.Open(dir, packDecoder: pack);
        if (pack && !model.PackDecoderAtLoad) throw new UserError($"bench --compare-packed-decoder: {model.PackingDeclined}");
        var config = model.Config;
        var decoder = new Qwen2Decoder(config, DecoderWeights.From(model));
        double load = clock.Elapsed.TotalSeconds;
        using var engine = new InferenceEngine(decoder, new EngineOptions { MaxConcurrentSequences = 8, DefaultPrecision = precision });
        int vocab = Math.Min(config.VocabSize, 151643);   // ordinary tokens only

        // Warm-up: every weight read once (the stored side pages the checkpoint in), every path compiled.
        EngineBench.Answer(engine, EngineBench.TextIds(0, 24, vocab), null, 2);

        var (firstAnswer, secondAnswer) = EngineBench.QuestionThenFollowUp(engine, EngineBench.RandomVideo(config, frames), vocab, newTokens);

        double Rate(int sequences, int seed)
        {
            var before = engine.Stats;
            var requests = Enumerable.Range(0, sequences).Select(i => engine.Submit(EngineBench.TextIds(seed + i, 24, vocab), null, EngineBench.Options(newTokens))).ToList();
            Task.WaitAll(requests.Select(r => r.Completion).ToArray());
            var after = EngineBench.Idle(engine);
            return (after.DecodedTokens - before.DecodedTokens) / (after.DecodeSeconds - before.DecodeSeconds);
        }
        double one = Rate(1, 100), eight = Rate(8, 200);
        return new Figures(load, model.DecoderPackingTime.TotalSeconds, firstAnswer.PromptPositions, firstAnswer.PrefillTime.TotalSeconds,
            secondAnswer.PromptPositions - secondAnswer.ReusedPositions, secondAnswer.TimeToFirstToken.TotalSeconds, one, eight,
            Process.GetCurrentProcess().WorkingSet64);   // the stored side's counts the checkpoint's pages it has mapped
    }

    public static string ToMarkdown(JsonObject r)
    {
        double D(JsonNode? n) => n?.GetValue<double>() ?? double.NaN;
        var sb = new StringBuilder();
        sb.AppendLine($"## Decoder as stored against packed at load: {r["source"]}, {r["frames"]} frames").AppendLine();
        sb.AppendLine($"Medians of {r["rounds"]} round(s) alternating the two loads, each warmed up first; {r["new_tokens"]} new tokens an answer. " +
            "\"stored\": the matrices memory-mapped as stored, packed by every bfloat16 product; \"packed\": packed once at load (`serve`'s default, `ask --pack-decoder`).").AppendLine();
        sb.AppendLine("| | load s (packing s) | video prefill s | follow-up prefill s | decoding, 1 sequence, tokens/s | decoding, 8 sequences, tokens/s | working set after, GB |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var side in Sides)
        {
            var s = r[side]!;
            sb.AppendLine($"| {side} | {D(s["load_s"]):F1} ({D(s["packing_s"]):F1}) | {D(s["video_prefill_s"]):F2} ({s["video_prompt_positions"]} positions) | " +
                $"{D(s["follow_up_prefill_s"]):F3} ({s["follow_up_new_positions"]} new positions) | {D(s["one_sequence_tokens_per_s"]):F2} | {D(s["eight_sequences_tokens_per_s"]):F2} | {D(s["working_set_bytes"]) / 1e9:F2} |");
        }
        var st = r["stored"]!; var pk = r["packed"]!;
        sb.AppendLine($"| packed / stored | | {D(st["video_prefill_s"]) / D(pk["video_prefill_s"]):F2}× | {D(st["follow_up_prefill_s"]) / D(pk["follow_up_prefill_s"]):F2}× | " +
            $"{D(pk["one_sequence_tokens_per_s"]) / D(st["one_sequence_tokens_per_s"]):F2}× | {D(pk["eight_sequences_tokens_per_s"]) / D(st["eight_sequences_tokens_per_s"]):F2}× | |");
        sb.AppendLine();
        return sb.ToString();
    }
}
