namespace SlowFast.Media;

/// <summary>
/// One decoded picture as packed RGB24 (row-major, 3 bytes per pixel, rotation applied).
/// Frames from <see cref="FrameDecoder"/> share one buffer: a frame's <see cref="Rgb"/> is valid
/// until the enumerator moves on. Call <see cref="Clone"/> to keep it.
/// </summary>
public sealed class DecodedFrame
{
    /// <summary>Frame number in presentation order, counted from the start of the video.</summary>
    public long Index { get; internal set; }
    /// <summary>Presentation time in seconds from the start of the video.</summary>
    public double Timestamp { get; internal set; }
    public int Width { get; }
    public int Height { get; }
    public byte[] Rgb { get; }

    public DecodedFrame(int width, int height, byte[] rgb, long index = 0, double timestamp = 0)
    {
        if (rgb.Length != 3L * width * height) throw new ArgumentException($"a {width}x{height} RGB frame has {3L * width * height} bytes, not {rgb.Length}");
        Width = width;
        Height = height;
        Rgb = rgb;
        Index = index;
        Timestamp = timestamp;
    }

    public DecodedFrame Clone() => new(Width, Height, (byte[])Rgb.Clone(), Index, Timestamp);
}
