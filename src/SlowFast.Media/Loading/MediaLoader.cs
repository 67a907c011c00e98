using System.Globalization;

namespace SlowFast.Media;

/// <summary>The entry points: a video or image file in, the model's pixel tensor out.</summary>
public static class MediaLoader
{
    /// <summary>ffprobe facts about the file's first video stream (see <see cref="MediaProber"/>).</summary>
    public static VideoProbe Probe(string path, MediaLimits? limits = null, CancellationToken cancel = default) =>
        MediaProber.Probe(path, limits, cancel);

    /// <summary>
    /// Picks the frames the options ask for, relative to the whole video or to the --start/--end
    /// range. Returns absolute frame indices (non-decreasing, possibly repeated) and the number of
    /// frames the formula saw.
    /// </summary>
    public static (long[] Indices, long RangeFrames) ChooseFrames(VideoProbe probe, VideoOptions options)
    {
        if (options.Frames < 1 || options.Frames > VideoOptions.MaxFrames)
            throw new UserError($"frames must be 1..{VideoOptions.MaxFrames} (got {options.Frames})");
        long first = 0, end = probe.FrameCount;
        if (options.Start is not null || options.End is not null)
        {
            double start = options.Start ?? 0, stop = options.End ?? double.PositiveInfinity;
            if (double.IsNaN(start) || double.IsNaN(stop) || start < 0 || stop < start)
                throw new UserError($"{probe.Path}: the time range {Fmt(start)}..{Fmt(stop)} s is not valid (need 0 <= start <= end)");
            var times = probe.FrameTimes;
            first = LowerBound(times, start - 1e-9);
            end = LowerBound(times, stop + 1e-9);
            if (end <= first)
                throw new UserError($"{probe.Path}: no frames between {Fmt(start)} s and {Fmt(stop)} s (the video lasts {Fmt(probe.Duration)} s)");
        }
        long total = end - first;
        long[] relative = options.Sampling switch
        {
            SamplingMode.Uniform => FrameSampler.Uniform(total, options.Frames),
            SamplingMode.Fps when probe.FrameRate > 0 => FrameSampler.AtRate(total, probe.FrameRate, options.TargetFps, options.Frames),
            SamplingMode.Fps => throw new UserError($"{probe.Path}: the frame rate is unknown, so fps sampling is not possible; use uniform sampling"),
            _ => throw new ArgumentOutOfRangeException(nameof(options)),
        };
        for (int i = 0; i < relative.Length; i++) relative[i] += first;
        return (relative, total);
    }

    /// <summary>Probes, samples, decodes and preprocesses a video (a still image gives one frame).</summary>
    public static VideoInput LoadVideo(string path, VideoOptions options, CancellationToken cancel = default)
    {
        if (options.Sampling == SamplingMode.Fps && !(options.TargetFps > 0 && double.IsFinite(options.TargetFps)))
            throw new UserError($"fps must be a positive number (got {options.TargetFps})");
        var probe = MediaProber.Probe(path, options.Limits, cancel);
        if (probe.IsStillImage) return LoadProbedImage(probe, options with { Aspect = options.ImageAspect ?? options.Aspect }, cancel);

        var (indices, rangeFrames) = ChooseFrames(probe, options);
        var preprocessor = new ClipPreprocessor(options.Size, options.Aspect);
        int frameLength = preprocessor.FrameLength;
        var pixels = AllocatePixels(path, indices.Length, frameLength);
        var timestamps = new double[indices.Length];
        int t = 0;
        foreach (var frame in FrameDecoder.Decode(probe, indices, options.Strategy, options.Limits, cancel))
        {
            preprocessor.Preprocess(frame, pixels.AsSpan(t * frameLength, frameLength));
            timestamps[t] = frame.Timestamp;
            t++;
        }
        if (t != indices.Length) throw new UserError($"{path}: decoded {t} of {indices.Length} sampled frames");

        double rate = probe.FrameRate;
        double totalTime = rate > 0 ? rangeFrames / rate : probe.Duration;
        return new VideoInput
        {
            PixelValues = pixels,
            FrameCount = indices.Length,
            Size = options.Size,
            FrameIndices = indices,
            Timestamps = timestamps,
            TotalFrames = rangeFrames,
            FrameRate = rate,
            Duration = probe.Duration,
            SourcePath = path,
            SamplingName = options.Sampling == SamplingMode.Fps ? "fps" : "uniform",
            Aspect = options.Aspect,
            TimeInstruction = TimeInstruction(totalTime, indices.Length),
        };
    }

    /// <summary>Loads a still image (or the first frame of a video) as one preprocessed frame [1, 3, S, S].</summary>
    public static VideoInput LoadImage(string path, int size = 576, AspectMode aspect = AspectMode.Crop, MediaLimits? limits = null, CancellationToken cancel = default)
    {
        var options = new VideoOptions { Frames = 1, Size = size, Aspect = aspect, Limits = limits ?? MediaLimits.Default };
        return LoadProbedImage(MediaProber.Probe(path, options.Limits, cancel), options, cancel);
    }

    private static VideoInput LoadProbedImage(VideoProbe probe, VideoOptions options, CancellationToken cancel)
    {
        var preprocessor = new ClipPreprocessor(options.Size, options.Aspect);
        var pixels = AllocatePixels(probe.Path, 1, preprocessor.FrameLength);
        int decoded = 0;
        foreach (var frame in FrameDecoder.Decode(probe, [0], DecodeStrategy.Sequential, options.Limits, cancel))
        {
            preprocessor.Preprocess(frame, pixels);
            decoded++;
        }
        if (decoded != 1) throw new UserError($"{probe.Path}: no picture could be decoded");
        return new VideoInput
        {
            PixelValues = pixels,
            FrameCount = 1,
            Size = options.Size,
            FrameIndices = [0],
            Timestamps = [0],
            TotalFrames = 1,
            FrameRate = probe.IsStillImage ? 0 : probe.FrameRate,
            Duration = probe.IsStillImage ? 0 : probe.Duration,
            SourcePath = probe.Path,
            SamplingName = "image",
            Aspect = options.Aspect,
            TimeInstruction = "",
        };
    }

    /// <summary>
    /// The reference's video description: total time = frames / average rate, rounded to 2 places,
    /// and that time over the number of sampled frames, rounded to 3, printed as Python prints floats.
    /// </summary>
    public static string TimeInstruction(double totalSeconds, int sampledFrames) =>
        $"Time: {PythonFloat.Repr(PythonFloat.Round(totalSeconds, 2))}s; " +
        $"Time interval between frame {PythonFloat.Repr(PythonFloat.Round(totalSeconds / sampledFrames, 3))}s; video tokens:";

    private static float[] AllocatePixels(string path, int frames, int frameLength)
    {
        long count = (long)frames * frameLength;
        if (count > Array.MaxLength) throw new UserError($"{path}: {frames} frames of {frameLength} values do not fit in memory; sample fewer frames");
        return new float[count];
    }

    private static long LowerBound(double[] sorted, double value)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid] < value) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    private static string Fmt(double x) => x.ToString("0.###", CultureInfo.InvariantCulture);
}
