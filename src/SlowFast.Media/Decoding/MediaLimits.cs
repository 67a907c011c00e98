namespace SlowFast.Media;

/// <summary>
/// Guards against hostile or broken inputs (the defaults admit 8K video and 16K-wide panoramas),
/// and the FFmpeg programs to run.
/// </summary>
public sealed record MediaLimits
{
    /// <summary>Largest accepted width or height (after rotation).</summary>
    public int MaxSide { get; init; } = 16384;
    /// <summary>Largest accepted picture area; one RGB frame of this size is held in memory at a time.</summary>
    public long MaxPixels { get; init; } = 8192L * 8192;
    /// <summary>A decoder or probe that produces no output for this long is killed.</summary>
    public TimeSpan Inactivity { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The ffmpeg program (default: SLOWFAST_FFMPEG, or "ffmpeg" on PATH).</summary>
    public string Ffmpeg { get; init; } = ToolProcess.FfmpegPath;
    /// <summary>The ffprobe program (default: SLOWFAST_FFPROBE, or "ffprobe" on PATH).</summary>
    public string Ffprobe { get; init; } = ToolProcess.FfprobePath;

    public static MediaLimits Default { get; } = new();
}
