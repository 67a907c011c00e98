using System.Text.Json.Nodes;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Eval.Running;

/// <summary>What one <c>slowfast eval</c> run does.</summary>
public sealed record EvalRunOptions
{
    /// <summary>The reference's generation for every task: its wrapper reads the task's generation_kwargs with getattr on a dict, so always its defaults: greedy, 256 new tokens.</summary>
    public const int ReferenceMaxNewTokens = 256;

    /// <summary>The reference wrapper's time limit on one generation, used here for a whole sample.</summary>
    public static readonly TimeSpan ReferenceSampleTimeLimit = TimeSpan.FromSeconds(300);

    public required string Task { get; init; }
    public required string DataDir { get; init; }
    public required string OutDir { get; init; }
    /// <summary>Checkpoint directory (local runs), or the model id sent to <see cref="Endpoint"/> (null: the server's first).</summary>
    public string? Model { get; init; }
    /// <summary>Frames per video (the cap of the 2 fps sampling); null: the checkpoint's training frame count, else 64.</summary>
    public int? Frames { get; init; }
    /// <summary>Only the task's first K samples (before sharding, so shards of a limited run merge into it).</summary>
    public int? Limit { get; init; }
    public bool Resume { get; init; }
    public Shard Shard { get; init; } = Shard.Whole;
    public string? Endpoint { get; init; }
    public string? ApiKey { get; init; }
    /// <summary>Send videos to <see cref="Endpoint"/> as data: URLs instead of file:// URLs.</summary>
    public bool InlineMedia { get; init; }
    public MatMulPrecision Precision { get; init; } = MatMul.BFloat16Supported ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32;
    public int MaxNewTokens { get; init; } = ReferenceMaxNewTokens;
    public double Fps { get; init; } = EvalVideo.ReferenceFps;
    public TimeSpan SampleTimeLimit { get; init; } = ReferenceSampleTimeLimit;
}

/// <summary>
/// run.json, written when a run starts: the settings that decide its answers. --resume refuses a directory whose
/// run.json differs, and merge refuses shards that differ.
/// </summary>
public sealed record RunManifest
{
    public const string FileName = "run.json";

    public required string Task { get; init; }
    public required string Model { get; init; }
    public required int Frames { get; init; }
    public required double Fps { get; init; }
    public required int MaxNewTokens { get; init; }
    public required string Precision { get; init; }
    public int? Limit { get; init; }
    /// <summary>The task's samples (after --limit), all shards together.</summary>
    public required int TaskSamples { get; init; }
    /// <summary>This shard's samples.</summary>
    public required int Samples { get; init; }
    public required Shard Shard { get; init; }

    /// <summary>The settings shards must share to be merged, and a resumed run must share with the one it continues.</summary>
    public string Settings => $"task {Task}, frames {Frames}, fps {Fps}, max new tokens {MaxNewTokens}, limit {Limit?.ToString() ?? "none"}, {TaskSamples} samples";

    public JsonObject ToJson() => new()
    {
        ["task"] = Task,
        ["model"] = Model,
        ["frames"] = Frames,
        ["fps"] = Fps,
        ["max_new_tokens"] = MaxNewTokens,
        ["precision"] = Precision,
        ["limit"] = Limit,
        ["task_samples"] = TaskSamples,
        ["samples"] = Samples,
        ["shard"] = Shard.ToString(),
    };

    public static RunManifest FromJson(JsonObject o, string source)
    {
        try
        {
            return new RunManifest
            {
                Task = o["task"]!.GetValue<string>(),
                Model = o["model"]!.GetValue<string>(),
                Frames = o["frames"]!.GetValue<int>(),
                Fps = o["fps"]!.GetValue<double>(),
                MaxNewTokens = o["max_new_tokens"]!.GetValue<int>(),
                Precision = o["precision"]!.GetValue<string>(),
                Limit = o["limit"]?.GetValue<int>(),
                TaskSamples = o["task_samples"]!.GetValue<int>(),
                Samples = o["samples"]!.GetValue<int>(),
                Shard = Shard.Parse(o["shard"]!.GetValue<string>()),
            };
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new UserError($"{source}: not a run.json written by slowfast eval");
        }
    }

    public static RunManifest Read(string dir)
    {
        string path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) throw new UserError($"{dir}: no {FileName} (not an eval output directory)");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (System.Text.Json.JsonException) { throw new UserError($"{path}: not valid JSON"); }
        return FromJson(node as JsonObject ?? throw new UserError($"{path}: not a JSON object"), path);
    }

    public void Write(string dir) =>
        File.WriteAllText(Path.Combine(dir, FileName), ToJson().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
}
