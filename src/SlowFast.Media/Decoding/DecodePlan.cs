namespace SlowFast.Media;

/// <summary>
/// One ffmpeg run: start at frame <see cref="FirstFrame"/> (by seeking to its time when it is not 0;
/// ffmpeg decodes from the keyframe before it and drops what precedes it) and keep the listed frames.
/// </summary>
public sealed record DecodeRun(long FirstFrame, IReadOnlyList<long> Frames);

/// <summary>
/// Splits the distinct sampled frames into ffmpeg runs. A seek lands on the keyframe at or before
/// the target and decodes forward from there, and each run costs a process start, worth about
/// <see cref="SeekOverheadFrames"/> decoded frames. So the next frame joins the current run when
/// decoding on to it costs no more than seeking to it: frames in the same keyframe interval always
/// join, and far-apart frames in videos with frequent keyframes get their own run. Sampling 64
/// frames of a 10-minute video then decodes a few keyframe intervals rather than the whole video.
/// </summary>
public static class DecodePlan
{
    /// <summary>Process start, file open and seek, in decoded-frame equivalents (measured at 720p: ~30-60 ms).</summary>
    public const int SeekOverheadFrames = 24;

    /// <summary>
    /// Most frames one run keeps: its select filter is one eq(n, k) term per frame, and ffmpeg's
    /// expression parser refuses a few hundred terms, so longer runs are split (each part seeks to its
    /// first frame, which ffmpeg decodes to from the keyframe before it).
    /// </summary>
    public const int MaxFramesPerRun = 64;

    public static IReadOnlyList<DecodeRun> Make(IReadOnlyList<long> sortedDistinctFrames, bool[] isKeyframe, DecodeStrategy strategy) =>
        Split(Group(sortedDistinctFrames, isKeyframe, strategy));

    private static List<DecodeRun> Split(IReadOnlyList<DecodeRun> runs)
    {
        var split = new List<DecodeRun>(runs.Count);
        foreach (var run in runs)
        {
            if (run.Frames.Count <= MaxFramesPerRun) { split.Add(run); continue; }
            for (int i = 0; i < run.Frames.Count; i += MaxFramesPerRun)
            {
                var part = run.Frames.Skip(i).Take(MaxFramesPerRun).ToArray();
                split.Add(new DecodeRun(i == 0 ? run.FirstFrame : part[0], part));
            }
        }
        return split;
    }

    private static IReadOnlyList<DecodeRun> Group(IReadOnlyList<long> sortedDistinctFrames, bool[] isKeyframe, DecodeStrategy strategy)
    {
        if (sortedDistinctFrames.Count == 0) return [];
        if (strategy == DecodeStrategy.Sequential)
            return [new DecodeRun(0, sortedDistinctFrames)];

        // Last keyframe at or before each frame.
        var runs = new List<DecodeRun>();
        var current = new List<long> { sortedDistinctFrames[0] };
        for (int i = 1; i < sortedDistinctFrames.Count; i++)
        {
            long target = sortedDistinctFrames[i];
            long last = current[^1];
            long key = KeyframeAtOrBefore(isKeyframe, target);
            long continueCost = target - last;
            long seekCost = target - key + SeekOverheadFrames;
            if (key <= last || continueCost <= seekCost)
            {
                current.Add(target);
                continue;
            }
            runs.Add(new DecodeRun(current[0], current));
            current = [target];
        }
        runs.Add(new DecodeRun(current[0], current));
        return runs;
    }

    private static long KeyframeAtOrBefore(bool[] isKeyframe, long frame)
    {
        for (long i = Math.Min(frame, isKeyframe.Length - 1); i > 0; i--)
            if (isKeyframe[i]) return i;
        return 0;
    }
}
