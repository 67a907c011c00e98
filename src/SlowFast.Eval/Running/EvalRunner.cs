using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using SlowFast.Eval.Tasks;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Engine;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Eval.Running;

/// <summary>
/// Runs one task (or one shard of it): loads the samples, asks the model about each (the questions about one video
/// one after another, so its encoding is reused), appends every answer to answers.jsonl as it comes, and finally
/// writes results.json and results.md. A sample that fails (missing or undecodable video, time limit, any error) is
/// logged with its error and scored wrong; the run goes on. Progress with an ETA goes to <c>log</c>.
/// </summary>
public static class EvalRunner
{
    public static JsonObject Run(EvalRunOptions options, TextWriter log, CancellationToken cancel = default) =>
        Run(options, log, cancel, null);

    /// <param name="answerer">Asks the questions instead of the model or endpoint the options name (tests).</param>
    internal static JsonObject Run(EvalRunOptions options, TextWriter log, CancellationToken cancel, Func<IAnswerer>? answerer)
    {
        var task = TaskCatalog.Get(options.Task);
        var samples = task.Load(options.DataDir);
        if (samples.Count == 0) throw new UserError($"{options.DataDir}: the {task.Name} annotations have no samples");
        var duplicate = samples.GroupBy(s => s.Id, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new UserError($"{options.DataDir}: sample id '{duplicate.Key}' occurs {duplicate.Count()} times");
        if (options.Limit is { } limit) samples = samples.Take(limit).ToList();
        var mine = options.Shard.Select(samples);

        // Without a local model the frame count is not in any config: the released checkpoints' 64.
        SlowFastConfig? config = options.Endpoint == null
            ? SlowFastConfig.Load(options.Model ?? throw new UserError("--model is required (or --endpoint)"))
            : null;
        var processor = config != null ? new SlowFastProcessor(config) : null;
        int frames = options.Frames ?? processor?.DefaultFrames ?? SlowFastProcessor.FallbackFrames;
        var manifest = new RunManifest
        {
            Task = task.Name,
            Model = options.Endpoint != null ? options.Endpoint + (options.Model != null ? " " + options.Model : "") : Path.GetFullPath(options.Model!),
            Frames = frames,
            Fps = options.Fps,
            MaxNewTokens = options.MaxNewTokens,
            Precision = options.Endpoint != null ? "server" : MatMul.EffectiveName(options.Precision),
            Limit = options.Limit,
            TaskSamples = samples.Count,
            Samples = mine.Count,
            Shard = options.Shard,
        };

        Directory.CreateDirectory(options.OutDir);
        string logPath = Path.Combine(options.OutDir, AnswerLog.FileName);
        var done = CheckOutputDirectory(options, manifest, logPath);
        manifest.Write(options.OutDir);

        var videoOptions = (processor?.VideoOptionsFor(frames) ?? new VideoOptions { Frames = frames }) with
        {
            Sampling = SamplingMode.Fps,
            TargetFps = options.Fps,
        };
        // The questions about one video one after another, videos in the order the task first names them.
        var todo = mine.GroupBy(m => m.Sample.Video, StringComparer.Ordinal).SelectMany(g => g)
            .Where(m => !done.Contains(m.Sample.Id)).ToList();
        log.WriteLine($"eval      {task.Name}: {samples.Count} samples{(options.Shard.IsWhole ? "" : $", shard {options.Shard}: {mine.Count}")}, " +
                      $"{mine.Count - todo.Count} already answered, {todo.Count} to go; {frames} frames at {options.Fps.ToString(CultureInfo.InvariantCulture)} fps, " +
                      $"greedy, {options.MaxNewTokens} new tokens");

        if (todo.Count > 0)
        {
            using var asker = answerer?.Invoke() ?? CreateAnswerer(options);
            log.WriteLine($"model     {asker.Description}");
            using var answers = AnswerLog.OpenForAppend(logPath);
            var progress = new EvalProgress(log, todo.Count);
            var videos = new LastVideo();
            foreach (var (index, sample) in todo)
            {
                cancel.ThrowIfCancellationRequested();
                var record = AnswerOne(task, options, videoOptions, asker, videos, index, sample, cancel);
                answers.Append(record);
                progress.Report(record);
            }
        }

        var mineIds = mine.Select(m => m.Sample.Id).ToHashSet(StringComparer.Ordinal);
        var records = AnswerLog.Read(logPath).Where(r => mineIds.Contains(r.Id)).ToList();
        var results = EvalResults.Compute(task, [manifest], records);
        EvalResults.Write(options.OutDir, results);
        EvalResults.WriteSubmission(task, options.OutDir, records);
        return results;
    }

    /// <summary>The ids answered already (--resume), after checking the directory belongs to this run.</summary>
    private static HashSet<string> CheckOutputDirectory(EvalRunOptions options, RunManifest manifest, string logPath)
    {
        var records = AnswerLog.Read(logPath);
        if (records.Count > 0 && !options.Resume)
            throw new UserError($"{options.OutDir}: already holds {records.Count} answers; add --resume to continue that run, or choose another --out");
        if (File.Exists(Path.Combine(options.OutDir, RunManifest.FileName)) && options.Resume)
        {
            var previous = RunManifest.Read(options.OutDir);
            if (previous.Settings != manifest.Settings || previous.Shard != manifest.Shard)
                throw new UserError($"{options.OutDir}: --resume of a different run (it was {previous.Settings}, shard {previous.Shard}; " +
                                    $"this is {manifest.Settings}, shard {manifest.Shard})");
        }
        return records.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
    }

    private static IAnswerer CreateAnswerer(EvalRunOptions options)
    {
        if (options.Endpoint != null)
            return new EndpointAnswerer(options.Endpoint, options.Model, options.MaxNewTokens, options.InlineMedia, options.ApiKey,
                options.SampleTimeLimit + TimeSpan.FromSeconds(30));
        var model = SlowFastModel.Load(options.Model!, engine: new EngineOptions { DefaultPrecision = options.Precision });
        return new LocalAnswerer(model, options.MaxNewTokens, options.Precision);
    }

    /// <summary>One sample from video to scored record; every failure becomes a failed record, except cancellation of the run.</summary>
    private static AnswerRecord AnswerOne(EvalTask task, EvalRunOptions options, VideoOptions videoOptions, IAnswerer answerer,
        LastVideo videos, int index, EvalSample sample, CancellationToken cancel)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        limit.CancelAfter(options.SampleTimeLimit);
        var clock = Stopwatch.StartNew();
        string prompt = "";
        var record = new AnswerRecord
        {
            Id = sample.Id, Index = index, Video = sample.Video, Prompt = "", Output = "", Gold = sample.Gold, Correct = false,
            Categories = sample.Categories, Frames = videoOptions.Frames,
        };
        try
        {
            var video = videos.Open(options.DataDir, sample, videoOptions, limit.Token);
            var prepared = task.WithVideoFacts(sample, video.Facts);
            prompt = task.Prompt(prepared);
            var answer = answerer.AnswerAsync(video, prompt, limit.Token).GetAwaiter().GetResult();
            string? parsed = task.ExtractAnswer(answer.Text, prepared);
            return record with
            {
                Prompt = prompt, Output = answer.Text, Answer = parsed, Correct = task.IsCorrect(parsed, prepared),
                Frames = video.FrameFiles?.Count ?? videoOptions.Frames, VideoReused = answer.VideoReused,
                Timings = answer.Timings, Tokens = answer.Tokens,
            };
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            return Failed(FailureKind.TimedOut, $"over the time limit of {options.SampleTimeLimit.TotalSeconds:F0} s per sample");
        }
        catch (VideoProblem e)
        {
            return Failed(e.Kind, e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Failed(FailureKind.Error, e is UserError ? e.Message : $"{e.GetType().Name}: {e.Message}");
        }

        AnswerRecord Failed(string kind, string message) => record with
        {
            Prompt = prompt, Error = message.ReplaceLineEndings(" "), ErrorKind = kind,
            Timings = new SampleTimings(null, null, null, null, clock.Elapsed.TotalSeconds),
        };
    }

    /// <summary>
    /// <c>slowfast eval merge</c>: the answer logs of the N shards of one run (all of them, each complete) into
    /// <paramref name="outDir"/>, with the results an unsharded run gives.
    /// </summary>
    public static JsonObject Merge(IReadOnlyList<string> dirs, string outDir, TextWriter log)
    {
        if (dirs.Count == 0) throw new UserError("merge: give the shards' output directories");
        var runs = dirs.Select(d => (Dir: d, Manifest: RunManifest.Read(d))).OrderBy(r => r.Manifest.Shard.Index).ToList();
        var first = runs[0].Manifest;
        foreach (var (dir, m) in runs)
            if (m.Settings != first.Settings || m.Shard.Count != first.Shard.Count)
                throw new UserError($"{dir}: is a shard of a different run ({m.Settings}, shard {m.Shard}; {runs[0].Dir} has {first.Settings}, shard {first.Shard})");
        var seen = runs.GroupBy(r => r.Manifest.Shard.Index).FirstOrDefault(g => g.Count() > 1);
        if (seen != null) throw new UserError($"shard {seen.Key}/{first.Shard.Count} is given twice ({string.Join(", ", seen.Select(r => r.Dir))})");
        var missing = Enumerable.Range(0, first.Shard.Count).Except(runs.Select(r => r.Manifest.Shard.Index)).ToList();
        if (missing.Count > 0) throw new UserError($"shard(s) {string.Join(", ", missing.Select(i => $"{i}/{first.Shard.Count}"))} missing");

        var records = new List<AnswerRecord>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (dir, m) in runs)
        {
            var shardRecords = AnswerLog.Read(Path.Combine(dir, AnswerLog.FileName));
            if (shardRecords.Count != m.Samples)
                throw new UserError($"{dir}: shard {m.Shard} is incomplete ({shardRecords.Count} of {m.Samples} answered); finish it with --resume");
            foreach (var r in shardRecords)
                if (!ids.Add(r.Id)) throw new UserError($"{dir}: sample '{r.Id}' is also answered in another shard");
            records.AddRange(shardRecords);
        }
        if (records.Count != first.TaskSamples)
            throw new UserError($"the shards hold {records.Count} answers but the run has {first.TaskSamples} samples");

        var task = TaskCatalog.Get(first.Task);
        Directory.CreateDirectory(outDir);
        AnswerLog.Write(Path.Combine(outDir, AnswerLog.FileName), records.OrderBy(r => r.Index));
        (first with { Shard = Shard.Whole, Samples = first.TaskSamples, Model = string.Join(" | ", runs.Select(r => r.Manifest.Model).Distinct()) }).Write(outDir);
        var results = EvalResults.Compute(task, runs.Select(r => r.Manifest).ToList(), records);
        EvalResults.Write(outDir, results);
        EvalResults.WriteSubmission(task, outDir, records);
        log.WriteLine($"merge     {runs.Count} shards, {records.Count} answers -> {outDir}");
        return results;
    }
}

/// <summary>The last video checked: the next question about the same video (they come together) is not probed again.</summary>
internal sealed class LastVideo
{
    private (string Video, double? Start, double? End, EvalVideo Checked)? _last;

    public EvalVideo Open(string dataDir, EvalSample sample, VideoOptions options, CancellationToken cancel)
    {
        if (_last is { } l && l.Video == sample.Video && l.Start == sample.Start && l.End == sample.End) return l.Checked;
        _last = null;
        var video = EvalVideo.Open(dataDir, sample, options, cancel);
        _last = (sample.Video, sample.Start, sample.End, video);
        return video;
    }
}

/// <summary>One line per answered sample on stderr: count, percent, seconds per sample, ETA, running accuracy, the answer.</summary>
internal sealed class EvalProgress(TextWriter log, int total)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _done, _correct, _failed;

    public void Report(AnswerRecord r)
    {
        _done++;
        if (r.Correct) _correct++;
        if (r.Failed) _failed++;
        double perSample = _clock.Elapsed.TotalSeconds / _done;
        var eta = TimeSpan.FromSeconds(perSample * (total - _done));
        string outcome = r.Failed ? $"FAILED ({r.ErrorKind}: {r.Error})" : $"{r.Answer ?? "-"} (gold {r.Gold}){(r.Correct ? " right" : "")}";
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"[{_done}/{total}] {100.0 * _done / total:F1}% {perSample:F1} s/sample eta {Format(eta)} acc {100.0 * _correct / _done:F1}%{(_failed > 0 ? $" failed {_failed}" : "")} | {r.Id}: {outcome}"));
    }

    private static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";
}
