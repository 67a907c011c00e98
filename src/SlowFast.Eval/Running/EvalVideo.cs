using SlowFast.Eval.Tasks;
using SlowFast.Media;

namespace SlowFast.Eval.Running;

/// <summary>A sample's video could not be used: missing or undecodable (<see cref="FailureKind"/>).</summary>
public sealed class VideoProblem(string kind, string message) : Exception(message)
{
    public string Kind { get; } = kind;
}

/// <summary>
/// A sample's visual input, checked: a video file (probed with ffprobe, so an undecodable file is found before any
/// work) or a folder of frame images (MVBench's episodic reasoning), with the frames to use and how to sample it:
/// the reference's lmms-eval wrapper reads every video at <see cref="VideoOptions.TargetFps"/> = 2 frames a second,
/// at most N frames (thinned evenly when there are more), and from a frame folder takes N frames spread evenly
/// (floor(linspace)) when it has more than N, else all of them.
/// </summary>
public sealed class EvalVideo
{
    /// <summary>The reference's sampling rate (its wrapper's fps argument, default 2 and never changed by the scripts).</summary>
    public const double ReferenceFps = 2;

    /// <summary>Full path of the file or frame folder.</summary>
    public required string Path { get; init; }
    /// <summary>The frame images to use, in order, when <see cref="Path"/> is a frame folder; null for a video file.</summary>
    public IReadOnlyList<string>? FrameFiles { get; init; }
    public required VideoFacts Facts { get; init; }
    /// <summary>Sampling of a video file (fps, cap, time range); unused for a frame folder.</summary>
    public required VideoOptions Options { get; init; }
    /// <summary>What identifies the pixels: the same key, the same visual tokens (questions about one video share them).</summary>
    public string Key => $"{Path}\n{Options.Start}\n{Options.End}\n{Options.Frames}";

    /// <summary>Finds and checks the sample's video; a <see cref="VideoProblem"/> says why it cannot be used.</summary>
    public static EvalVideo Open(string dataDir, EvalSample sample, VideoOptions options, CancellationToken cancel)
    {
        string path = System.IO.Path.GetFullPath(System.IO.Path.Combine(dataDir, sample.Video));
        options = options with { Start = sample.Start, End = sample.End };
        if (Directory.Exists(path))
        {
            // The reference lists the folder (os.listdir: no order) for .jpg and .png files; here in name order.
            var files = Directory.EnumerateFiles(path)
                .Where(f => f.EndsWith(".jpg", StringComparison.Ordinal) || f.EndsWith(".png", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new VideoProblem(FailureKind.UndecodableVideo, $"{path}: a frame folder with no .jpg or .png images");
            var chosen = files.Count > options.Frames ? FrameSampler.Uniform(files.Count, options.Frames).Select(i => files[(int)i]).ToList() : files;
            return new EvalVideo { Path = path, FrameFiles = chosen, Facts = new VideoFacts(path, files.Count, 0), Options = options };
        }
        if (!File.Exists(path)) throw new VideoProblem(FailureKind.MissingVideo, $"{path}: video not found");
        VideoProbe probe;
        try { probe = MediaLoader.Probe(path, options.Limits, cancel); }
        catch (UserError e) { throw new VideoProblem(FailureKind.UndecodableVideo, e.Message); }
        if (probe.FrameCount < 1) throw new VideoProblem(FailureKind.UndecodableVideo, $"{path}: no video frames");
        return new EvalVideo { Path = path, Facts = new VideoFacts(path, probe.FrameCount, probe.FrameRate), Options = options };
    }

    /// <summary>Decodes and preprocesses the frames: [T, 3, S, S] CLIP-normalized pixels.</summary>
    public (float[] Pixels, int Frames) Load(CancellationToken cancel)
    {
        try
        {
            if (FrameFiles == null)
            {
                var input = MediaLoader.LoadVideo(Path, Options, cancel);
                return (input.PixelValues, input.FrameCount);
            }
            int length = 3 * Options.Size * Options.Size;
            var pixels = new float[FrameFiles.Count * length];
            for (int i = 0; i < FrameFiles.Count; i++)
            {
                // Each frame is preprocessed as the reference's image processor does a video frame: resize and centre crop.
                var frame = MediaLoader.LoadImage(FrameFiles[i], Options.Size, AspectMode.Crop, Options.Limits, cancel);
                frame.PixelValues.AsSpan(0, length).CopyTo(pixels.AsSpan(i * length));
            }
            return (pixels, FrameFiles.Count);
        }
        catch (UserError e)
        {
            throw new VideoProblem(FailureKind.UndecodableVideo, e.Message);
        }
    }
}
