using System.Diagnostics;

namespace SlowFast.Media;

/// <summary>
/// The sampled frames of a visual input, handed out one at a time as the model's pixels [3, S, S]:
/// for a video each frame is decoded and preprocessed only when it is asked for, so memory stays at
/// one frame whatever the frame count (<see cref="MediaLoader.LoadVideo"/> instead holds them all).
/// Frames are read in order, each once.
/// </summary>
public sealed class FrameStream : IDisposable
{
    private readonly Func<int, Action<Span<float>>> _next;
    private readonly IDisposable? _owned;
    private readonly Stopwatch _decoding = new();

    /// <summary>Frames this stream gives.</summary>
    public int FrameCount { get; }
    /// <summary>Pixels along a side of a frame.</summary>
    public int Size { get; }
    public int FrameLength => 3 * Size * Size;
    /// <summary>Frames handed out so far.</summary>
    public int FramesRead { get; private set; }
    /// <summary>Time spent decoding and preprocessing so far.</summary>
    public TimeSpan DecodeTime => _decoding.Elapsed;
    public string SourcePath { get; }

    private FrameStream(string source, int frames, int size, Func<int, Action<Span<float>>> next, IDisposable? owned)
    {
        SourcePath = source;
        FrameCount = frames;
        Size = size;
        _next = next;
        _owned = owned;
    }

    /// <summary>Writes the next frame's pixels into <paramref name="chw"/> ([3, S, S]).</summary>
    public void ReadNext(Span<float> chw)
    {
        if (FramesRead >= FrameCount) throw new InvalidOperationException($"all {FrameCount} frames were read");
        if (chw.Length != FrameLength) throw new ArgumentException($"a frame has {FrameLength} values; got {chw.Length}", nameof(chw));
        _decoding.Start();
        try { _next(FramesRead)(chw); }
        finally { _decoding.Stop(); }
        FramesRead++;
    }

    /// <summary>
    /// A video's frames as <paramref name="options"/> sample them (uniform or fps, within --start/--end),
    /// decoded lazily. A file that turns out to be a still image gives its one frame.
    /// </summary>
    public static FrameStream OpenVideo(string path, VideoOptions options, CancellationToken cancel = default)
    {
        if (options.Sampling == SamplingMode.Fps && !(options.TargetFps > 0 && double.IsFinite(options.TargetFps)))
            throw new UserError($"fps must be a positive number (got {options.TargetFps})");
        var probe = MediaProber.Probe(path, options.Limits, cancel);
        if (probe.IsStillImage) return FromPixels(MediaLoader.LoadVideo(path, options, cancel));

        var (indices, _) = MediaLoader.ChooseFrames(probe, options);
        var preprocessor = new ClipPreprocessor(options.Size, options.Aspect);
        var frames = FrameDecoder.Decode(probe, indices, options.Strategy, options.Limits, cancel).GetEnumerator();
        return new FrameStream(path, indices.Length, options.Size, f => chw =>
        {
            if (!frames.MoveNext()) throw new UserError($"{path}: decoded {f} of {indices.Length} sampled frames");
            preprocessor.Preprocess(frames.Current, chw);
        }, frames);
    }

    /// <summary>Still images as the frames of one video, in order; each is made square with <paramref name="options"/>' aspect mode.</summary>
    public static FrameStream FromImages(IReadOnlyList<string> paths, VideoOptions options, CancellationToken cancel = default)
    {
        if (paths.Count == 0) throw new UserError("no images given");
        return new FrameStream(paths[0], paths.Count, options.Size, f => chw =>
        {
            var frame = MediaLoader.LoadImage(paths[f], options.Size, options.Aspect, options.Limits, cancel);
            frame.PixelValues.AsSpan(0, chw.Length).CopyTo(chw);
        }, null);
    }

    /// <summary>Frames already in memory (an image, a pixels file).</summary>
    public static FrameStream FromPixels(VideoInput input) =>
        new(input.SourcePath, input.FrameCount, input.Size,
            f => chw => input.PixelValues.AsSpan(f * chw.Length, chw.Length).CopyTo(chw), null);

    public void Dispose() => _owned?.Dispose();
}
