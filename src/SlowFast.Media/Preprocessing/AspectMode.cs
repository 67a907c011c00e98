namespace SlowFast.Media;

/// <summary>How a non-square frame becomes a square model input.</summary>
public enum AspectMode
{
    /// <summary>Resize the shorter side to the input size, then centre-crop (the CLIP processor's default; used for video).</summary>
    Crop,
    /// <summary>The reference's <c>image_aspect_ratio = "pad"</c>: first expand to a square filled with the mean colour.</summary>
    Pad,
}
