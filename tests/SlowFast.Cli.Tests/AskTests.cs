using System.Diagnostics;
using System.Text.Json.Nodes;
using SlowFast.Tensors.IO;

namespace SlowFast.Cli.Tests;

/// <summary>`slowfast ask` and `forward` end to end: a real ffmpeg-made video, a tiny checkpoint, the real program.</summary>
public class AskTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Video() => tiny.Clip();

    [Fact]
    public void AskStreamsAnAnswerAndReportsProgress()
    {
        var r = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", Video(), "--frames", "8", "--max-new-tokens", "12", "What happens?");
        Assert.Equal(0, r.ExitCode);
        Assert.False(string.IsNullOrWhiteSpace(r.Stdout));
        foreach (var stage in new[] { "decode", "vision", "prefill", "tokens/s" }) Assert.Contains(stage, r.Stderr);
    }

    [Fact]
    public void AskJsonHasTokenCountsAndIsDeterministic()
    {
        string[] args = ["ask", "--model", tiny.ModelDir, "--video", Video(), "--frames", "8", "--max-new-tokens", "10", "--json", "Describe the video."];
        var r = SlowfastProcess.Run(args);
        Assert.Equal(0, r.ExitCode);
        var j = JsonNode.Parse(r.Stdout)!;
        // tiny: 4x4 tokens a frame, pooled 2x2 -> 4; 8 frames: 32 slow; 8/4 = 2 fast frames -> 8 fast tokens.
        Assert.Equal(8, (int)j["tokens"]!["fast"]!);
        Assert.Equal(32, (int)j["tokens"]!["slow"]!);
        Assert.True((int)j["tokens"]!["text"]! > 10);
        Assert.Equal(10, (int)j["tokens"]!["generated"]!);
        Assert.NotNull(j["timings"]);
        Assert.Equal(0.0, (double)j["timings"]!["vision_packing_s"]!);   // tiny is float32: only BF16 matrices are packed
        Assert.DoesNotContain("packing the tower's matrices", r.Stderr);
        var again = JsonNode.Parse(SlowfastProcess.Run(args).Stdout)!;
        Assert.Equal((string?)j["answer"], (string?)again["answer"]); // greedy decoding is deterministic
        // Without the vision tower's packed weights: the same answer (only memory and speed differ).
        var lean = SlowfastProcess.Run([.. args[..^1], "--no-packed-vision", args[^1]]);
        Assert.True(lean.ExitCode == 0, lean.Stderr);
        Assert.Equal((string?)j["answer"], (string?)JsonNode.Parse(lean.Stdout)!["answer"]);
    }

    [Fact]
    public void AskReportsTheOneTimePackingOfABf16TowerApart()
    {
        string dir = TinyBf16();
        string[] args = ["ask", "--model", dir, "--video", Video(), "--frames", "4", "--max-new-tokens", "2", "--json", "What happens?"];
        var r = SlowfastProcess.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var timings = JsonNode.Parse(r.Stdout)!["timings"]!;
        double packing = (double)timings["vision_packing_s"]!, vision = (double)timings["vision_s"]!;
        bool bf16 = (string?)JsonNode.Parse(r.Stdout)!["precision"] == "bf16";
        Assert.Equal(bf16, packing > 0);                    // packed at the first bf16 frame, timed apart...
        Assert.True(packing <= vision, $"packing {packing} s is part of vision {vision} s");   // ...as part of the vision time
        Assert.Equal(bf16, r.Stderr.Contains("packing the tower's matrices"));

        var lean = SlowfastProcess.Run([.. args[..^1], "--no-packed-vision", args[^1]]);
        Assert.True(lean.ExitCode == 0, lean.Stderr);
        Assert.Equal(0.0, (double)JsonNode.Parse(lean.Stdout)!["timings"]!["vision_packing_s"]!);
        Assert.DoesNotContain("packing the tower's matrices", lean.Stderr);

        // One question a process: the decoder stays as stored unless --pack-decoder asks for it.
        Assert.Contains("(decoder matrices as stored)", r.Stderr);
        var packedDecoder = SlowfastProcess.Run([.. args[..^1], "--pack-decoder", args[^1]]);
        Assert.True(packedDecoder.ExitCode == 0, packedDecoder.Stderr);
        Assert.Contains(bf16 ? "(decoder matrices packed for the bf16 GEMM in " : "(decoder matrices as stored)", packedDecoder.Stderr);

        // encode says it on its vision line too.
        var encoded = SlowfastProcess.Run("encode", "--model", dir, "--video", Video(), "--frames", "2", "--out", Path.Combine(tiny.Root, "bf16-features.safetensors"));
        Assert.True(encoded.ExitCode == 0, encoded.Stderr);
        Assert.Equal(bf16, encoded.Stderr.Contains("packing the tower's matrices once"));
    }

    [Fact]
    public void ForwardWritesLogitsForEveryPromptPosition()
    {
        string outPath = Path.Combine(tiny.Root, "forward.safetensors");
        var r = SlowfastProcess.Run("forward", "--model", tiny.ModelDir, "--video", Video(), "--frames", "5", "--prompt", "What is shown?", "--out", outPath);
        Assert.Equal(0, r.ExitCode);
        using var f = SafetensorsFile.Open(outPath);
        var logits = f.Get("logits");
        var ids = f.Get("input_ids");
        var fast = f.Get("fast_tokens");
        var slow = f.Get("slow_tokens");
        Assert.Equal(151936, logits.Dim(1));
        Assert.Equal(64, fast.Dim(1));
        Assert.Equal(5 * 4, slow.Dim(0));                 // 5 frames x 4 pooled tokens
        Assert.Equal(2 * 4, fast.Dim(0));                 // 5/4 = 1 < min_fast_frames 2 -> adaptive to 2 frames
        Assert.Equal(ids.Dim(0) - 1 + fast.Dim(0), logits.Dim(0)); // the placeholder becomes the fast tokens
        Assert.All(logits.ToFloatArray().Take(1000), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void BaselineDesignPutsEveryFramesTokensInTheSequence()
    {
        string slowFastPath = Path.Combine(tiny.Root, "forward-sf.safetensors"), baselinePath = Path.Combine(tiny.Root, "forward-baseline.safetensors");
        string[] common = ["forward", "--model", tiny.ModelDir, "--video", Video(), "--frames", "5", "--prompt", "What is shown?", "--precision", "f32"];
        Assert.Equal(0, SlowfastProcess.Run([.. common, "--out", slowFastPath]).ExitCode);
        var r = SlowfastProcess.Run([.. common, "--design", "baseline", "--out", baselinePath]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var sf = SafetensorsFile.Open(slowFastPath);
        using var baseline = SafetensorsFile.Open(baselinePath);
        // The baseline's visual tokens in the sequence are the slow-fast run's slow tokens (5 frames x 4), and there are no slow tokens.
        Assert.Equal(sf.Get("slow_tokens").ToFloatArray(), baseline.Get("fast_tokens").ToFloatArray());
        Assert.False(baseline.Entries.Any(e => e.Name == "slow_tokens"));
        Assert.Equal(sf.Get("logits").Dim(0) - 8 + 20, baseline.Get("logits").Dim(0));
        Assert.Equal("baseline", baseline.Metadata["design"]);

        var ask = JsonNode.Parse(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", Video(), "--frames", "5", "--design", "baseline",
            "--max-new-tokens", "3", "--json", "--no-cache", "What happens?").Stdout)!;
        Assert.Equal(20, (int)ask["tokens"]!["fast"]!);
        Assert.Equal(0, (int)ask["tokens"]!["slow"]!);
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--design", "llava", "q"), 2, "--design");
    }

    [Fact]
    public void EncodeWritesResumableFeaturesThatForwardAndAskRead()
    {
        string features = Path.Combine(tiny.Root, "clip-features.safetensors");
        string[] encode = ["encode", "--model", tiny.ModelDir, "--video", Video(), "--frames", "12", "--precision", "f32", "--out", features];
        var r = SlowfastProcess.Run(encode);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.False(File.Exists(features + ".progress"));
        byte[] complete = File.ReadAllBytes(features);

        // An interrupted run: frames 5.. never written. The next run continues at frame 5 and gives the same file.
        using (var f = new FileStream(features, FileMode.Open, FileAccess.Write))
        {
            f.Position = complete.Length - 7 * 4 * 64 * 2;
            f.Write(new byte[7 * 4 * 64 * 2]);
        }
        File.WriteAllText(features + ".progress", "5");
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--features", features, "q"), 1, "unfinished");
        r = SlowfastProcess.Run(encode);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("resume    5 of 12 frames", r.Stderr);
        Assert.Equal(complete, File.ReadAllBytes(features));

        // forward --features: the slow tokens are the encoded ones rounded to bfloat16, the fast ones pooled from them.
        string direct = Path.Combine(tiny.Root, "forward-direct.safetensors"), fromFile = Path.Combine(tiny.Root, "forward-features.safetensors");
        Assert.Equal(0, SlowfastProcess.Run("forward", "--model", tiny.ModelDir, "--video", Video(), "--frames", "12", "--precision", "f32", "--prompt", "What?", "--out", direct).ExitCode);
        r = SlowfastProcess.Run("forward", "--model", tiny.ModelDir, "--features", features, "--precision", "f32", "--prompt", "What?", "--out", fromFile);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var a = SafetensorsFile.Open(direct);
        using var b = SafetensorsFile.Open(fromFile);
        var slow = a.Get("slow_tokens").ToFloatArray();
        var rounded = slow.Select(v => BitConverter.Int32BitsToSingle((int)((uint)(BitConverter.SingleToInt32Bits(v) + 0x7FFF + ((BitConverter.SingleToInt32Bits(v) >> 16) & 1)) & 0xFFFF0000u))).ToArray();
        Assert.Equal(rounded, b.Get("slow_tokens").ToFloatArray());
        Assert.Equal(a.Get("logits").Dim(0), b.Get("logits").Dim(0));
        Assert.True(TestMax(a.Get("logits").ToFloatArray(), b.Get("logits").ToFloatArray()) < 0.05);

        var ask = JsonNode.Parse(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--features", features, "--max-new-tokens", "3", "--json", "What?").Stdout)!;
        Assert.Equal(48, (int)ask["tokens"]!["slow"]!);
        // Another checkpoint's tokens are refused.
        string other = Path.Combine(tiny.Root, "other-model");
        Assert.Equal(0, SlowfastProcess.Run("create-model", "--preset", "tiny", "--out", other, "--seed", "99", "--tokenizer", SlowfastProcess.TokenizerJson()).ExitCode);
        AssertCleanError(SlowfastProcess.Run("ask", "--model", other, "--features", features, "q"), 1, "another checkpoint");
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--features", features, "--video", Video(), "q"), 2, "only one of");
    }

    private static double TestMax(float[] x, float[] y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max();

    [Fact]
    public void FpsAndTimeRangeSampleTheVideo()
    {
        string outPath = Path.Combine(tiny.Root, "forward-fps.safetensors");
        // The clip is 2 s at 25 fps: 2 frames a second between 0.5 s and 1.5 s keeps every 12th or 13th frame of those 26.
        var r = SlowfastProcess.Run("forward", "--model", tiny.ModelDir, "--video", Video(), "--fps", "2", "--start", "0.5", "--end", "1.5", "--prompt", "What?", "--out", outPath);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using (var f = SafetensorsFile.Open(outPath))
        {
            int frames = int.Parse(f.Metadata["frames"]);
            Assert.InRange(frames, 2, 3);
            Assert.Equal(frames * 4, f.Get("slow_tokens").Dim(0));
        }
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--fps", "2", "q"), 2, "--fps applies to --video");
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", Video(), "--start", "5", "--no-cache", "q"), 1, "no frames between");
    }

    [Fact]
    public void SeveralImagesAreTheFramesOfOneVideo()
    {
        var pngs = new[] { "testsrc2", "smptebars", "rgbtestsrc" }.Select((source, i) =>
        {
            string png = Path.Combine(tiny.Root, $"frame{i}.png");
            var psi = new ProcessStartInfo("ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", $"{source}=size=200x150", "-frames:v", "1", png]);
            using (var p = Process.Start(psi)!) p.WaitForExit();
            return png;
        }).ToArray();
        string outPath = Path.Combine(tiny.Root, "forward-images.safetensors"), swapped = Path.Combine(tiny.Root, "forward-images-swapped.safetensors");
        var r = SlowfastProcess.Run("forward", "--model", tiny.ModelDir, "--image", pngs[0], "--image", pngs[1], "--image", pngs[2], "--prompt", "What?", "--out", outPath);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(0, SlowfastProcess.Run("forward", "--model", tiny.ModelDir, "--image", pngs[2], "--image", pngs[1], "--image", pngs[0], "--prompt", "What?", "--out", swapped).ExitCode);
        using var f = SafetensorsFile.Open(outPath);
        using var g = SafetensorsFile.Open(swapped);
        Assert.Equal("3", f.Metadata["frames"]);
        Assert.Equal(3 * 4, f.Get("slow_tokens").Dim(0)); // a video: every frame video-pooled to 2x2
        var slow = f.Get("slow_tokens").ToFloatArray();
        var slowSwapped = g.Get("slow_tokens").ToFloatArray();
        // Frame by frame, in order: the first frame of one is the last of the other.
        Assert.Equal(slow.AsSpan(0, 4 * 64).ToArray(), slowSwapped.AsSpan(8 * 64, 4 * 64).ToArray());
        Assert.NotEqual(slow, slowSwapped);
    }

    [Fact]
    public void AskWithAnImageAndWithoutVisualInput()
    {
        string png = Path.Combine(tiny.Root, "frame.png");
        var psi = new ProcessStartInfo("ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=200x150", "-frames:v", "1", png]);
        using (var p = Process.Start(psi)!) p.WaitForExit();
        var r = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--image", png, "--max-new-tokens", "4", "--json", "What is this?");
        Assert.Equal(0, r.ExitCode);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(16, (int)j["tokens"]!["fast"]!);    // an image: 4x4 tokens, no video pooling
        Assert.Equal(16, (int)j["tokens"]!["slow"]!);
    }

    private static void AssertCleanError(SlowfastProcess.Result r, int exitCode, params string[] mustContain)
    {
        Assert.Equal(exitCode, r.ExitCode);
        Assert.Single(r.StderrLines, l => !l.StartsWith("model "));
        Assert.DoesNotContain("   at ", r.Stderr);
        foreach (var s in mustContain) Assert.Contains(s, r.Stderr);
    }

    [Fact]
    public void BadVideoInputs()
    {
        string missing = Path.Combine(tiny.Root, "missing.mp4");
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", missing, "q"), 1, "missing.mp4");
        string garbage = Path.Combine(tiny.Root, "garbage.mp4");
        File.WriteAllBytes(garbage, Enumerable.Range(0, 5000).Select(i => (byte)(i * 31 % 251)).ToArray());
        AssertCleanError(SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", garbage, "q"), 1, "garbage.mp4");
        var both = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", Video(), "--image", Video(), "q");
        Assert.NotEqual(0, both.ExitCode);
    }

    [Fact]
    public void PromptOverTheContextIsRefusedBeforeAnyWork()
    {
        string dir = Path.Combine(tiny.Root, "short-context");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(tiny.ModelDir))
        {
            string dst = Path.Combine(dir, Path.GetFileName(f));
            if (!File.Exists(dst)) File.CreateSymbolicLink(dst, f);
        }
        string config = Path.Combine(dir, "config.json");
        var o = JsonNode.Parse(File.ReadAllText(Path.Combine(tiny.ModelDir, "config.json")))!.AsObject();
        o["tokenizer_model_max_length"] = 40;
        File.Delete(config);
        File.WriteAllText(config, o.ToJsonString());
        var r = SlowfastProcess.Run("ask", "--model", dir, "--video", Video(), "--frames", "64", "q");
        AssertCleanError(r, 1, "context");
        Assert.DoesNotContain("vision ", r.Stderr); // refused before encoding the video
    }

    [Fact]
    public void HubIdOfflineSaysWhatIsMissing()
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { SlowfastProcess.Dll, "ask", "--video", Video(), "q" }) psi.ArgumentList.Add(a);
        psi.Environment["HF_HUB_OFFLINE"] = "1";
        psi.Environment["SLOWFAST_CACHE_DIR"] = SlowfastProcess.CacheDir;
        psi.Environment["HF_HUB_CACHE"] = Path.Combine(tiny.Root, "empty-hub-cache");
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(1, p.ExitCode);
        Assert.Contains("shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4", err);
        Assert.Contains("slowfast pull", err);
    }

    [Fact]
    public void Precision_bf16_changes_the_arithmetic_on_a_BF16_checkpoint_and_bad_values_are_usage_errors()
    {
        string dir = TinyBf16();
        float[] Logits(string precision, bool noJit = false)
        {
            string outPath = Path.Combine(tiny.Root, $"forward-{precision}-{noJit}.safetensors");
            var env = noJit ? new Dictionary<string, string> { ["SLOWFAST_NO_JIT"] = "1" } : new Dictionary<string, string>();
            var r = SlowfastProcess.RunWithEnvironment(null, env, "forward", "--model", dir, "--video", Video(), "--frames", "8",
                "--precision", precision, "--prompt", "What is shown?", "--out", outPath);
            Assert.True(r.ExitCode == 0, r.Stderr);
            if (precision == "bf16" && (noJit || !SlowFast.Tensors.Kernels.MatMul.BFloat16Supported))
                Assert.Contains("computing in float32", r.Stderr);
            using var f = SafetensorsFile.Open(outPath);
            return f.Get("logits").ToFloatArray();
        }
        var f32 = Logits("f32");
        var bf16 = Logits("bf16");
        Assert.Equal(f32.Length, bf16.Length);
        double maxDiff = f32.Zip(bf16, (a, b) => Math.Abs((double)a - b)).Max();
        double scale = f32.Max(v => Math.Abs((double)v));
        if (SlowFast.Tensors.Kernels.MatMul.BFloat16Supported)
            Assert.True(maxDiff > 0 && maxDiff < 0.05 * scale, $"bf16 logits differ from f32 by {maxDiff} (logit scale {scale})");
        else
            Assert.Equal(0, maxDiff);   // no AVX512-BF16: the option computes in float32
        Assert.Equal(f32, Logits("bf16", noJit: true));   // generated code turned off: float32, and it says so

        var json = JsonNode.Parse(SlowfastProcess.Run("ask", "--model", dir, "--precision", "bf16", "--max-new-tokens", "2", "--json", "Hi").Stdout)!;
        Assert.Equal(SlowFast.Tensors.Kernels.MatMul.BFloat16Supported ? "bf16" : "f32", (string?)json["precision"]);

        AssertCleanError(SlowfastProcess.Run("ask", "--model", dir, "--precision", "int4", "q"), 2, "--precision must be auto, f32 or bf16", "int4");
    }

    [Fact]
    public void Both_bfloat16_tile_arithmetics_give_the_same_logits_and_a_bad_choice_is_a_clean_error()
    {
        // SLOWFAST_BF16_TILES picks the bf16 GEMM's tiles (vdpbf16ps, or FMAs on widened operands) over the
        // measured choice: a whole forward pass (tower and prompt) gives the same logits with either, up to
        // the order float32 additions round in (equal bit for bit where vdpbf16ps adds each pair odd product
        // first, as Intel defines it).
        if (!SlowFast.Tensors.Kernels.MatMul.BFloat16Supported) return;
        string dir = TinyBf16();
        SlowfastProcess.Result Forward(string tiles, string outPath) =>
            SlowfastProcess.RunWithEnvironment(null, new Dictionary<string, string> { ["SLOWFAST_BF16_TILES"] = tiles },
                "forward", "--model", dir, "--video", Video(), "--frames", "8", "--precision", "bf16", "--prompt", "What is shown?", "--out", outPath);
        float[] Logits(string tiles)
        {
            string outPath = Path.Combine(tiny.Root, $"forward-tiles-{tiles}.safetensors");
            var r = Forward(tiles, outPath);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var f = SafetensorsFile.Open(outPath);
            return f.Get("logits").ToFloatArray();
        }
        var dot = Logits("dot");
        var fma = Logits("fma");
        double scale = dot.Max(v => Math.Abs((double)v));
        double maxDiff = dot.Zip(fma, (a, b) => Math.Abs((double)a - b)).Max();
        Assert.True(maxDiff <= 1e-4 * scale, $"logits with the widened tiles differ from vdpbf16ps's by {maxDiff} (logit scale {scale})");
        if (File.ReadAllText("/proc/cpuinfo").Contains("GenuineIntel")) Assert.Equal(dot, fma);   // Intel's vdpbf16ps order

        AssertCleanError(Forward("amx", Path.Combine(tiny.Root, "forward-tiles-bad.safetensors")), 1, "SLOWFAST_BF16_TILES must be dot or fma", "'amx'");
    }

    private static readonly object TinyBf16Lock = new();

    /// <summary>The tiny preset with BF16 weights (seed 7), made once for the tests that need it.</summary>
    private string TinyBf16()
    {
        string dir = Path.Combine(tiny.Root, "tiny-bf16");
        lock (TinyBf16Lock)
            if (!File.Exists(Path.Combine(dir, "config.json")))
            {
                var made = SlowfastProcess.Run("create-model", "--preset", "tiny", "--dtype", "bf16", "--out", dir, "--seed", "7", "--tokenizer", SlowfastProcess.TokenizerJson());
                Assert.True(made.ExitCode == 0, made.Stderr);
            }
        return dir;
    }
}
