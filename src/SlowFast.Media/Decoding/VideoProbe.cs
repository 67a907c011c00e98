using System.Globalization;
using System.Text.Json;

namespace SlowFast.Media;

/// <summary>
/// What ffprobe says about a file's first video stream, plus a per-frame index (presentation
/// timestamps and keyframe flags, from the demuxer's packets: no decoding) that sampling uses to
/// map frame indices to times and to decide where seeking pays.
/// Width and height are the displayed size: swapped when the rotation metadata turns the picture
/// by 90 degrees (the decoder applies the rotation).
/// </summary>
public sealed class VideoProbe
{
    public required string Path { get; init; }
    public required string FormatName { get; init; }
    public required string CodecName { get; init; }
    /// <summary>The stream's index in the container (what ffmpeg's -map 0:N selects).</summary>
    public required int StreamIndex { get; init; }
    /// <summary>Displayed width after rotation.</summary>
    public required int Width { get; init; }
    /// <summary>Displayed height after rotation.</summary>
    public required int Height { get; init; }
    /// <summary>Clockwise display rotation in degrees (0, 90, 180, 270), from the display matrix or rotate tag.</summary>
    public required int Rotation { get; init; }
    /// <summary>Average frame rate (the reference's <c>stream.average_rate</c>); derived from the frame count and duration when the container has none.</summary>
    public required double FrameRate { get; init; }
    /// <summary>Duration in seconds.</summary>
    public required double Duration { get; init; }
    /// <summary>Presentation time of each frame in seconds from the start of the file, ascending.</summary>
    public required double[] FrameTimes { get; init; }
    /// <summary>Whether each frame (in presentation order) is a keyframe, where decoding can start.</summary>
    public required bool[] IsKeyframe { get; init; }
    /// <summary>True for single-picture inputs (JPEG, PNG, WebP, ...).</summary>
    public required bool IsStillImage { get; init; }
    /// <summary>The start time ffmpeg subtracts from timestamps (format start_time), seconds.</summary>
    public required double StartTime { get; init; }
    /// <summary>True when every frame has a real timestamp, so input seeking can land on a chosen frame.</summary>
    public required bool HasTimestamps { get; init; }

    public long FrameCount => FrameTimes.Length;

    public override string ToString() =>
        $"{System.IO.Path.GetFileName(Path)}: {FormatName}/{CodecName} {Width}x{Height}" +
        (Rotation != 0 ? $" rotated {Rotation}" : "") +
        $", {FrameCount} frames, {FrameRate.ToString("0.###", CultureInfo.InvariantCulture)} fps, {Duration.ToString("0.###", CultureInfo.InvariantCulture)} s";
}
