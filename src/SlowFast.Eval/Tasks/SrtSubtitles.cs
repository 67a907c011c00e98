using System.Globalization;
using System.Text.RegularExpressions;
using SlowFast.Media;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// Video-MME's subtitle selection, as the reference's videomme utils do it: read the SRT cues, turn their times
/// into frame numbers, and keep the text of every cue shown at one of N frames spread evenly over the video.
/// </summary>
public static partial class SrtSubtitles
{
    /// <summary>One cue: shown from frame <see cref="StartFrame"/> (inclusive) to <see cref="EndFrame"/> (exclusive).</summary>
    public sealed record Cue(long StartFrame, long EndFrame, string Text);

    /// <summary>
    /// The cues of an SRT file: blocks separated by a blank line; a block of at least three lines is index, "start
    /// --> end", then text lines joined by spaces. Cues with the same start and end times are one cue (the later
    /// text, the earlier position), as the reference keys them by their times. Times become frames as
    /// int(seconds * fps).
    /// </summary>
    public static IReadOnlyList<Cue> Parse(string srt, double fps)
    {
        string text = srt.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
        var byTimes = new Dictionary<(double, double), int>();
        var cues = new List<(double Start, double End, string Text)>();
        foreach (var block in text.Split("\n\n"))
        {
            if (block.Trim().Length == 0) continue;
            string[] lines = block.Split('\n');
            if (lines.Length < 3) continue;
            string[] range = lines[1].Split(" --> ");
            if (range.Length < 2) throw new UserError($"subtitle cue '{lines[0]}': '{lines[1]}' is not 'start --> end'");
            var times = (ParseTime(range[0]), ParseTime(range[1]));
            string cueText = string.Join(' ', lines[2..]);
            if (byTimes.TryGetValue(times, out int at)) cues[at] = (times.Item1, times.Item2, cueText);
            else
            {
                byTimes[times] = cues.Count;
                cues.Add((times.Item1, times.Item2, cueText));
            }
        }
        return cues.Select(c => new Cue((long)(c.Start * fps), (long)(c.End * fps), c.Text)).ToList();
    }

    /// <summary>"hh:mm:ss,mmm" in seconds.</summary>
    public static double ParseTime(string time)
    {
        string[] hms = time.Split(':');
        string[] sms = hms.Length == 3 ? hms[2].Split(',') : [];
        if (hms.Length != 3 || sms.Length != 2)
            throw new UserError($"subtitle time '{time.Trim()}' is not hh:mm:ss,mmm");
        return Int(hms[0]) * 3600 + Int(hms[1]) * 60 + Int(sms[0]) + Int(sms[1]) / 1000.0;

        long Int(string s) => long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)
            ? v : throw new UserError($"subtitle time '{time.Trim()}' is not hh:mm:ss,mmm");
    }

    /// <summary>
    /// The subtitle text the reference puts in the prompt: at each of <paramref name="frames"/> frames
    /// floor(linspace(0, total - 1, frames)), the cues shown there (start &lt;= frame &lt; end); of each such cue
    /// (once) the first <c>&lt;font color="white" size=".72c"&gt;…&lt;/font&gt;</c> text, one a line, in cue order.
    /// Cues without such a font tag give nothing. The reference takes the cues from a Python set, whose order is
    /// cue order whenever the cue numbers are below the set's table size; here it is always cue order.
    /// </summary>
    public static string TextAtFrames(string srt, long totalFrames, double fps, int frames)
    {
        var cues = Parse(srt, fps);
        if (totalFrames < 1) return "";
        var shown = new SortedSet<int>();
        foreach (long frame in FrameSampler.Uniform(totalFrames, frames))
            for (int i = 0; i < cues.Count; i++)
                if (frame < cues[i].EndFrame && frame >= cues[i].StartFrame) shown.Add(i);
        var lines = new List<string>();
        foreach (int i in shown)
        {
            var m = FontText().Match(cues[i].Text);
            if (m.Success) lines.Add(m.Groups[1].Value);
        }
        return string.Join("\n", lines);
    }

    [GeneratedRegex("<font color=\"white\" size=\".72c\">(.*?)</font>")]
    private static partial Regex FontText();
}
