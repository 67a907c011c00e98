using System.Globalization;
using System.Text.Json;

namespace SlowFast.Media;

/// <summary>Runs ffprobe and turns its report into a <see cref="VideoProbe"/>, or a one-line <see cref="UserError"/>.</summary>
public static class MediaProber
{
    private static readonly string[] StillImageFormats = ["image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "ppm_pipe", "pgm_pipe", "qoi_pipe"];

    public static VideoProbe Probe(string path, MediaLimits? limits = null, CancellationToken cancel = default)
    {
        limits ??= MediaLimits.Default;
        CheckFile(path);

        // One ffprobe run: the video streams, the container, and every video packet's pts/dts/flags
        // (demuxing only, no decoding) for the frame index.
        string json = RunProbe(path, ["-v", "error", "-print_format", "json=compact=1", "-select_streams", "v", "-show_format", "-show_streams",
            "-show_entries", "packet=stream_index,pts,dts,flags", .. ToolProcess.InputArguments(path)], limits, cancel);
        return ParseReport(path, json, limits);
    }

    /// <summary>
    /// Reads ffprobe's JSON report on <paramref name="path"/>. The report describes a file a stranger made
    /// (tags, rotation, packet times are theirs), so every value is checked; anything unusable is a <see cref="UserError"/>.
    /// </summary>
    internal static VideoProbe ParseReport(string path, string json, MediaLimits limits)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException) { throw new UserError($"{path}: ffprobe gave an unreadable report"); }
        using (doc)
        {
            try { return ReadReport(path, doc.RootElement, limits); }
            catch (InvalidOperationException)
            {
                // A string holding an escaped lone surrogate ("\ud800") is refused only when it is read.
                throw new UserError($"{path}: ffprobe gave an unreadable report");
            }
        }
    }

    private static VideoProbe ReadReport(string path, JsonElement root, MediaLimits limits)
    {
        if (!Prop(root, "streams", out var streams) || streams.ValueKind != JsonValueKind.Array)
            throw new UserError($"{path}: not a video or image file FFmpeg can read");
        JsonElement? video = null;
        bool coverOnly = false;
        foreach (var s in streams.EnumerateArray())
        {
            if (Str(s, "codec_type") != "video") continue;
            if (Prop(s, "disposition", out var disp) && Int(disp, "attached_pic") == 1)
            {
                coverOnly = true;
                continue;
            }
            video = s;
            break;
        }
        if (video is null)
            throw new UserError(coverOnly ? $"{path}: has no video stream (only a cover picture)" : $"{path}: has no video stream");
        var v = video.Value;
        var format = Prop(root, "format", out var f) ? f : default;
        string formatName = format.ValueKind == JsonValueKind.Object ? Str(format, "format_name") ?? "unknown" : "unknown";
        string codec = Str(v, "codec_name") ?? "unknown";
        int streamIndex = Int(v, "index") ?? 0;
        int codedWidth = Int(v, "width") ?? 0;
        int codedHeight = Int(v, "height") ?? 0;
        if (codec == "unknown" || codedWidth <= 0 || codedHeight <= 0)
            throw new UserError($"{path}: video stream uses a codec this FFmpeg cannot decode ({Str(v, "codec_tag_string") ?? codec})");
        if (codedWidth > limits.MaxSide || codedHeight > limits.MaxSide || (long)codedWidth * codedHeight > limits.MaxPixels)
            throw new UserError($"{path}: video is {codedWidth}x{codedHeight}, larger than the {limits.MaxSide}-pixel side / {limits.MaxPixels}-pixel area limit");
        int rotation = ReadRotation(v);
        bool swap = rotation % 180 != 0;

        double startTime = ParseDouble(format.ValueKind == JsonValueKind.Object ? Str(format, "start_time") : null) ?? 0;
        double duration = ParseDouble(format.ValueKind == JsonValueKind.Object ? Str(format, "duration") : null)
                          ?? ParseDouble(Str(v, "duration")) ?? 0;
        double avgRate = ParseRational(Str(v, "avg_frame_rate")) ?? 0;
        var timeBase = ParseRational(Str(v, "time_base")) ?? 0;

        var (times, keys, hasTimestamps) = ReadFrameIndex(root, streamIndex, timeBase, startTime, avgRate);
        if (times.Length == 0)
            throw new UserError($"{path}: video stream has no frames");
        if (avgRate <= 0 && times.Length > 1 && duration > 0) avgRate = times.Length / duration;
        bool still = times.Length == 1 && StillImageFormats.Any(n => formatName.Split(',').Contains(n));

        return new VideoProbe
        {
            Path = path,
            FormatName = formatName,
            CodecName = codec,
            StreamIndex = streamIndex,
            Width = swap ? codedHeight : codedWidth,
            Height = swap ? codedWidth : codedHeight,
            Rotation = rotation,
            FrameRate = avgRate,
            Duration = duration,
            FrameTimes = times,
            IsKeyframe = keys,
            IsStillImage = still,
            StartTime = startTime,
            HasTimestamps = hasTimestamps,
        };
    }

    /// <summary>Refuses paths that are not regular, non-empty files before any program runs.</summary>
    internal static void CheckFile(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new UserError("no input file given");
        if (Directory.Exists(path)) throw new UserError($"{path}: is a directory, not a video or image file");
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        long length;
        try { length = new FileInfo(path).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UserError($"{path}: cannot read ({e.Message})"); }
        if (length == 0) throw new UserError($"{path}: file is empty (0 bytes)");
        try { using var _ = File.OpenRead(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UserError($"{path}: cannot read ({e.Message})"); }
    }

    private static string RunProbe(string path, string[] args, MediaLimits limits, CancellationToken cancel)
    {
        using var tool = new ToolProcess(limits.Ffprobe, args, limits.Inactivity, cancel);
        string output = tool.ReadAllText();
        int code = tool.WaitForExit();
        if (tool.Cancelled) throw new OperationCanceledException(cancel);
        if (tool.TimedOut) throw new UserError($"{path}: ffprobe made no progress for {limits.Inactivity.TotalSeconds:0} s and was stopped");
        if (code != 0)
        {
            string why = tool.FirstErrorLine();
            throw new UserError($"{path}: not a video or image file FFmpeg can read ({(why.Length > 0 ? ToolProcess.WithoutPrefixes(why, path) : $"ffprobe exit code {code}")})");
        }
        return output;
    }

    /// <summary>
    /// The stream's packets (pts, dts, flags) as frames in presentation order: the frame count, each
    /// frame's time and the keyframes. Packets flagged D (dropped by an edit list) are not frames.
    /// </summary>
    private static (double[] Times, bool[] Keys, bool HasTimestamps) ReadFrameIndex(JsonElement root, int streamIndex, double timeBase,
        double startTime, double avgRate)
    {
        var frames = new List<(long Ts, bool Key, int Order)>();
        bool allTimed = timeBase > 0;
        if (Prop(root, "packets", out var packets) && packets.ValueKind == JsonValueKind.Array)
            foreach (var p in packets.EnumerateArray())
            {
                if (Int(p, "stream_index") != streamIndex) continue;
                string flags = Str(p, "flags") ?? "";
                if (flags.Contains('D')) continue;
                long? pts = ParseLong(Str(p, "pts")) ?? ParseLong(Str(p, "dts"));
                if (pts is null) allTimed = false;
                frames.Add((pts ?? 0, flags.Contains('K'), frames.Count));
            }
        var times = new double[frames.Count];
        var keys = new bool[frames.Count];
        if (allTimed)
        {
            frames.Sort((a, b) => a.Ts != b.Ts ? a.Ts.CompareTo(b.Ts) : a.Order.CompareTo(b.Order));
            for (int i = 0; i < frames.Count; i++)
            {
                times[i] = frames[i].Ts * timeBase - startTime;
                keys[i] = frames[i].Key;
            }
            // Equal timestamps make "the n-th frame after a seek" ambiguous: treat as untimed.
            for (int i = 1; i < times.Length; i++)
                if (times[i] <= times[i - 1]) { allTimed = false; break; }
        }
        if (!allTimed)
        {
            double rate = avgRate > 0 ? avgRate : 25;
            for (int i = 0; i < frames.Count; i++)
            {
                times[i] = i / rate;
                keys[i] = i == 0;
            }
        }
        if (keys.Length > 0) keys[0] = true;
        return (times, keys, allTimed);
    }

    private static int ReadRotation(JsonElement v)
    {
        double? degrees = null;
        if (Prop(v, "side_data_list", out var sides) && sides.ValueKind == JsonValueKind.Array)
            foreach (var sd in sides.EnumerateArray())
                if (Prop(sd, "rotation", out var r) && r.ValueKind == JsonValueKind.Number && r.TryGetDouble(out double value) && double.IsFinite(value))
                    degrees = value;
        if (degrees is null && Prop(v, "tags", out var tags) && tags.ValueKind == JsonValueKind.Object)
            degrees = ParseDouble(Str(tags, "rotate"));
        if (degrees is null) return 0;
        int d = (int)Math.Round(degrees.Value / 90.0) * 90;
        return ((d % 360) + 360) % 360;
    }

    /// <summary>A member of an object; false for a missing member or a value that is not an object.</summary>
    private static bool Prop(JsonElement e, string name, out JsonElement value)
    {
        value = default;
        return e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out value);
    }

    /// <summary>A member that is a whole number in int range, else null.</summary>
    private static int? Int(JsonElement e, string name) =>
        Prop(e, name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : null;

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var p) ? p.ValueKind switch
        {
            JsonValueKind.String => p.GetString(),
            JsonValueKind.Number => p.GetRawText(),
            _ => null,
        } : null;

    private static double? ParseDouble(string? s) =>
        s is not null && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d : null;

    private static long? ParseLong(string? s) =>
        s is not null && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static double? ParseRational(string? s)
    {
        if (s is null) return null;
        var parts = s.Split('/');
        if (parts.Length == 2 && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var n)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d != 0)
            return n / d;
        return ParseDouble(s);
    }
}
