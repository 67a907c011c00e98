using SlowFast.Eval.Running;
using SlowFast.Eval.Tasks;

namespace SlowFast.Cli.Commands;

/// <summary>
/// <c>slowfast eval</c>: a video benchmark prompted, parsed and scored as the reference's lmms-eval does, answers
/// logged as they come (resumable), optionally one shard of many or through a server; <c>slowfast eval merge</c>
/// combines shards.
/// </summary>
public static class EvalCommand
{
    public static readonly CommandSpec Spec = new("eval",
        "Score a checkpoint on a video benchmark the way the reference's lmms-eval does (also: eval merge DIR... --out DIR).",
        [
            new("model", "DIR|ID", ModelArgument.Description + "; with --endpoint, the model id to ask for (default: the server's first)"),
            new("task", "TASK", $"the benchmark: {string.Join(", ", TaskCatalog.All.Select(t => t.Name))}"),
            new("data", "DIR", "the benchmark's data directory, as its distribution unpacks (see README, Evaluate)"),
            new("frames", "N", "frames per video: sampled at 2 fps, at most N, thinned evenly (default: the checkpoint's training frame count, else 64)"),
            new("limit", "K", "only the task's first K samples"),
            new("out", "DIR", "where answers.jsonl, run.json, results.json and results.md go (default: eval-TASK, eval-TASK-shard-I-of-N)"),
            new("resume", null, "continue the run in --out: samples already answered are skipped"),
            new("shard", "I/N", "run shard I (0-based) of N; the shards' directories combine with `slowfast eval merge`"),
            new("endpoint", "URL", "ask a running `slowfast serve` (or any OpenAI-compatible server taking video_url) instead of loading the model"),
            new("api-key", "KEY", "bearer token for --endpoint"),
            new("inline-media", null, "with --endpoint, send videos as data: URLs (default: file:// URLs; start the server with --media-root DATA)"),
            PrecisionOption.Spec,
            new("max-new-tokens", "N", "longest answer; the reference's wrapper generates greedily up to 256 tokens for every task, whatever the task files say", "256"),
            new("time-limit", "SECONDS", "longest one sample may take; over it, it is logged as failed and scored wrong", "300"),
        ],
        Run,
        Positional: "merge DIR...", PositionalDescription: "`merge` and the shards' output directories: combine them into --out");

    private static int Run(ParsedArgs a)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        var err = Console.Error;
        if (a.Positionals.Count > 0)
        {
            if (a.Positionals[0] != "merge") throw new UsageError($"eval: unexpected argument '{a.Positionals[0]}' (the only sub-command is merge)");
            if (a.Positionals.Count < 2) throw new UsageError("eval merge: give the shards' output directories");
            var merged = EvalRunner.Merge(a.Positionals.Skip(1).ToList(), a.Required("out"), err);
            PrintSummary(merged);
            return 0;
        }

        string task = a.Required("task");
        var shard = a.Has("shard") ? Shard.Parse(a.Required("shard")) : Shard.Whole;
        string? endpoint = a.String("endpoint");
        if (endpoint == null && (a.Has("api-key") || a.Flag("inline-media")))
            throw new UsageError("eval: --api-key and --inline-media go with --endpoint");
        if (endpoint != null && a.Has("precision") && a.String("precision") != "auto")
            throw new UsageError("eval: --precision is the server's with --endpoint");
        var precision = PrecisionOption.Parse(a);
        if (endpoint == null) PrecisionOption.Warn(precision, err);
        string? model = endpoint != null ? a.String("model") : ModelArgument.Resolve(a.String("model") ?? SlowFast.Hub.KnownModels.Default);
        var options = new EvalRunOptions
        {
            Task = task,
            DataDir = a.Required("data"),
            OutDir = a.String("out") ?? (shard.IsWhole ? $"eval-{task}" : $"eval-{task}-shard-{shard.Index}-of-{shard.Count}"),
            Model = model,
            Frames = a.IntOrNull("frames", 1, Media.VideoOptions.MaxFrames),
            Limit = a.IntOrNull("limit", 1),
            Resume = a.Flag("resume"),
            Shard = shard,
            Endpoint = endpoint,
            ApiKey = a.String("api-key"),
            InlineMedia = a.Flag("inline-media"),
            Precision = precision,
            MaxNewTokens = a.Int("max-new-tokens", 1, 1_000_000),
            SampleTimeLimit = TimeSpan.FromSeconds(a.Double("time-limit", 1, 86400)),
        };
        var results = EvalRunner.Run(options, err, cancel.Token);
        err.WriteLine($"results   {Path.Combine(options.OutDir, EvalResults.JsonFileName)}, {Path.Combine(options.OutDir, EvalResults.MarkdownFileName)}");
        PrintSummary(results);
        return 0;
    }

    /// <summary>The headline on stdout: task, score, answered and failed counts, seconds per sample.</summary>
    private static void PrintSummary(System.Text.Json.Nodes.JsonObject r)
    {
        var score = r["score"]!;
        var timing = r["timing"]!;
        Console.Out.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{r["task"]}: {score["overall"]!.GetValue<double>():F1} ({score["correct"]} correct of {score["counted"]} counted; {r["answered"]}/{r["samples"]} answered, {r["failed"]} failed; " +
            $"{(timing["seconds_per_sample"] is { } s ? s.GetValue<double>().ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "n/a")} s/sample)"));
    }
}
