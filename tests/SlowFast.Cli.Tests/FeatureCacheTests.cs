using System.Diagnostics;
using System.Text.Json.Nodes;
using SlowFast.Tensors.IO;

namespace SlowFast.Cli.Tests;

/// <summary>
/// `ask` with the encoded-video cache, `frames` and `ask` preparing images alike, and the default
/// precision; every run with a cache directory of its own.
/// </summary>
public class FeatureCacheTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Lavfi(string name, params string[] args)
    {
        string path = Path.Combine(tiny.Root, name);
        lock (typeof(FeatureCacheTests))
        {
            if (File.Exists(path)) return path;
            var psi = new ProcessStartInfo("ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", .. args, path + ".tmp" + Path.GetExtension(path)]) { RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            File.Move(path + ".tmp" + Path.GetExtension(path), path);
            return path;
        }
    }

    private string Video() => Lavfi("cache-clip.mp4", "-i", "testsrc2=size=320x180:rate=25", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p");
    private string Image() => Lavfi("wide.png", "-i", "testsrc2=size=200x100", "-frames:v", "1");

    private string NewCacheDir() => Directory.CreateTempSubdirectory("sf-ask-cache-").FullName;

    private SlowfastProcess.Result Ask(string cacheDir, string video, params string[] more) =>
        SlowfastProcess.Run(["ask", "--model", tiny.ModelDir, "--video", video, "--frames", "8", "--max-new-tokens", "6", "--cache-dir", cacheDir, .. more, "What happens?"]);

    [Fact]
    public void A_second_ask_takes_the_video_from_the_cache_and_gives_the_same_answer()
    {
        string dir = NewCacheDir();
        var first = Ask(dir, Video(), "--json");
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("decode ", first.Stderr);
        Assert.Contains("cache     kept as " + dir, first.Stderr);
        var j1 = JsonNode.Parse(first.Stdout)!;
        Assert.False((bool)j1["cached"]!);
        Assert.True((double)j1["timings"]!["vision_s"]! > 0);

        var second = Ask(dir, Video(), "--json");
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.DoesNotContain("decode ", second.Stderr);       // neither decoded nor encoded
        Assert.Matches(@"vision    cached: 8 frame\(s\) -> 8 fast \+ 32 slow tokens \(key [0-9a-f]{12}, \d+\.\d\d s\)", second.Stderr);
        var j2 = JsonNode.Parse(second.Stdout)!;
        Assert.True((bool)j2["cached"]!);
        Assert.Equal(0, (double)j2["timings"]!["vision_s"]!);
        Assert.Equal(0, (double)j2["timings"]!["decode_s"]!);
        Assert.True((double)j2["timings"]!["total_s"]! > 0);
        Assert.Equal((string?)j1["answer"], (string?)j2["answer"]);
        Assert.Equal(j1["tokens"]!.ToJsonString(), j2["tokens"]!.ToJsonString());

        // Streaming (not --json) says the same on stderr.
        var streamed = Ask(dir, Video());
        Assert.Contains("vision    cached: 8 frame(s)", streamed.Stderr);
        Assert.Equal((string?)j1["answer"] + "\n", streamed.Stdout);
    }

    [Fact]
    public void Other_frames_other_precision_or_other_file_contents_are_misses()
    {
        string dir = NewCacheDir();
        Assert.Equal(0, Ask(dir, Video()).ExitCode);
        Assert.DoesNotContain("cached", SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", Video(), "--frames", "9",
            "--max-new-tokens", "2", "--cache-dir", dir, "q").Stderr);
        string copy = Path.Combine(tiny.Root, "cache-clip-copy.mp4");
        File.Copy(Video(), copy, overwrite: true);
        Assert.Contains("vision    cached", Ask(dir, copy).Stderr);                   // same bytes, other name: a hit
        using (var s = new FileStream(copy, FileMode.Append)) s.WriteByte(0);       // one byte more: a miss
        Assert.DoesNotContain("vision    cached", Ask(dir, copy).Stderr);
        if (SlowFast.Tensors.Kernels.MatMul.BFloat16Supported)
        {
            Assert.Contains("vision    cached", Ask(dir, Video(), "--precision", "bf16").Stderr);        // what auto chose here
            Assert.DoesNotContain("vision    cached", Ask(dir, Video(), "--precision", "f32").Stderr);
        }
        Assert.Contains("vision    cached", Ask(dir, Video(), "--precision", "f32").Stderr);
        if (SlowFast.Tensors.Kernels.MatMul.Int8ChannelsSupported)
        {
            // The tower's MLPs in int8 give other tokens: cached apart from the float ones, and found again.
            var int8 = Ask(dir, Video(), "--precision", "f32", "--vision-int8", "--json");
            Assert.True(int8.ExitCode == 0, int8.Stderr);
            Assert.False((bool)JsonNode.Parse(int8.Stdout)!["cached"]!);
            Assert.Contains("vision    cached", Ask(dir, Video(), "--precision", "f32", "--vision-int8").Stderr);
        }
    }

    [Fact]
    public void Vision_int8_without_vnni_says_so_and_shares_the_float_entry()
    {
        // SLOWFAST_NO_JIT=1 turns the generated kernels off, as a CPU without AVX512-VNNI would: the flag
        // then changes nothing, says so in one line, and finds the features the float tower cached.
        string dir = NewCacheDir();
        var env = new Dictionary<string, string> { ["SLOWFAST_NO_JIT"] = "1" };
        string[] args = ["ask", "--model", tiny.ModelDir, "--video", Video(), "--frames", "8", "--max-new-tokens", "2", "--cache-dir", dir];
        Assert.Equal(0, SlowfastProcess.RunWithEnvironment(null, env, [.. args, "q"]).ExitCode);
        var r = SlowfastProcess.RunWithEnvironment(null, env, [.. args, "--vision-int8", "q"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Single(r.Stderr.Split('\n'), l => l.StartsWith("vision int8 asked, but this CPU has no AVX512-VNNI", StringComparison.Ordinal));
        Assert.Contains("vision    cached", r.Stderr);
    }

    [Fact]
    public void No_cache_writes_nothing_and_reads_nothing()
    {
        string dir = NewCacheDir();
        var env = new Dictionary<string, string> { ["SLOWFAST_CACHE_DIR"] = dir };
        string[] args = ["ask", "--model", tiny.ModelDir, "--video", Video(), "--frames", "8", "--max-new-tokens", "2"];
        var r = SlowfastProcess.RunWithEnvironment(null, env, [.. args, "--no-cache", "q"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        // The environment variable is the default directory.
        Assert.Equal(0, SlowfastProcess.RunWithEnvironment(null, env, [.. args, "q"]).ExitCode);
        Assert.Single(Directory.GetFiles(dir, "*.safetensors"));
        Assert.DoesNotContain("cached", SlowfastProcess.RunWithEnvironment(null, env, [.. args, "--no-cache", "q"]).Stderr);
        var both = SlowfastProcess.Run([.. args, "--no-cache", "--cache-dir", dir, "q"]);
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("--no-cache", both.Stderr);
    }

    [Fact]
    public void A_corrupt_cache_file_is_reported_ignored_and_rewritten()
    {
        string dir = NewCacheDir();
        var first = Ask(dir, Video(), "--json");
        string file = Directory.GetFiles(dir, "*.safetensors").Single();
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..1000]);             // truncated
        var second = Ask(dir, Video(), "--json");
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Contains("ignored", second.Stderr);
        Assert.DoesNotContain("   at ", second.Stderr);
        Assert.False((bool)JsonNode.Parse(second.Stdout)!["cached"]!);
        Assert.Equal((string?)JsonNode.Parse(first.Stdout)!["answer"], (string?)JsonNode.Parse(second.Stdout)!["answer"]);
        var third = Ask(dir, Video(), "--json");
        Assert.True((bool)JsonNode.Parse(third.Stdout)!["cached"]!);
    }

    [Fact]
    public void Two_processes_racing_on_one_key_both_answer_and_leave_one_valid_file()
    {
        string dir = NewCacheDir();
        var runs = Enumerable.Range(0, 2).Select(_ => Task.Run(() => Ask(dir, Video(), "--json"))).ToArray();
        var results = Task.WhenAll(runs).Result;
        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.Stderr));
        Assert.Equal((string?)JsonNode.Parse(results[0].Stdout)!["answer"], (string?)JsonNode.Parse(results[1].Stdout)!["answer"]);
        string file = Assert.Single(Directory.GetFiles(dir));                  // no temporary files left behind
        Assert.EndsWith(".safetensors", file);
        using (var f = SafetensorsFile.Open(file)) Assert.Equal(Path.GetFileNameWithoutExtension(file), f.Metadata["key"]);
        Assert.True((bool)JsonNode.Parse(Ask(dir, Video(), "--json").Stdout)!["cached"]!);
    }

    [Fact]
    public void Frames_prepares_a_still_image_exactly_as_ask_does()
    {
        // The tiny checkpoint pads images to square (image_aspect_ratio "pad"); a 2:1 picture shows the difference.
        string pixels = Path.Combine(tiny.Root, "wide.safetensors");
        var frames = SlowfastProcess.Run("frames", "--model", tiny.ModelDir, "--video", Image(), "--out", pixels);
        Assert.True(frames.ExitCode == 0, frames.Stderr);
        using (var f = SafetensorsFile.Open(pixels))
        {
            Assert.Equal([1L, 3, 128, 128], f.Get("pixel_values").Shape.ToArray());
            Assert.Equal("pad", f.Metadata["aspect"]);
        }

        float[] Fast(params string[] input)
        {
            string outPath = Path.Combine(tiny.Root, $"fwd-{Guid.NewGuid():N}.safetensors");
            var r = SlowfastProcess.Run(["forward", "--model", tiny.ModelDir, .. input, "--precision", "f32", "--prompt", "q", "--out", outPath]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var f = SafetensorsFile.Open(outPath);
            return f.Get("fast_tokens").ToFloatArray();
        }
        var asImage = Fast("--image", Image());
        Assert.Equal(asImage, Fast("--pixels", pixels));
        Assert.Equal(asImage, Fast("--video", Image()));           // a still image given as a video is an image too

        // Without --model: the released checkpoints' settings (576 px, images padded).
        var released = SlowfastProcess.Run("frames", "--video", Image(), "--out", pixels);
        Assert.True(released.ExitCode == 0, released.Stderr);
        using (var f = SafetensorsFile.Open(pixels))
        {
            Assert.Equal([1L, 3, 576, 576], f.Get("pixel_values").Shape.ToArray());
            Assert.Equal("pad", f.Metadata["aspect"]);
        }
    }

    [Fact]
    public void Precision_defaults_to_bf16_where_the_cpu_has_it()
    {
        var help = SlowfastProcess.Run("ask", "--help");
        Assert.Contains("auto|f32|bf16", help.Stdout);
        Assert.Contains("auto", help.Stdout);
        var json = JsonNode.Parse(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--max-new-tokens", "1", "--json", "Hi").Stdout)!;
        Assert.Equal(SlowFast.Tensors.Kernels.MatMul.BFloat16Supported ? "bf16" : "f32", (string?)json["precision"]);
        var f32 = JsonNode.Parse(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--precision", "f32", "--max-new-tokens", "1", "--json", "Hi").Stdout)!;
        Assert.Equal("f32", (string?)f32["precision"]);
        var auto = SlowfastProcess.RunWithEnvironment(null, new Dictionary<string, string> { ["SLOWFAST_NO_JIT"] = "1" },
            "ask", "--model", tiny.ModelDir, "--max-new-tokens", "1", "--json", "Hi");
        Assert.DoesNotContain("bf16 asked", auto.Stderr);                            // auto asks only for what the CPU has
    }
}
