using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace SlowFast.Media;

/// <summary>
/// One run of the ffmpeg or ffprobe program with its stdout as a byte stream. Why a child process
/// rather than P/Invoke into libavformat: a malformed file that makes a decoder crash, spin or
/// allocate wildly takes down or stalls only the child, which a watchdog kills (no output for
/// <c>inactivity</c>, or the token cancelled); our process always gets a one-line error back.
/// Measured on the benchmark video, the pipe costs little next to decoding (see MediaBench).
/// </summary>
internal sealed class ToolProcess : IDisposable
{
    private const int MaxStderrChars = 8192;

    private readonly Process _process;
    private readonly Stream _stdout;
    private readonly StringBuilder _stderr = new();
    private readonly Timer _watchdog;
    private readonly TimeSpan _inactivity;
    private readonly CancellationTokenRegistration _cancelRegistration;
    private long _lastProgressTicks;
    private volatile bool _killed;
    private volatile bool _armed;

    public string ToolName { get; }
    /// <summary>True when the watchdog killed the program for making no progress.</summary>
    public bool TimedOut { get; private set; }
    public bool Cancelled { get; private set; }

    /// <summary>The ffmpeg program: SLOWFAST_FFMPEG, or "ffmpeg" on PATH.</summary>
    public static string FfmpegPath => Environment.GetEnvironmentVariable("SLOWFAST_FFMPEG") is { Length: > 0 } p ? p : "ffmpeg";
    /// <summary>The ffprobe program: SLOWFAST_FFPROBE, or "ffprobe" on PATH.</summary>
    public static string FfprobePath => Environment.GetEnvironmentVariable("SLOWFAST_FFPROBE") is { Length: > 0 } p ? p : "ffprobe";

    /// <summary>
    /// "-protocol_whitelist file -i file:/abs/path": the file protocol only, so a name with a colon or a
    /// leading dash is never read as a URL or an option, and a playlist cannot reach the network.
    /// </summary>
    public static string[] InputArguments(string path) =>
        ["-protocol_whitelist", "file", "-i", "file:" + System.IO.Path.GetFullPath(path)];

    /// <param name="armed">
    /// False for a program started ahead of time (its output is read later): the inactivity clock
    /// starts with the first read, since until then it is waiting on us, not stalled.
    /// </param>
    public ToolProcess(string program, IEnumerable<string> arguments, TimeSpan inactivity, CancellationToken cancel, bool armed = true)
    {
        ToolName = Path.GetFileName(program);
        _inactivity = inactivity;
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        try
        {
            _process = Process.Start(start) ?? throw new UserError($"could not start {program}");
        }
        catch (Win32Exception e)
        {
            throw new UserError($"cannot run {program} ({e.Message}): install FFmpeg (e.g. apt install ffmpeg) or set SLOWFAST_FFMPEG / SLOWFAST_FFPROBE");
        }
        catch (InvalidOperationException e)
        {
            throw new UserError($"cannot run {program} ({e.Message})");
        }
        _process.StandardInput.Close();
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr)
                if (_stderr.Length < MaxStderrChars) _stderr.AppendLine(e.Data);
        };
        _process.BeginErrorReadLine();
        _stdout = _process.StandardOutput.BaseStream;
        Touch();
        _armed = armed;
        _watchdog = new Timer(_ => CheckProgress(), null, 200, 200);
        _cancelRegistration = cancel.Register(() => { Cancelled = true; Kill(); });
    }

    private void Touch() => Interlocked.Exchange(ref _lastProgressTicks, Environment.TickCount64);

    private void CheckProgress()
    {
        if (_killed || !_armed) return;
        if (Environment.TickCount64 - Interlocked.Read(ref _lastProgressTicks) > _inactivity.TotalMilliseconds)
        {
            TimedOut = true;
            Kill();
        }
    }

    private void Kill()
    {
        _killed = true;
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        catch (Win32Exception) { }
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the output ends; returns the bytes read.</summary>
    public int ReadBlock(Span<byte> buffer)
    {
        if (!_armed)
        {
            Touch();
            _armed = true;
        }
        int total = 0;
        while (total < buffer.Length)
        {
            int n = _stdout.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
            Touch();
        }
        return total;
    }

    /// <summary>All of stdout as text (for ffprobe's small reports).</summary>
    public string ReadAllText()
    {
        _armed = true;
        using var ms = new MemoryStream();
        var chunk = new byte[65536];
        int n;
        while ((n = _stdout.Read(chunk)) > 0)
        {
            ms.Write(chunk, 0, n);
            Touch();
        }
        return Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
    }

    /// <summary>Waits for the program to finish (it has already closed stdout or been killed) and returns its exit code.</summary>
    public int WaitForExit()
    {
        if (!_process.WaitForExit(10_000)) Kill();
        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>The first meaningful line the program wrote to stderr, or an empty string.</summary>
    public string FirstErrorLine()
    {
        _process.WaitForExit(); // flushes the asynchronous stderr reader
        string text;
        lock (_stderr) text = _stderr.ToString();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length > 0) return line.Length > 300 ? line[..300] + "..." : line;
        }
        return "";
    }

    /// <summary>
    /// An ffmpeg message without what our own message already says: the "file:/path: " prefix and
    /// the "[component @ 0x...] " tag.
    /// </summary>
    public static string WithoutPrefixes(string line, string path)
    {
        foreach (var prefix in new[] { "file:" + System.IO.Path.GetFullPath(path) + ": ", path + ": " })
            if (line.StartsWith(prefix, StringComparison.Ordinal)) line = line[prefix.Length..];
        if (line.StartsWith('[') && line.IndexOf(" @ 0x", StringComparison.Ordinal) is > 0 and var at && line.IndexOf("] ", at, StringComparison.Ordinal) is > 0 and var close)
            line = line[(close + 2)..];
        return line;
    }

    public void Dispose()
    {
        _cancelRegistration.Dispose();
        _watchdog.Dispose();
        Kill();
        try { _process.WaitForExit(5000); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
