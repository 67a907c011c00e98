namespace SlowFast.Media;

/// <summary>How frames are picked from a video.</summary>
public enum SamplingMode
{
    /// <summary>N frames spread evenly over the whole video (the reference's inference demo and lmms-eval decord path).</summary>
    Uniform,
    /// <summary>Frames at a target rate, capped at N and thinned evenly when over the cap (the reference's PyAV path).</summary>
    Fps,
}

/// <summary>The reference's frame-index formulas, restated. Indices are non-decreasing and may repeat.</summary>
public static class FrameSampler
{
    /// <summary>
    /// floor(linspace(0, total - 1, n)): NumPy computes i * step in float64 with step = (total - 1) / (n - 1),
    /// sets the last value to exactly total - 1, and the int cast truncates. When n exceeds total,
    /// indices repeat (decord then returns the same frame twice).
    /// </summary>
    public static long[] Uniform(long totalFrames, int count)
    {
        if (totalFrames < 1) throw new ArgumentOutOfRangeException(nameof(totalFrames), "a video needs at least one frame");
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), "sample at least one frame");
        var indices = new long[count];
        if (count == 1) return indices; // NumPy: a single sample is the start
        double stop = totalFrames - 1;
        double step = stop / (count - 1);
        for (int i = 0; i < count; i++)
            indices[i] = (long)(step == 0 ? i / (double)(count - 1) * stop : i * step);
        indices[count - 1] = totalFrames - 1;
        return indices;
    }

    /// <summary>
    /// The reference's get_frame_indices: keep every round(fps / targetFps)-th frame (at least every
    /// frame; Python's round is half-to-even), and when that gives more than <paramref name="maxFrames"/>,
    /// keep positions round((i + 1) * len / maxFrames - 1). With fewer frames than the cap, all are kept.
    /// The target rate is first capped at the video's rate, as the reference's decord reader does.
    /// </summary>
    public static long[] AtRate(long totalFrames, double videoFps, double targetFps, int maxFrames)
    {
        if (totalFrames < 1) throw new ArgumentOutOfRangeException(nameof(totalFrames), "a video needs at least one frame");
        if (maxFrames < 1) throw new ArgumentOutOfRangeException(nameof(maxFrames), "sample at least one frame");
        if (!(targetFps > 0) || double.IsInfinity(targetFps)) throw new ArgumentOutOfRangeException(nameof(targetFps), "the target rate must be positive");
        if (!(videoFps > 0) || double.IsInfinity(videoFps)) throw new ArgumentOutOfRangeException(nameof(videoFps), "the video's frame rate is unknown");
        targetFps = Math.Min(targetFps, videoFps);
        long every = Math.Max((long)Math.Round(videoFps / targetFps, MidpointRounding.ToEven), 1);
        long kept = (totalFrames + every - 1) / every;
        if (kept < maxFrames)
        {
            var all = new long[kept];
            for (long i = 0; i < kept; i++) all[i] = i * every;
            return all;
        }
        double scale = 1.0 * kept / maxFrames;
        var picked = new long[maxFrames];
        for (int i = 0; i < maxFrames; i++)
        {
            long position = (long)Math.Round((i + 1) * scale - 1, MidpointRounding.ToEven);
            picked[i] = position * every;
        }
        return picked;
    }
}
