using System.Diagnostics;
using Parquet.Serialization;

namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>
/// What the miniature benchmarks are made of: small generated videos (ffmpeg's testsrc, 64x64, 2 s at 8 fps, H.264)
/// and annotation files in the format a benchmark ships (parquet written by Parquet.Net's class serializer, so column
/// names are the record's property names).
/// </summary>
public static class MiniBenchmarkFiles
{
    private static readonly Lazy<string> _template = new(MakeTemplate);

    /// <summary>Writes a small decodable video at <paramref name="path"/> (made once per test run, then copied).</summary>
    public static void Video(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.Copy(_template.Value, path, overwrite: true);
    }

    /// <summary>Writes <paramref name="rows"/> as a parquet file at <paramref name="path"/>.</summary>
    public static void Parquet<T>(string path, IEnumerable<T> rows) where T : new()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = File.Create(path);
        ParquetSerializer.SerializeAsync(rows, stream).GetAwaiter().GetResult();
    }

    private static string MakeTemplate()
    {
        var dir = Directory.CreateTempSubdirectory("sf-mini-video-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        var path = Path.Combine(dir, "testsrc.mp4");
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=8:duration=2",
                     "-c:v", "libx264", "-pix_fmt", "yuv420p", path })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException("ffmpeg did not finish making the test video"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg failed making the test video: {err}");
        return path;
    }
}
