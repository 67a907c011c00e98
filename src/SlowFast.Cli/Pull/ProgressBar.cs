using System.Diagnostics;
using System.Globalization;

using SlowFast.Hub;

namespace SlowFast.Cli.Pull;

/// <summary>
/// Renders pull progress to a text writer (stderr): on a terminal one line redrawn in place with
/// percentage, bar, bytes, transfer rate and ETA; elsewhere (logs, pipes) one line per finished file.
/// </summary>
public sealed class ProgressBar : IProgress<PullProgress>
{
    const int BarWidth = 24;
    static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);
    static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(5);

    readonly TextWriter _writer;
    readonly bool _interactive;
    readonly Func<TimeSpan> _clock;
    readonly object _gate = new();
    readonly Queue<(TimeSpan Time, long Transferred)> _samples = new();
    TimeSpan _lastDraw = TimeSpan.MinValue;
    int _lastLength;
    string? _lastFile;

    /// <param name="interactive">Redraw one line with '\r' (a terminal); false prints a line per file.</param>
    /// <param name="clock">Elapsed time source (tests); null uses a stopwatch.</param>
    public ProgressBar(TextWriter writer, bool interactive, Func<TimeSpan>? clock = null)
    {
        _writer = writer;
        _interactive = interactive;
        if (clock is null)
        {
            var watch = Stopwatch.StartNew();
            clock = () => watch.Elapsed;
        }
        _clock = clock;
    }

    /// <summary>A bar for stderr, interactive when stderr is a terminal.</summary>
    public bool Interactive => _interactive;

    public static ProgressBar ForStandardError() => new(Console.Error, !Console.IsErrorRedirected);

    public void Report(PullProgress p)
    {
        lock (_gate)
        {
            var now = _clock();
            _samples.Enqueue((now, p.TransferredBytes));
            while (_samples.Count > 2 && now - _samples.Peek().Time > RateWindow) _samples.Dequeue();

            if (!_interactive)
            {
                if (p.Stage == PullStage.FileCompleted)
                    _writer.WriteLine($"{p.File}  {FormatBytes(p.FileSize)}  ({p.FilesDone}/{p.FileCount} files)");
                else if (p.Stage == PullStage.WaitingForLock)
                    _writer.WriteLine($"{p.File}: waiting for another pull that is downloading it");
                else if (p.Stage == PullStage.Completed)
                    _writer.WriteLine($"done: {p.FilesDone} files, {FormatBytes(p.TotalBytes)} ({FormatBytes(p.TransferredBytes)} downloaded)");
                return;
            }

            bool important = p.Stage is PullStage.Completed or PullStage.WaitingForLock || p.File != _lastFile;
            if (!important && now - _lastDraw < RedrawInterval) return;
            _lastDraw = now;
            _lastFile = p.File;
            string line = Line(p);
            _writer.Write('\r' + line + new string(' ', Math.Max(0, _lastLength - line.Length)));
            _lastLength = line.Length;
            if (p.Stage == PullStage.Completed) { _writer.WriteLine(); _lastLength = 0; }
            _writer.Flush();
        }
    }

    /// <summary>The one-line rendering of a report: percentage, bar, bytes, rate, ETA, file.</summary>
    public string Line(PullProgress p)
    {
        double fraction = p.TotalBytes > 0 ? Math.Clamp((double)p.DoneBytes / p.TotalBytes, 0, 1) : 0;
        int filled = (int)(fraction * BarWidth);
        string bar = new string('#', filled) + new string('.', BarWidth - filled);
        double? rate = Rate();
        string rateText = rate is { } r ? FormatBytes((long)r) + "/s" : "--/s";
        string eta = rate is { } rr && rr > 0 ? FormatDuration(TimeSpan.FromSeconds((p.TotalBytes - p.DoneBytes) / rr)) : "--:--";
        string what = p.Stage switch
        {
            PullStage.Resolving => $"resolving {p.File}",
            PullStage.WaitingForLock => $"{p.File} (waiting for another pull)",
            PullStage.Completed => $"done, {p.FilesDone} files",
            _ => p.File,
        };
        return string.Create(CultureInfo.InvariantCulture,
            $"{fraction * 100,3:0}% [{bar}] {FormatBytes(p.DoneBytes)} / {FormatBytes(p.TotalBytes)}  {rateText}  ETA {eta}  {what}");
    }

    /// <summary>Bytes per second over the last few seconds, or null before there are two samples apart in time.</summary>
    double? Rate()
    {
        if (_samples.Count < 2) return null;
        var first = _samples.Peek();
        var last = _samples.Last();
        double seconds = (last.Time - first.Time).TotalSeconds;
        return seconds > 0 ? (last.Transferred - first.Transferred) / seconds : null;
    }

    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1000 && unit < units.Length - 1) { value /= 1000; unit++; }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }

    public static string FormatDuration(TimeSpan t)
    {
        if (t.TotalHours >= 100) return ">99h";
        return t.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}")
            : string.Create(CultureInfo.InvariantCulture, $"{t.Minutes}:{t.Seconds:00}");
    }
}
