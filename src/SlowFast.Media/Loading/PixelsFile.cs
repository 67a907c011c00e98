using System.Globalization;
using System.Runtime.InteropServices;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Media;

/// <summary>
/// The pixels file: a safetensors file holding exactly what the vision tower is fed, so the model
/// and outside tools (e.g. the PyTorch reference) can run on the very same input.
/// Tensors: "pixel_values" F32 [T, 3, S, S], "frame_indices" I64 [T], "timestamps" F64 [T] (seconds).
/// __metadata__: format, source, sampling, size, aspect, frames, total_frames, fps, duration,
/// time_instruction (numbers in invariant culture, round-trip precision).
/// </summary>
public static class PixelsFile
{
    public const string FormatTag = "slowfast-pixels/1";

    public static void Write(string path, VideoInput input)
    {
        int t = input.FrameCount, s = input.Size;
        var specs = new List<TensorSpec>
        {
            new("pixel_values", DType.F32, [t, 3, s, s]),
            new("frame_indices", DType.I64, [t]),
            new("timestamps", DType.F64, [t]),
        };
        var metadata = new Dictionary<string, string>
        {
            ["format"] = FormatTag,
            ["source"] = input.SourcePath,
            ["sampling"] = input.SamplingName,
            ["size"] = Num(s),
            ["aspect"] = input.Aspect == AspectMode.Pad ? "pad" : "crop",
            ["frames"] = Num(t),
            ["total_frames"] = Num(input.TotalFrames),
            ["fps"] = Num(input.FrameRate),
            ["duration"] = Num(input.Duration),
            ["time_instruction"] = input.TimeInstruction,
        };
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir)) throw new UserError($"{path}: the folder {dir} does not exist");
        try
        {
            SafetensorsWriter.Write(path, specs, (spec, stream) =>
            {
                switch (spec.Name)
                {
                    case "pixel_values":
                        // In slices: one Span over the bytes of a large array would pass 2 GiB.
                        for (int i = 0; i < t; i++) stream.Write(MemoryMarshal.AsBytes(input.Frame(i)));
                        break;
                    case "frame_indices": stream.Write(MemoryMarshal.AsBytes(input.FrameIndices.AsSpan())); break;
                    case "timestamps": stream.Write(MemoryMarshal.AsBytes(input.Timestamps.AsSpan())); break;
                }
            }, metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{path}: cannot write the pixels file ({e.Message})");
        }
    }

    /// <summary>Reads and checks a pixels file (e.g. for the model's --pixels input).</summary>
    public static VideoInput Read(string path)
    {
        using var file = SafetensorsFile.Open(path);
        var pixels = Require(file, "pixel_values", DType.F32, 4);
        long t = pixels.Dim(0), s = pixels.Dim(2);
        if (pixels.Dim(1) != 3 || pixels.Dim(3) != s || t < 1 || s < 1)
            throw new UserError($"{path}: pixel_values has shape {pixels.ShapeString}; expected [T, 3, S, S]");
        if (t > VideoOptions.MaxFrames) throw new UserError($"{path}: pixel_values holds {t} frames; at most {VideoOptions.MaxFrames} are allowed");
        // A pixels file is read whole (unlike a video, which streams frame by frame).
        if (t * 3 * s * s > Array.MaxLength)
            throw new UserError($"{path}: pixel_values [{t}, 3, {s}, {s}] is too large to read at once; give the video itself (--video) to stream its frames");
        var indices = Require(file, "frame_indices", DType.I64, 1);
        var times = Require(file, "timestamps", DType.F64, 1);
        if (indices.Dim(0) != t || times.Dim(0) != t)
            throw new UserError($"{path}: frame_indices {indices.ShapeString} and timestamps {times.ShapeString} must both have {t} entries");
        var values = new float[t * 3 * s * s];
        int frameLength = (int)(3 * s * s);
        for (int i = 0; i < t; i++) pixels.ToFloat((long)i * frameLength, values.AsSpan(i * frameLength, frameLength));
        foreach (var v in values)
            if (!float.IsFinite(v)) throw new UserError($"{path}: pixel_values contains NaN or infinity");
        var meta = file.Metadata;
        return new VideoInput
        {
            PixelValues = values,
            FrameCount = (int)t,
            Size = (int)s,
            FrameIndices = indices.AsSpan<long>().ToArray(),
            Timestamps = times.AsSpan<double>().ToArray(),
            TotalFrames = ParseLong(meta, "total_frames") ?? t,
            FrameRate = ParseDouble(meta, "fps") ?? 0,
            Duration = ParseDouble(meta, "duration") ?? 0,
            SourcePath = meta.GetValueOrDefault("source") ?? path,
            SamplingName = meta.GetValueOrDefault("sampling") ?? "unknown",
            Aspect = meta.GetValueOrDefault("aspect") == "pad" ? AspectMode.Pad : AspectMode.Crop,
            TimeInstruction = meta.GetValueOrDefault("time_instruction") ?? "",
        };
    }

    private static TensorView Require(SafetensorsFile file, string name, DType dtype, int rank)
    {
        if (!file.TryGetEntry(name, out var entry)) throw new UserError($"{file.Path}: not a pixels file (no '{name}' tensor)");
        var view = file.View(entry);
        if (view.DType != dtype || view.Rank != rank)
            throw new UserError($"{file.Path}: '{name}' is {view.DType} {view.ShapeString}; expected {dtype} with {rank} dimension(s)");
        return view;
    }

    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
    private static double? ParseDouble(IReadOnlyDictionary<string, string> m, string k) =>
        m.TryGetValue(k, out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
    private static long? ParseLong(IReadOnlyDictionary<string, string> m, string k) =>
        m.TryGetValue(k, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
