using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using SlowFast.Benchmarks;
using SlowFast.Media;

namespace SlowFast.Bench;

/// <summary>
/// `bench media`: time sampling N frames from a long 1280x720 H.264 video and preprocessing them to
/// S px, against PyAV doing the same in the same run (tools/media/pyav_bench.py, the reference's
/// sequential-decode reader), and compare the two pixel tensors.
/// Options: --video FILE (default: a 10-minute testsrc2 video made with ffmpeg into the cache),
/// --frames N (64), --size S (576), --keyint K (keyframe interval of the made video; default: x264's 250),
/// --cache DIR (default: .cache/media-bench under the repository), --no-pyav, --sequential (also time
/// our decoder without seeking).
/// </summary>
public static class MediaBench
{
    public static int Run(string[] args)
    {
        string? video = null, cache = null;
        int frames = 64, size = 576;
        int? keyint = null;
        bool pyav = true, sequential = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--video": video = Next(); break;
                case "--frames": frames = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--size": size = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--keyint": keyint = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--cache": cache = Next(); break;
                case "--no-pyav": pyav = false; break;
                case "--sequential": sequential = true; break;
                default: Console.Error.WriteLine($"bench media: unknown option {args[i]}"); return 2;
            }
        }
        string root = TorchRunner.RepoRoot() ?? Directory.GetCurrentDirectory();
        cache ??= Path.Combine(root, ".cache", "media-bench");
        Directory.CreateDirectory(cache);
        video ??= EnsureVideo(cache, keyint);
        WarmFileCache(video);

        var probeWatch = Stopwatch.StartNew();
        var probe = MediaLoader.Probe(video);
        probeWatch.Stop();
        Console.WriteLine($"video: {probe}");
        Console.WriteLine($"task: {frames} frames, uniform sampling, preprocess to {size} px");

        double cpu0 = CpuClock.Seconds();
        var (ours, pixels, indices) = TimeOurs(probe, frames, size, DecodeStrategy.Auto);
        double oursCpu = CpuClock.Seconds() - cpu0;
        double oursTotal = probeWatch.Elapsed.TotalSeconds + ours.Decode + ours.Preprocess;
        Console.WriteLine(Inv($"slowfast (seek, {ours.Runs} ffmpeg runs): probe {probeWatch.Elapsed.TotalSeconds:0.000} s + decode {ours.Decode:0.000} s + preprocess {ours.Preprocess:0.000} s = {oursTotal:0.000} s wall; {oursCpu:0.0} CPU-s (ours + ffmpeg, probe excluded)"));
        if (sequential)
        {
            cpu0 = CpuClock.Seconds();
            var (seq, _, _) = TimeOurs(probe, frames, size, DecodeStrategy.Sequential);
            Console.WriteLine(Inv($"slowfast (sequential decode): decode {seq.Decode:0.000} s + preprocess {seq.Preprocess:0.000} s = {probeWatch.Elapsed.TotalSeconds + seq.Decode + seq.Preprocess:0.000} s wall; {CpuClock.Seconds() - cpu0:0.0} CPU-s"));
        }
        if (!pyav) return 0;

        string dump = Path.Combine(cache, "pyav-crops.u8");
        var wall = Stopwatch.StartNew();
        cpu0 = CpuClock.Seconds();
        var result = RunPyAv(root, video, frames, size, dump);
        double pyCpu = CpuClock.Seconds() - cpu0;
        wall.Stop();
        if (result is null) return 1;
        var r = result.RootElement;
        double pyDecode = r.GetProperty("decode_s").GetDouble(), pyPre = r.GetProperty("preprocess_s").GetDouble(), pyTotal = r.GetProperty("total_s").GetDouble();
        Console.WriteLine(Inv($"PyAV {PyAvVersion()} + PIL (sequential decode): decode {pyDecode:0.000} s + preprocess {pyPre:0.000} s = {pyTotal:0.000} s (process wall {wall.Elapsed.TotalSeconds:0.000} s); {pyCpu:0.0} CPU-s"));
        Console.WriteLine(Inv($"ratio: PyAV / slowfast = {pyTotal / oursTotal:0.0}x wall, {pyCpu / oursCpu:0.0}x CPU"));

        var pyIndices = r.GetProperty("indices").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        Console.WriteLine($"sampled indices equal: {pyIndices.SequenceEqual(indices)}");
        ComparePixels(pixels, dump, frames, size);
        return 0;
    }

    private sealed record Timing(double Decode, double Preprocess, int Runs);

    private static (Timing, float[], long[]) TimeOurs(VideoProbe probe, int frames, int size, DecodeStrategy strategy)
    {
        var options = new VideoOptions { Frames = frames, Size = size, Strategy = strategy };
        var (indices, _) = MediaLoader.ChooseFrames(probe, options);
        var pre = new ClipPreprocessor(size);
        var pixels = new float[(long)frames * pre.FrameLength];
        var total = Stopwatch.StartNew();
        var preprocess = new Stopwatch();
        int t = 0;
        foreach (var frame in FrameDecoder.Decode(probe, indices, strategy))
        {
            preprocess.Start();
            pre.Preprocess(frame, pixels.AsSpan(t++ * pre.FrameLength, pre.FrameLength));
            preprocess.Stop();
        }
        total.Stop();
        int runs = DecodePlan.Make(indices.Distinct().ToList(), probe.IsKeyframe, FrameDecoder.ChooseStrategy(probe, strategy)).Count;
        return (new Timing(total.Elapsed.TotalSeconds - preprocess.Elapsed.TotalSeconds, preprocess.Elapsed.TotalSeconds, runs), pixels, indices);
    }

    /// <summary>Our normalised floats back to uint8, against PyAV's uint8 crops: the differences come from RGB conversion (swscale settings), not preprocessing.</summary>
    private static void ComparePixels(float[] pixels, string dump, int frames, int size)
    {
        if (!File.Exists(dump)) return;
        var theirs = File.ReadAllBytes(dump);
        if (theirs.Length != (long)frames * size * size * 3) { Console.WriteLine("pixel comparison: dump has the wrong size"); return; }
        long count = 0, within1 = 0;
        double sumAbs = 0;
        int max = 0;
        int plane = size * size;
        for (int f = 0; f < frames; f++)
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < plane; i++)
                {
                    float x = pixels[(long)f * 3 * plane + c * plane + i];
                    int ours = (int)Math.Round((x * ClipPreprocessor.ClipStd[c] + ClipPreprocessor.ClipMean[c]) * 255.0);
                    int d = Math.Abs(ours - theirs[((long)f * plane + i) * 3 + c]);
                    sumAbs += d;
                    max = Math.Max(max, d);
                    if (d <= 1) within1++;
                    count++;
                }
        Console.WriteLine(Inv($"pixels vs PyAV (uint8 before normalisation): mean |diff| {sumAbs / count:0.000}, max {max}, within 1: {100.0 * within1 / count:0.00}%"));
    }

    private static JsonDocument? RunPyAv(string root, string video, int frames, int size, string dump)
    {
        string script = Path.Combine(root, "tools", "media", "pyav_bench.py");
        var psi = new ProcessStartInfo(TorchRunner.Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { script, video, "--frames", frames.ToString(CultureInfo.InvariantCulture), "--size", size.ToString(CultureInfo.InvariantCulture), "--dump", dump })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var errTask = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            Console.Error.WriteLine($"PyAV baseline failed (is python3-av installed?): {errTask.Result.Trim().Split('\n').LastOrDefault()}");
            return null;
        }
        return JsonDocument.Parse(output.Trim().Split('\n').Last());
    }

    private static string PyAvVersion()
    {
        try
        {
            var psi = new ProcessStartInfo(TorchRunner.Python, ["-c", "import av; print(av.__version__)"]) { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            string v = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return v;
        }
        catch (Exception) { return "?"; }
    }

    /// <summary>The benchmark video: 10 minutes of ffmpeg's testsrc2 at 1280x720, 30 fps, H.264 (x264 veryfast).</summary>
    private static string EnsureVideo(string cache, int? keyint)
    {
        string name = keyint is null ? "h264_1280x720_600s.mp4" : $"h264_1280x720_600s_g{keyint}.mp4";
        string path = Path.Combine(cache, name);
        if (File.Exists(path)) return path;
        Console.WriteLine($"making {path} with ffmpeg (once; takes a few minutes)...");
        var args = new List<string> { "-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=600",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p" };
        if (keyint is not null) args.AddRange(["-g", keyint.Value.ToString(CultureInfo.InvariantCulture)]);
        args.Add(path + ".partial.mp4");
        var psi = new ProcessStartInfo("ffmpeg") { UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException("ffmpeg could not make the benchmark video");
        File.Move(path + ".partial.mp4", path);
        return path;
    }

    private static void WarmFileCache(string path)
    {
        using var s = File.OpenRead(path);
        var buffer = new byte[1 << 20];
        while (s.Read(buffer) > 0) { }
    }

    /// <summary>CPU seconds used by this process and its finished children (getrusage), steadier than wall time on a busy machine.</summary>
    private static class CpuClock
    {
        [StructLayout(LayoutKind.Sequential)]
        private struct RUsage
        {
            public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
            public long F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12, F13;
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int getrusage(int who, out RUsage usage);

        public static double Seconds()
        {
            if (!OperatingSystem.IsLinux()) return Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
            double total = 0;
            foreach (int who in new[] { 0, -1 }) // RUSAGE_SELF, RUSAGE_CHILDREN
                if (getrusage(who, out var u) == 0)
                    total += u.UserSeconds + u.SystemSeconds + (u.UserMicroseconds + u.SystemMicroseconds) / 1e6;
            return total;
        }
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
