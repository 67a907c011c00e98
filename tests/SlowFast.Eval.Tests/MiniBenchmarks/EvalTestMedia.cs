using System.Diagnostics;
using Parquet.Serialization;

namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>Small media and annotation files for the VideoMME and MVBench miniatures: ffmpeg lavfi videos and images, Parquet and JSON.</summary>
public static class EvalTestMedia
{
    /// <summary>A 64x64, 10 fps, 2 s H.264 video (20 frames); <paramref name="pattern"/> picks the lavfi source so videos differ.</summary>
    public static void Video(string path, string pattern = "testsrc2")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Ffmpeg("-f", "lavfi", "-i", $"{pattern}=size=64x64:rate=10", "-t", "2", "-pix_fmt", "yuv420p", path);
    }

    /// <summary>A folder of <paramref name="count"/> 64x64 JPEG frames named 00001.jpg, 00002.jpg, ... (MVBench's tvqa frames).</summary>
    public static void FrameFolder(string dir, int count)
    {
        Directory.CreateDirectory(dir);
        Ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-frames:v", count.ToString(), Path.Combine(dir, "%05d.jpg"));
    }

    /// <summary>A file with a video's name that no decoder can read.</summary>
    public static void Garbage(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7 % 251))]);
    }

    public static void Parquet<T>(string path, IEnumerable<T> rows) where T : new()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = File.Create(path);
        ParquetSerializer.SerializeAsync(rows, stream).GetAwaiter().GetResult();
    }

    public static void Ffmpeg(params string[] args)
    {
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-y", "-loglevel", "error" }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg {string.Join(' ', args)} failed: {err}");
    }
}
