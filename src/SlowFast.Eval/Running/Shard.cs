using System.Globalization;
using SlowFast.Eval.Tasks;

namespace SlowFast.Eval.Running;

/// <summary>
/// <c>--shard I/N</c>: this run is shard I (0-based) of N independent runs over the same task. Samples are dealt
/// out by video — the videos in the order the task first names them, video k to shard k mod N — so every question
/// about one video runs in one shard (its encoding is reused) and the split depends only on the task's sample list.
/// </summary>
public sealed record Shard(int Index, int Count)
{
    public static readonly Shard Whole = new(0, 1);

    public bool IsWhole => Count == 1;

    public override string ToString() => $"{Index}/{Count}";

    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && i < n)
            return new Shard(i, n);
        throw new UserError($"--shard must be I/N with 0 <= I < N (e.g. 0/4), not '{text}'");
    }

    /// <summary>This shard's samples, each with its position in <paramref name="samples"/>, in that order.</summary>
    public IReadOnlyList<(int Index, EvalSample Sample)> Select(IReadOnlyList<EvalSample> samples)
    {
        var videoNumber = new Dictionary<string, int>(StringComparer.Ordinal);
        var mine = new List<(int, EvalSample)>();
        for (int i = 0; i < samples.Count; i++)
        {
            string video = samples[i].Video;
            if (!videoNumber.TryGetValue(video, out int k)) videoNumber[video] = k = videoNumber.Count;
            if (k % Count == Index) mine.Add((i, samples[i]));
        }
        return mine;
    }
}
