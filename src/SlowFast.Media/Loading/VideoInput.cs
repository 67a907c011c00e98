namespace SlowFast.Media;

/// <summary>
/// A video (or image) as the model sees it: pixel values [T, 3, S, S] (normalised, channels first),
/// which frames they came from, and the facts the reference puts in its time instruction.
/// </summary>
public sealed class VideoInput
{
    /// <summary>Row-major [T, 3, S, S].</summary>
    public required float[] PixelValues { get; init; }
    public required int FrameCount { get; init; }
    public required int Size { get; init; }
    /// <summary>Source frame number of each sampled frame (presentation order from the start).</summary>
    public required long[] FrameIndices { get; init; }
    /// <summary>Presentation time of each sampled frame, seconds from the start.</summary>
    public required double[] Timestamps { get; init; }
    /// <summary>Frames in the video (or in the --start/--end range when one was given).</summary>
    public required long TotalFrames { get; init; }
    /// <summary>Average frame rate; 0 for a still image.</summary>
    public required double FrameRate { get; init; }
    /// <summary>Duration of the video in seconds.</summary>
    public required double Duration { get; init; }
    public required string SourcePath { get; init; }
    /// <summary>"uniform", "fps" or "image".</summary>
    public required string SamplingName { get; init; }
    public required AspectMode Aspect { get; init; }
    /// <summary>The reference's "Time: ...s; Time interval between frame ...s; video tokens:" string (empty for images).</summary>
    public required string TimeInstruction { get; init; }

    public int FrameLength => 3 * Size * Size;
    public Span<float> Frame(int t) => PixelValues.AsSpan(t * FrameLength, FrameLength);
}
