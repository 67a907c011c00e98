using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Eval.Tasks;

namespace SlowFast.Eval.Running;

/// <summary>
/// results.json and results.md of a run (or of merged shards), computed from the answer log alone: the task's score
/// overall and per category, failures with the videos behind them, and seconds per sample split into reading frames,
/// vision tower, prefill and decoding. Everything but the timings depends only on the set of records, so merged
/// shards give the unsharded run's results.
/// </summary>
public static class EvalResults
{
    public const string JsonFileName = "results.json";
    public const string MarkdownFileName = "results.md";

    public static JsonObject Compute(EvalTask task, IReadOnlyList<RunManifest> runs, IReadOnlyList<AnswerRecord> records)
    {
        var ordered = records.OrderBy(r => r.Index).ToList();
        var score = task.Score(ordered.Select(r => r.ToScored()).ToList());
        var first = runs[0];
        int expected = runs.Sum(r => r.Samples);

        var categories = new JsonArray();
        foreach (var c in score.Categories)
            categories.Add(new JsonObject
            {
                ["dimension"] = c.Dimension, ["value"] = c.Value, ["samples"] = c.Samples, ["counted"] = c.Counted,
                ["correct"] = c.Correct, ["score"] = Math.Round(c.Score, 4),
            });
        var failures = new JsonObject();
        foreach (var g in ordered.Where(r => r.Failed).GroupBy(r => r.ErrorKind!).OrderBy(g => g.Key, StringComparer.Ordinal))
            failures[g.Key] = g.Count();

        var timed = ordered.Where(r => !r.Failed && r.Timings != null).ToList();
        JsonNode? Mean(Func<SampleTimings, double?> part)
        {
            var values = timed.Select(r => part(r.Timings!)).ToList();
            return values.Count == 0 || values.Any(v => v == null) ? null : Math.Round(values.Average(v => v!.Value), 4);
        }

        return new JsonObject
        {
            ["task"] = first.Task,
            ["model"] = Distinct(runs.Select(r => r.Model)),
            ["frames"] = first.Frames,
            ["fps"] = first.Fps,
            ["max_new_tokens"] = first.MaxNewTokens,
            ["precision"] = Distinct(runs.Select(r => r.Precision)),
            ["limit"] = first.Limit,
            ["shards"] = new JsonArray(runs.Select(r => (JsonNode?)r.Shard.ToString()).ToArray()),
            ["samples"] = expected,
            ["answered"] = ordered.Count,
            ["complete"] = ordered.Count == expected,
            ["failed"] = ordered.Count(r => r.Failed),
            ["failures"] = failures,
            ["missing_videos"] = Videos(ordered, FailureKind.MissingVideo),
            ["undecodable_videos"] = Videos(ordered, FailureKind.UndecodableVideo),
            ["score"] = new JsonObject
            {
                ["overall"] = Math.Round(score.Overall, 4),
                ["samples"] = score.Samples,
                ["counted"] = score.Counted,
                ["correct"] = score.Correct,
                ["method"] = score.Method,
                ["categories"] = categories,
            },
            ["timing"] = new JsonObject
            {
                ["timed_samples"] = timed.Count,
                ["seconds_per_sample"] = Mean(t => t.Total),
                ["video_s"] = Mean(t => t.Video),
                ["vision_s"] = Mean(t => t.Vision),
                ["prefill_s"] = Mean(t => t.Prefill),
                ["decode_s"] = Mean(t => t.Decode),
                ["videos_encoded"] = timed.Count(r => !r.VideoReused),
                ["generated_tokens_per_sample"] = timed.Count == 0 ? null : Math.Round(timed.Average(r => r.Tokens?.Generated ?? 0), 2),
            },
        };
    }

    private static JsonNode Distinct(IEnumerable<string> values)
    {
        var list = values.Distinct(StringComparer.Ordinal).ToList();
        return list.Count == 1 ? JsonValue.Create(list[0])! : new JsonArray(list.Select(v => (JsonNode?)v).ToArray());
    }

    private static JsonArray Videos(IEnumerable<AnswerRecord> records, string kind) =>
        new(records.Where(r => r.ErrorKind == kind).Select(r => r.Video).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Select(v => (JsonNode?)v).ToArray());

    /// <summary>Writes the task's submission file into <paramref name="dir"/>, for a task whose answers are private (e.g. EgoSchema's full set).</summary>
    public static void WriteSubmission(EvalTask task, string dir, IEnumerable<AnswerRecord> records)
    {
        var file = task.SubmissionFile(records.OrderBy(r => r.Index).Select(r => (r.Id, r.Video, r.Answer)).ToList());
        if (file is { } f)
            File.WriteAllText(Path.Combine(dir, f.FileName), f.Content.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Writes results.json and results.md into <paramref name="dir"/>.</summary>
    public static void Write(string dir, JsonObject results)
    {
        File.WriteAllText(Path.Combine(dir, JsonFileName), results.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = AnswerLog.JsonOptions.Encoder }) + "\n");
        File.WriteAllText(Path.Combine(dir, MarkdownFileName), Markdown(results));
    }

    /// <summary>The Markdown report: headline, settings, score per category, throughput, failures.</summary>
    public static string Markdown(JsonObject r)
    {
        var md = new StringBuilder();
        var score = r["score"]!.AsObject();
        var timing = r["timing"]!.AsObject();
        md.AppendLine($"# {r["task"]}: {F(score["overall"], 1)}");
        md.AppendLine();
        md.AppendLine($"{score["method"]}.");
        md.AppendLine();
        md.AppendLine("| setting | value |");
        md.AppendLine("|---|---|");
        md.AppendLine($"| model | {Text(r["model"])} |");
        md.AppendLine($"| frames | {r["frames"]} (at {F(r["fps"], 0)} fps, at most {r["frames"]}) |");
        md.AppendLine($"| generation | greedy, at most {r["max_new_tokens"]} new tokens |");
        md.AppendLine($"| precision | {Text(r["precision"])} |");
        md.AppendLine($"| shards | {Text(r["shards"])} |");
        md.AppendLine($"| samples | {r["answered"]} of {r["samples"]} answered{(r["complete"]!.GetValue<bool>() ? "" : " (incomplete: continue with --resume)")}; {r["failed"]} failed |");
        md.AppendLine();
        md.AppendLine("## Score");
        md.AppendLine();
        md.AppendLine("| dimension | value | samples | counted | correct | score |");
        md.AppendLine("|---|---|---:|---:|---:|---:|");
        md.AppendLine($"| **overall** | | {score["samples"]} | {score["counted"]} | {score["correct"]} | **{F(score["overall"], 1)}** |");
        foreach (var c in score["categories"]!.AsArray())
            md.AppendLine($"| {c!["dimension"]} | {Escape(c["value"]!.GetValue<string>())} | {c["samples"]} | {c["counted"]} | {c["correct"]} | {F(c["score"], 1)} |");
        md.AppendLine();
        md.AppendLine("## Throughput");
        md.AppendLine();
        md.AppendLine("Mean seconds per answered sample; a video asked about again is not read or encoded again (its reading and vision time is 0 then).");
        md.AppendLine();
        md.AppendLine("| samples timed | seconds / sample | reading frames | vision | prefill | decode | videos encoded | tokens generated / sample |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        md.AppendLine($"| {timing["timed_samples"]} | {F(timing["seconds_per_sample"], 2)} | {F(timing["video_s"], 2)} | {F(timing["vision_s"], 2)} | {F(timing["prefill_s"], 2)} | {F(timing["decode_s"], 2)} | {timing["videos_encoded"]} | {F(timing["generated_tokens_per_sample"], 1)} |");
        if (r["failed"]!.GetValue<int>() > 0)
        {
            md.AppendLine();
            md.AppendLine("## Failures");
            md.AppendLine();
            md.AppendLine("Scored wrong (output empty, as the reference's wrapper returns on an error).");
            md.AppendLine();
            foreach (var (kind, count) in r["failures"]!.AsObject()) md.AppendLine($"- {kind}: {count}");
            foreach (var name in new[] { "missing_videos", "undecodable_videos" })
            {
                var list = r[name]!.AsArray();
                if (list.Count == 0) continue;
                md.AppendLine();
                md.AppendLine($"{name.Replace('_', ' ')} ({list.Count}):");
                foreach (var v in list.Take(50)) md.AppendLine($"- `{v}`");
                if (list.Count > 50) md.AppendLine($"- … {list.Count - 50} more in results.json");
            }
        }
        return md.ToString();
    }

    private static string F(JsonNode? n, int digits) => n == null ? "n/a" : n.GetValue<double>().ToString("F" + digits, CultureInfo.InvariantCulture);
    private static string Text(JsonNode? n) => n switch
    {
        null => "",
        JsonArray a => string.Join(", ", a.Select(x => x?.ToString())),
        _ => n.ToString(),
    };
    private static string Escape(string s) => s.Replace("|", "\\|", StringComparison.Ordinal);
}
