using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Eval.Tasks;

namespace SlowFast.Eval.Running;

/// <summary>Why a sample has no answer (its output is then empty and it is scored wrong).</summary>
public static class FailureKind
{
    public const string MissingVideo = "missing_video";
    public const string UndecodableVideo = "undecodable_video";
    public const string TimedOut = "timeout";
    public const string Error = "error";
}

/// <summary>Seconds spent on one sample: reading frames, the vision tower, the prompt (prefill), the answer tokens, and all of it.</summary>
/// <remarks>With <c>--endpoint</c> only <see cref="Total"/> is known; the split is null.</remarks>
public sealed record SampleTimings(double? Video, double? Vision, double? Prefill, double? Decode, double Total);

/// <summary>Token counts of one sample: prompt positions (fast visual tokens included), answer tokens, prompt positions reused from an earlier question.</summary>
public sealed record SampleTokens(int Prompt, int Generated, int Reused);

/// <summary>
/// One line of answers.jsonl: everything about one sample, written as soon as it is answered. Holds what scoring
/// needs (gold, categories, raw output), so results can be recomputed and shards merged from the logs alone.
/// </summary>
public sealed record AnswerRecord
{
    public required string Id { get; init; }
    /// <summary>Position of the sample in the task's (limited, unsharded) list: the order of the merged log.</summary>
    public required int Index { get; init; }
    public required string Video { get; init; }
    public required string Prompt { get; init; }
    public required string Output { get; init; }
    public string? Answer { get; init; }
    public required string Gold { get; init; }
    public required bool Correct { get; init; }
    public string? Error { get; init; }
    public string? ErrorKind { get; init; }
    public IReadOnlyDictionary<string, string> Categories { get; init; } = new Dictionary<string, string>();
    public int Frames { get; init; }
    public bool VideoReused { get; init; }
    public SampleTimings? Timings { get; init; }
    public SampleTokens? Tokens { get; init; }

    public bool Failed => ErrorKind != null;

    public ScoredSample ToScored() => new(Id, Categories, Output, Answer, Correct, Failed);

    public JsonObject ToJson()
    {
        var categories = new JsonObject();
        foreach (var (name, value) in Categories) categories[name] = value;
        var o = new JsonObject
        {
            ["id"] = Id,
            ["index"] = Index,
            ["video"] = Video,
            ["prompt"] = Prompt,
            ["output"] = Output,
            ["answer"] = Answer,
            ["gold"] = Gold,
            ["correct"] = Correct,
            ["error"] = Error,
            ["error_kind"] = ErrorKind,
            ["categories"] = categories,
            ["frames"] = Frames,
            ["video_reused"] = VideoReused,
        };
        if (Timings is { } t)
            o["timings"] = new JsonObject
            {
                ["video_s"] = Round(t.Video), ["vision_s"] = Round(t.Vision), ["prefill_s"] = Round(t.Prefill),
                ["decode_s"] = Round(t.Decode), ["total_s"] = Round(t.Total),
            };
        if (Tokens is { } k)
            o["tokens"] = new JsonObject { ["prompt"] = k.Prompt, ["generated"] = k.Generated, ["reused"] = k.Reused };
        return o;
    }

    private static double? Round(double? seconds) => seconds is { } s ? Math.Round(s, 4) : null;

    public static AnswerRecord FromJson(JsonObject o)
    {
        var categories = new Dictionary<string, string>();
        if (o["categories"] is JsonObject c)
            foreach (var (name, value) in c) categories[name] = value?.GetValue<string>() ?? "";
        SampleTimings? timings = o["timings"] is JsonObject t
            ? new SampleTimings(Seconds(t, "video_s"), Seconds(t, "vision_s"), Seconds(t, "prefill_s"), Seconds(t, "decode_s"), Seconds(t, "total_s") ?? 0)
            : null;
        SampleTokens? tokens = o["tokens"] is JsonObject k
            ? new SampleTokens(k["prompt"]?.GetValue<int>() ?? 0, k["generated"]?.GetValue<int>() ?? 0, k["reused"]?.GetValue<int>() ?? 0)
            : null;
        return new AnswerRecord
        {
            Id = Text(o, "id") ?? throw new FormatException("a record has no id"),
            Index = o["index"]?.GetValue<int>() ?? throw new FormatException("a record has no index"),
            Video = Text(o, "video") ?? "",
            Prompt = Text(o, "prompt") ?? "",
            Output = Text(o, "output") ?? "",
            Answer = Text(o, "answer"),
            Gold = Text(o, "gold") ?? "",
            Correct = o["correct"]?.GetValue<bool>() ?? false,
            Error = Text(o, "error"),
            ErrorKind = Text(o, "error_kind"),
            Categories = categories,
            Frames = o["frames"]?.GetValue<int>() ?? 0,
            VideoReused = o["video_reused"]?.GetValue<bool>() ?? false,
            Timings = timings,
            Tokens = tokens,
        };
    }

    private static string? Text(JsonObject o, string name) => o[name]?.GetValue<string>();
    private static double? Seconds(JsonObject o, string name) => o[name]?.GetValue<double>();
}

/// <summary>
/// answers.jsonl: one <see cref="AnswerRecord"/> a line, appended and flushed as each sample is answered, so a run
/// killed at any point loses at most the line being written. Reading drops a last line cut short by such a kill
/// (and opening for append cuts it off the file first).
/// </summary>
public sealed class AnswerLog : IDisposable
{
    public const string FileName = "answers.jsonl";

    private readonly FileStream _stream;

    private AnswerLog(FileStream stream) => _stream = stream;

    /// <summary>Every complete record of <paramref name="path"/> (none when it does not exist).</summary>
    public static List<AnswerRecord> Read(string path) => ReadWithLength(path).Records;

    private static (List<AnswerRecord> Records, long GoodLength) ReadWithLength(string path)
    {
        var records = new List<AnswerRecord>();
        if (!File.Exists(path)) return (records, 0);
        byte[] bytes = File.ReadAllBytes(path);
        long good = 0;
        int start = 0, lineNumber = 0;
        while (start < bytes.Length)
        {
            int end = Array.IndexOf(bytes, (byte)'\n', start);
            lineNumber++;
            // No newline: the write was cut off; that sample counts as not done and runs again.
            if (end < 0) break;
            var line = bytes.AsSpan(start, end - start);
            if (line.Trim((byte)' ').Length > 0)
            {
                if (!TryParse(line, out var record))
                    throw new UserError($"{path}: line {lineNumber} is not an answer record; the log is damaged (move it away to start over)");
                records.Add(record!);
            }
            start = end + 1;
            good = start;
        }
        return (records, good);
    }

    private static bool TryParse(ReadOnlySpan<byte> line, out AnswerRecord? record)
    {
        record = null;
        try
        {
            if (JsonNode.Parse(line) is not JsonObject o) return false;
            record = AnswerRecord.FromJson(o);
            return true;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Opens <paramref name="path"/> for appending, first cutting off a last line left incomplete by a kill.</summary>
    public static AnswerLog OpenForAppend(string path)
    {
        var (_, good) = ReadWithLength(path);
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read);
        stream.SetLength(good);
        stream.Seek(0, SeekOrigin.End);
        return new AnswerLog(stream);
    }

    /// <summary>Appends one record as one line and flushes it to the operating system.</summary>
    public void Append(AnswerRecord record)
    {
        byte[] line = Encoding.UTF8.GetBytes(record.ToJson().ToJsonString(JsonOptions) + "\n");
        _stream.Write(line);
        _stream.Flush(flushToDisk: false);
    }

    /// <summary>Writes <paramref name="records"/> as a new log (merge).</summary>
    public static void Write(string path, IEnumerable<AnswerRecord> records)
    {
        using var log = new AnswerLog(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read));
        foreach (var r in records) log.Append(r);
    }

    internal static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public void Dispose() => _stream.Dispose();
}
