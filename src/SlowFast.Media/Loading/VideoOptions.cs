namespace SlowFast.Media;

/// <summary>What to sample from a video and how to preprocess it.</summary>
public sealed record VideoOptions
{
    /// <summary>Frames to sample (the cap, in <see cref="SamplingMode.Fps"/> mode).</summary>
    public int Frames { get; init; } = 64;
    /// <summary>Square model input size S (576 for ConvNeXt-XXL).</summary>
    public int Size { get; init; } = 576;
    public SamplingMode Sampling { get; init; } = SamplingMode.Uniform;
    /// <summary>Target rate for <see cref="SamplingMode.Fps"/> (the reference's lmms-eval default is 2; its reader's default is 1).</summary>
    public double TargetFps { get; init; } = 1;
    /// <summary>Only frames at or after this many seconds.</summary>
    public double? Start { get; init; }
    /// <summary>Only frames at or before this many seconds.</summary>
    public double? End { get; init; }
    /// <summary>How the frames of a video become square.</summary>
    public AspectMode Aspect { get; init; } = AspectMode.Crop;
    /// <summary>
    /// How a file that turns out to be a still image becomes square; null: <see cref="Aspect"/>. The
    /// reference treats images and videos differently (image_aspect_ratio applies to images only), so
    /// a model's processor sets both and a still image given as a video is prepared like an image.
    /// </summary>
    public AspectMode? ImageAspect { get; init; }
    public DecodeStrategy Strategy { get; init; } = DecodeStrategy.Auto;
    public MediaLimits Limits { get; init; } = MediaLimits.Default;

    /// <summary>
    /// At most this many frames per input: the paper analyses 1,536 frames and more. Frames stream
    /// through the vision tower one at a time, so what limits a request is the memory of its tokens,
    /// which the model checks up front (<c>MemoryEstimate</c>); this bound only stops absurd requests.
    /// </summary>
    public const int MaxFrames = 4096;
}
