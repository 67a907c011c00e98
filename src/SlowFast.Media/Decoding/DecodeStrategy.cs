namespace SlowFast.Media;

/// <summary>How the decoder reaches the sampled frames.</summary>
public enum DecodeStrategy
{
    /// <summary>Seek when the file has timestamps and keyframes to seek to; otherwise decode from the start.</summary>
    Auto,
    /// <summary>One pass from the first frame, keeping only the sampled ones (what the reference's PyAV reader does).</summary>
    Sequential,
    /// <summary>Seek to the keyframe before each group of nearby sampled frames and decode from there.</summary>
    Seek,
}
