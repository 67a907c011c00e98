using System.Collections.Concurrent;
using System.Diagnostics;

namespace SlowFast.Media.Tests;

/// <summary>
/// Media files made with the ffmpeg program at test time, once per test run, in a temp folder.
/// Most videos are "colour-coded": frame n is a flat colour <see cref="ColourOf"/>(n), so a test can
/// tell which frame it got back even through lossy codecs.
/// </summary>
public static class TestMedia
{
    public static readonly string Dir = MakeDir();

    private static string MakeDir()
    {
        string dir = Directory.CreateTempSubdirectory("slowfast-media-tests-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return dir;
    }
    private static readonly ConcurrentDictionary<string, Lazy<string>> Made = new();

    /// <summary>The colour of frame n (RGB), spread out so neighbouring frames are far apart.</summary>
    public static (int R, int G, int B) ColourOf(long n) => ((int)(n * 47 % 251), (int)((n * 101 + 60) % 251), (int)((n * 17 + 120) % 251));

    /// <summary>lavfi source of colour-coded frames.</summary>
    public static string ColourSource(int width, int height, double rate, double seconds) =>
        $"nullsrc=s={width}x{height}:r={rate.ToString(System.Globalization.CultureInfo.InvariantCulture)}:d={seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}," +
        "format=gbrp,geq=r='mod(N*47,251)':g='mod(N*101+60,251)':b='mod(N*17+120,251)'";

    /// <summary>Makes <paramref name="name"/> once with ffmpeg -f lavfi -i source [args] name.</summary>
    public static string Lavfi(string name, string source, params string[] args) =>
        Made.GetOrAdd(name, _ => new Lazy<string>(() =>
        {
            string path = Path.Combine(Dir, name);
            Ffmpeg(["-f", "lavfi", "-i", source, .. args, path]);
            return path;
        })).Value;

    /// <summary>Makes <paramref name="name"/> once by running ffmpeg with arguments built from the output path.</summary>
    public static string Custom(string name, Func<string, string[]> args) =>
        Made.GetOrAdd(name, _ => new Lazy<string>(() =>
        {
            string path = Path.Combine(Dir, name);
            Ffmpeg(args(path));
            return path;
        })).Value;

    /// <summary>Makes <paramref name="name"/> once with a C# writer.</summary>
    public static string Bytes(string name, Action<string> write) =>
        Made.GetOrAdd(name, _ => new Lazy<string>(() =>
        {
            string path = Path.Combine(Dir, name);
            write(path);
            return path;
        })).Value;

    public static void Ffmpeg(string[] args)
    {
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-hide_banner", "-v", "error", "-y" }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("ffmpeg " + string.Join(' ', args)); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg {string.Join(' ', args)} failed: {err}");
    }

    /// <summary>Mean colour of a decoded frame.</summary>
    public static (double R, double G, double B) MeanColour(DecodedFrame f)
    {
        double r = 0, g = 0, b = 0;
        int n = f.Width * f.Height;
        for (int i = 0; i < n; i++) { r += f.Rgb[3 * i]; g += f.Rgb[3 * i + 1]; b += f.Rgb[3 * i + 2]; }
        return (r / n, g / n, b / n);
    }

    /// <summary>Which colour-coded frame (of <paramref name="count"/>) a picture is closest to.</summary>
    public static long IdentifyFrame(DecodedFrame f, long count)
    {
        var (r, g, b) = MeanColour(f);
        long best = -1;
        double bestDistance = double.MaxValue;
        for (long n = 0; n < count; n++)
        {
            var c = ColourOf(n);
            double d = Math.Abs(c.R - r) + Math.Abs(c.G - g) + Math.Abs(c.B - b);
            if (d < bestDistance) { bestDistance = d; best = n; }
        }
        return best;
    }
}
