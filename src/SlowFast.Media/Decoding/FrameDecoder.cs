using System.Globalization;
using System.Text;

namespace SlowFast.Media;

/// <summary>
/// Decodes chosen frames of a probed file with the ffmpeg program, streaming raw RGB24 frames
/// through a pipe one at a time (memory stays at one frame whatever the video's length).
/// Seeking versus decoding on is decided per frame by <see cref="DecodePlan"/>.
/// </summary>
public static class FrameDecoder
{
    /// <summary>
    /// Yields one frame per entry of <paramref name="frames"/> (non-decreasing indices; a repeated
    /// index yields the same picture again). The yielded object and its buffer are reused.
    /// </summary>
    public static IEnumerable<DecodedFrame> Decode(VideoProbe probe, IReadOnlyList<long> frames, DecodeStrategy strategy = DecodeStrategy.Auto,
        MediaLimits? limits = null, CancellationToken cancel = default)
    {
        limits ??= MediaLimits.Default;
        for (int i = 0; i < frames.Count; i++)
        {
            if (frames[i] < 0 || frames[i] >= probe.FrameCount)
                throw new ArgumentOutOfRangeException(nameof(frames), $"frame {frames[i]} is outside 0..{probe.FrameCount - 1}");
            if (i > 0 && frames[i] < frames[i - 1])
                throw new ArgumentException("frame indices must be non-decreasing", nameof(frames));
        }
        return DecodeIterator(probe, frames, ChooseStrategy(probe, strategy), limits, cancel);
    }

    /// <summary>
    /// Containers whose index lets ffmpeg seek exactly (the sample tables of MP4/MOV, Matroska/WebM
    /// cues, the AVI index). Elsewhere (MPEG-TS, raw streams, GIF) a seek can land off target, and
    /// counting frames from it would silently pick the wrong picture, so those decode sequentially.
    /// </summary>
    private static readonly string[] SeekableFormats = ["mov", "mp4", "matroska", "webm", "avi"];

    /// <summary>Seek is used (when asked for, or by Auto) only where it is exact: real timestamps, more than one frame, an indexed container.</summary>
    public static DecodeStrategy ChooseStrategy(VideoProbe probe, DecodeStrategy requested)
    {
        bool canSeek = probe.HasTimestamps && probe.FrameCount > 1 && probe.FormatName.Split(',').Any(SeekableFormats.Contains);
        return requested == DecodeStrategy.Sequential || !canSeek ? DecodeStrategy.Sequential : DecodeStrategy.Seek;
    }

    private static IEnumerable<DecodedFrame> DecodeIterator(VideoProbe probe, IReadOnlyList<long> frames, DecodeStrategy strategy,
        MediaLimits limits, CancellationToken cancel)
    {
        var distinct = frames.Distinct().ToList();
        var runs = DecodePlan.Make(distinct, probe.IsKeyframe, strategy);
        var frame = new DecodedFrame(probe.Width, probe.Height, new byte[3 * probe.Width * probe.Height]);
        int next = 0; // position in `frames`
        // The next run's ffmpeg starts while we read the current one, so its seek and decode up to
        // its first frame overlap our preprocessing; it then waits on the pipe (one frame buffered).
        ToolProcess? upcoming = runs.Count > 0 ? StartRun(probe, runs[0], limits, cancel, armed: true) : null;
        try
        {
            for (int r = 0; r < runs.Count; r++)
            {
                var run = runs[r];
                using var tool = upcoming!;
                upcoming = r + 1 < runs.Count ? StartRun(probe, runs[r + 1], limits, cancel, armed: false) : null;
                foreach (long index in run.Frames)
                {
                    int got = tool.ReadBlock(frame.Rgb);
                    if (got != frame.Rgb.Length)
                        throw RunFailure(probe, tool, limits, cancel, index);
                    frame.Index = index;
                    frame.Timestamp = probe.FrameTimes[index];
                    while (next < frames.Count && frames[next] == index)
                    {
                        cancel.ThrowIfCancellationRequested();
                        yield return frame;
                        next++;
                    }
                }
                // Every frame arrived; a late decoder complaint (exit code) is not worth failing over.
                tool.WaitForExit();
            }
        }
        finally
        {
            upcoming?.Dispose();
        }
    }

    private static ToolProcess StartRun(VideoProbe probe, DecodeRun run, MediaLimits limits, CancellationToken cancel, bool armed)
    {
        var args = new List<string> { "-nostdin", "-hide_banner", "-v", "error" };
        // Aim half a millisecond early so rounding to ffmpeg's microsecond clock never skips the frame.
        double seek = run.FirstFrame > 0 ? probe.FrameTimes[run.FirstFrame] - 0.0005 : 0;
        if (seek > 0) args.AddRange(["-ss", seek.ToString("0.######", CultureInfo.InvariantCulture)]);
        else run = run with { FirstFrame = 0 }; // decoding from the start: count frames from 0
        args.AddRange(ToolProcess.InputArguments(probe.Path));
        args.AddRange(["-map", "0:" + probe.StreamIndex.ToString(CultureInfo.InvariantCulture), "-an", "-sn", "-dn", "-vf", FilterGraph(probe, run), "-fps_mode", "passthrough",
            "-frames:v", run.Frames.Count.ToString(CultureInfo.InvariantCulture), "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]);
        return new ToolProcess(limits.Ffmpeg, args, limits.Inactivity, cancel, armed);
    }

    /// <summary>
    /// select keeps the run's frames by their number n since the run's first frame (after ffmpeg's
    /// own rotation filters); scale pins the size so a stream that changes resolution midway still
    /// yields frames of the probed size.
    /// </summary>
    internal static string FilterGraph(VideoProbe probe, DecodeRun run)
    {
        var select = new StringBuilder("select='");
        for (int i = 0; i < run.Frames.Count; i++)
        {
            if (i > 0) select.Append('+');
            select.Append("eq(n,").Append((run.Frames[i] - run.FirstFrame).ToString(CultureInfo.InvariantCulture)).Append(')');
        }
        select.Append("',scale=").Append(probe.Width).Append(':').Append(probe.Height);
        return select.ToString();
    }

    private static Exception RunFailure(VideoProbe probe, ToolProcess tool, MediaLimits limits, CancellationToken cancel, long index)
    {
        int code = tool.WaitForExit();
        if (tool.Cancelled) return new OperationCanceledException(cancel);
        if (tool.TimedOut) return new UserError($"{probe.Path}: decoding made no progress for {limits.Inactivity.TotalSeconds:0} s and was stopped (frame {index})");
        string why = ToolProcess.WithoutPrefixes(tool.FirstErrorLine(), probe.Path);
        return new UserError(why.Length > 0 && code != 0
            ? $"{probe.Path}: cannot decode frame {index} ({why})"
            : $"{probe.Path}: video ended before frame {index} of {probe.FrameCount} could be decoded (truncated or corrupt file?)");
    }
}
