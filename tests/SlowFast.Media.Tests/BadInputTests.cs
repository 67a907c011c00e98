using System.Diagnostics;

namespace SlowFast.Media.Tests;

/// <summary>Broken or hostile inputs: always a one-line <see cref="UserError"/> naming the file, never a hang or crash.</summary>
public class BadInputTests
{
    private static UserError LoadFails(string path, VideoOptions? options = null)
    {
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<UserError>(() => MediaLoader.LoadVideo(path, options ?? new VideoOptions { Frames = 4, Size = 32 }));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), "took too long");
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void MissingFile() => Assert.Contains("not found", LoadFails(Path.Combine(TestMedia.Dir, "nope.mp4")).Message);

    [Fact]
    public void Directory_IsNamed() => Assert.Contains("directory", LoadFails(TestMedia.Dir).Message);

    [Fact]
    public void EmptyFile() =>
        Assert.Contains("empty", LoadFails(TestMedia.Bytes("empty.mp4", p => File.WriteAllBytes(p, []))).Message);

    [Fact]
    public void TextFile() =>
        Assert.Contains("not a video or image", LoadFails(TestMedia.Bytes("notes.mp4", p => File.WriteAllText(p, "just some words\n"))).Message);

    [Fact]
    public void AudioOnly() =>
        Assert.Contains("no video stream", LoadFails(TestMedia.Lavfi("tone.m4a", "sine=d=1")).Message);

    [Fact]
    public void UnknownCodec()
    {
        // An AVI whose codec tag was changed to one no decoder knows.
        string path = TestMedia.Bytes("unknown-codec.avi", p =>
        {
            string mjpeg = TestMedia.Lavfi("mjpeg.avi", TestMedia.ColourSource(64, 48, 25, 1), "-c:v", "mjpeg", "-pix_fmt", "yuvj420p");
            var bytes = File.ReadAllBytes(mjpeg);
            var tag = "MJPG"u8.ToArray();
            for (int i = 0; i + 4 <= bytes.Length; i++)
                if (bytes.AsSpan(i, 4).SequenceEqual(tag)) "QQZZ"u8.CopyTo(bytes.AsSpan(i, 4));
            File.WriteAllBytes(p, bytes);
        });
        Assert.Contains("codec", LoadFails(path).Message);
    }

    [Fact]
    public void EnormousDeclaredSize_FfmpegRefuses()
    {
        // A y4m header declaring 20000x20000 with almost no data.
        string path = TestMedia.Bytes("huge.y4m", p => File.WriteAllText(p, "YUV4MPEG2 W20000 H20000 F25:1 Ip A1:1 C420jpeg\nFRAME\nabcdef"));
        var message = LoadFails(path).Message;
        Assert.Contains("20000x20000", message);
        Assert.DoesNotContain("@ 0x", message); // ffmpeg's component tag is trimmed
    }

    [Fact]
    public void LargeDeclaredSize_OurLimit()
    {
        // 12000x12000 passes FFmpeg's own check; ours refuses before decoding a byte.
        string path = TestMedia.Bytes("large.y4m", p => File.WriteAllText(p, "YUV4MPEG2 W12000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\nabcdef"));
        Assert.Contains("limit", LoadFails(path).Message);
    }

    [Fact]
    public void TruncatedMp4_IndexAtTheEnd() =>
        LoadFails(TestMedia.Bytes("truncated.mp4", p => File.WriteAllBytes(p, File.ReadAllBytes(DecodingTests.Make("h264.mp4"))[..^2000])));

    [Fact]
    public void TruncatedMp4_IndexAtTheStart()
    {
        // moov first (faststart), then the frame data cut short: the index promises frames the file lacks.
        string fast = TestMedia.Custom("faststart.mp4", p => ["-i", DecodingTests.Make("h264.mp4"), "-c", "copy", "-movflags", "+faststart", p]);
        string path = TestMedia.Bytes("truncated-fast.mp4", p => { var b = File.ReadAllBytes(fast); File.WriteAllBytes(p, b[..(b.Length / 2)]); });
        var e = LoadFails(path, new VideoOptions { Frames = 8, Size = 32 });
        Assert.Contains("frame", e.Message);
    }

    [Fact]
    public void TruncatedWebm_DecodesWhatIsThereOrFailsCleanly()
    {
        string path = TestMedia.Bytes("truncated.webm", p => { var b = File.ReadAllBytes(DecodingTests.Make("vp9.webm")); File.WriteAllBytes(p, b[..(b.Length * 2 / 3)]); });
        // A cut Matroska file has no index to contradict: the frames that remain are the video.
        var input = MediaLoader.LoadVideo(path, new VideoOptions { Frames = 4, Size = 32 });
        Assert.True(input.TotalFrames is > 0 and < 50);
    }

    [Fact]
    public void ZeroDecodableFrames()
    {
        // Keep the index, zero every frame's bytes: nothing decodes.
        string fast = TestMedia.Custom("faststart2.mp4", p => ["-i", DecodingTests.Make("h264.mp4"), "-c", "copy", "-movflags", "+faststart", p]);
        string path = TestMedia.Bytes("zeroed.mp4", p =>
        {
            var b = File.ReadAllBytes(fast);
            int mdat = IndexOf(b, "mdat"u8);
            Array.Clear(b, mdat + 4, b.Length - mdat - 4);
            File.WriteAllBytes(p, b);
        });
        LoadFails(path);
    }

    [Fact]
    public void CorruptedMiddle_NeverCrashes()
    {
        string path = TestMedia.Bytes("corrupt.mp4", p =>
        {
            var b = File.ReadAllBytes(DecodingTests.Make("h264.mp4"));
            var rng = new Random(7);
            for (int i = b.Length / 4; i < b.Length / 2; i += 3) b[i] = (byte)rng.Next(256);
            File.WriteAllBytes(p, b);
        });
        try
        {
            var input = MediaLoader.LoadVideo(path, new VideoOptions { Frames = 8, Size = 32 });
            Assert.Equal(8, input.FrameCount);
            Assert.All(input.PixelValues, v => Assert.True(float.IsFinite(v)));
        }
        catch (UserError e)
        {
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    /// <summary>A stand-in FFmpeg program that hangs without a byte of output, as a wedged decoder would.</summary>
    private static string HangingProgram() => TestMedia.Bytes("hang.sh", p =>
    {
        File.WriteAllText(p, "#!/bin/sh\nexec sleep 60\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(p, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    });

    [Fact]
    public void StalledProbe_IsKilled()
    {
        var watch = Stopwatch.StartNew();
        var limits = new MediaLimits { Inactivity = TimeSpan.FromSeconds(1), Ffprobe = HangingProgram() };
        var e = Assert.Throws<UserError>(() => MediaLoader.LoadVideo(DecodingTests.Make("h264.mp4"), new VideoOptions { Frames = 4, Size = 32, Limits = limits }));
        Assert.Contains("ffprobe made no progress", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
    }

    [Fact]
    public void StalledDecoder_IsKilled()
    {
        var probe = MediaLoader.Probe(DecodingTests.Make("big-h264.mp4"));
        var watch = Stopwatch.StartNew();
        var limits = new MediaLimits { Inactivity = TimeSpan.FromSeconds(1), Ffmpeg = HangingProgram() };
        var e = Assert.Throws<UserError>(() => FrameDecoder.Decode(probe, [10, 40, 70], DecodeStrategy.Seek, limits).Count());
        Assert.Contains("decoding made no progress", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
    }

    [Fact]
    public void MissingFfmpeg_IsAUserError()
    {
        var limits = new MediaLimits { Ffprobe = Path.Combine(TestMedia.Dir, "no-such-ffprobe") };
        var e = Assert.Throws<UserError>(() => MediaLoader.Probe(DecodingTests.Make("h264.mp4"), limits));
        Assert.Contains("install FFmpeg", e.Message);
    }

    [Fact]
    public void Cancellation_StopsDecoding()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => MediaLoader.LoadVideo(DecodingTests.Make("h264.mp4"), new VideoOptions { Frames = 4, Size = 32 }, cts.Token));
    }

    [Fact]
    public void BadOptions()
    {
        string video = DecodingTests.Make("h264.mp4");
        Assert.Throws<UserError>(() => MediaLoader.LoadVideo(video, new VideoOptions { Frames = 0, Size = 32 }));
        Assert.Throws<UserError>(() => MediaLoader.LoadVideo(video, new VideoOptions { Frames = 4, Size = 32, Start = 5, End = 9 }));
        Assert.Throws<UserError>(() => MediaLoader.LoadVideo(video, new VideoOptions { Frames = 4, Size = 32, Start = 1, End = 0.5 }));
        Assert.Throws<UserError>(() => MediaLoader.LoadVideo(video, new VideoOptions { Frames = 4, Size = 32, Sampling = SamplingMode.Fps, TargetFps = 0 }));
    }

    private static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle)
    {
        int i = haystack.AsSpan().IndexOf(needle);
        Assert.True(i >= 0);
        return i;
    }
}
