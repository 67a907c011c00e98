namespace SlowFast.Media;

/// <summary>Guards against hostile or broken inputs. The defaults admit 8K video and 16K-wide panoramas.</summary>
public sealed record MediaLimits
{
    /// <summary>Largest accepted width or height (after rotation).</summary>
    public int MaxSide { get; init; } = 16384;
    /// <summary>Largest accepted picture area; one RGB frame of this size is held in memory at a time.</summary>
    public long MaxPixels { get; init; } = 8192L * 8192;
    /// <summary>A decoder or probe that produces no output for this long is killed.</summary>
    public TimeSpan Inactivity { get; init; } = TimeSpan.FromSeconds(60);

    public static MediaLimits Default { get; } = new();
}
