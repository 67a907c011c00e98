namespace SlowFast.Media.Tests;

/// <summary>Probing and frame-accurate decoding across codecs, containers, sizes, rotations and frame rates.</summary>
public class DecodingTests
{
    public static TheoryData<string, int, int, int> ColourVideos => new()
    {
        // name, width, height, frames
        { "h264.mp4", 64, 48, 50 },
        { "h264.mov", 64, 48, 50 },
        { "h265.mp4", 64, 48, 50 },
        { "vp8.webm", 64, 48, 50 },
        { "vp9.webm", 64, 48, 50 },
        { "av1.mkv", 64, 48, 25 },
        { "anim.gif", 64, 48, 20 },
        { "odd-h264.mp4", 65, 49, 30 },
        { "odd-vp9.webm", 67, 45, 30 },
        { "big-h264.mp4", 320, 240, 75 },
        { "h264.ts", 64, 48, 50 },
    };

    /// <summary>Makes the colour-coded video of a test case (keyframe every 12 frames, so seeking matters).</summary>
    public static string Make(string name) => name switch
    {
        "h264.mp4" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 2), "-c:v", "libx264", "-g", "12", "-bf", "2", "-pix_fmt", "yuv420p"),
        "h264.mov" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 2), "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p"),
        "h265.mp4" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 2), "-c:v", "libx265", "-x265-params", "log-level=error:keyint=12", "-pix_fmt", "yuv420p"),
        "vp8.webm" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 2), "-c:v", "libvpx", "-g", "12", "-crf", "10", "-b:v", "1M"),
        "vp9.webm" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 2), "-c:v", "libvpx-vp9", "-g", "12", "-crf", "20", "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"),
        "av1.mkv" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 1), "-c:v", "libaom-av1", "-cpu-used", "8", "-g", "12", "-crf", "20", "-pix_fmt", "yuv420p"),
        "anim.gif" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 10, 2)),
        "odd-h264.mp4" => TestMedia.Lavfi(name, TestMedia.ColourSource(65, 49, 30, 1), "-c:v", "libx264", "-g", "7", "-pix_fmt", "yuv444p"),
        "odd-vp9.webm" => TestMedia.Lavfi(name, TestMedia.ColourSource(67, 45, 30, 1), "-c:v", "libvpx-vp9", "-g", "7", "-crf", "20", "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"),
        "big-h264.mp4" => TestMedia.Lavfi(name, TestMedia.ColourSource(320, 240, 25, 3), "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p"),
        "h264.ts" => TestMedia.Lavfi(name, TestMedia.ColourSource(64, 48, 25, 2), "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p"),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(ColourVideos))]
    public void Probe_ReportsSizeFramesAndKeyframes(string name, int width, int height, int frames)
    {
        var probe = MediaLoader.Probe(Make(name));
        Assert.Equal((width, height), (probe.Width, probe.Height));
        Assert.Equal(frames, probe.FrameCount);
        Assert.Equal(0, probe.Rotation);
        Assert.False(probe.IsStillImage);
        Assert.True(probe.FrameRate > 0);
        Assert.True(probe.IsKeyframe[0]);
        for (int i = 1; i < probe.FrameTimes.Length; i++) Assert.True(probe.FrameTimes[i] > probe.FrameTimes[i - 1]);
    }

    [Theory]
    [MemberData(nameof(ColourVideos))]
    public void EveryFrame_DecodesToItsOwnPicture_BothStrategies(string name, int width, int height, int frames)
    {
        var probe = MediaLoader.Probe(Make(name));
        var all = Enumerable.Range(0, frames).Select(i => (long)i).ToArray();
        var sequential = FrameDecoder.Decode(probe, all, DecodeStrategy.Sequential).Select(f => f.Clone()).ToList();
        Assert.Equal(frames, sequential.Count);
        foreach (var f in sequential)
        {
            Assert.Equal((width, height), (f.Width, f.Height));
            Assert.Equal(f.Index, TestMedia.IdentifyFrame(f, frames));
        }

        // Seeking to scattered frames (with a repeat) gives the very same pixels.
        long[] picks = [1, 5, 5, frames / 2, frames / 2 + 1, frames - 3, frames - 1];
        var sought = FrameDecoder.Decode(probe, picks, DecodeStrategy.Seek).Select(f => f.Clone()).ToList();
        Assert.Equal(picks, sought.Select(f => f.Index).ToArray());
        foreach (var f in sought)
        {
            Assert.Equal(sequential[(int)f.Index].Rgb, f.Rgb);
            Assert.Equal(probe.FrameTimes[f.Index], f.Timestamp);
        }
    }

    [Theory]
    [InlineData("h264.mp4", DecodeStrategy.Seek)]
    [InlineData("vp9.webm", DecodeStrategy.Seek)]
    [InlineData("anim.gif", DecodeStrategy.Sequential)]
    [InlineData("h264.ts", DecodeStrategy.Sequential)] // MPEG-TS seeks are inexact
    public void Auto_SeeksOnlyInIndexedContainers(string name, DecodeStrategy expected) =>
        Assert.Equal(expected, FrameDecoder.ChooseStrategy(MediaLoader.Probe(Make(name)), DecodeStrategy.Auto));

    [Theory]
    [InlineData(90)]
    [InlineData(180)]
    [InlineData(270)]
    public void RotationMetadata_IsApplied(int rotate)
    {
        string plain = Make("h264.mov");
        string rotated = TestMedia.Custom($"rot{rotate}.mp4", path =>
            ["-i", DecodingTests.MakeAsymmetric(), "-c", "copy", "-metadata:s:v:0", $"rotate={rotate}", path]);
        string upright = MakeAsymmetric();
        var probe = MediaLoader.Probe(rotated);
        Assert.Equal(rotate, probe.Rotation);
        var baseProbe = MediaLoader.Probe(upright);
        bool swap = rotate % 180 != 0;
        Assert.Equal(swap ? (baseProbe.Height, baseProbe.Width) : (baseProbe.Width, baseProbe.Height), (probe.Width, probe.Height));

        var a = FrameDecoder.Decode(baseProbe, [3]).Single().Clone();
        var b = FrameDecoder.Decode(probe, [3]).Single().Clone();
        // The same bitstream, so the picture must be an exact rotation of the upright one.
        // ffprobe's rotation R (the display matrix angle) turns the picture counter-clockwise by R.
        int w = a.Width, h = a.Height;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var (bx, by) = rotate switch
                {
                    90 => (y, w - 1 - x),
                    180 => (w - 1 - x, h - 1 - y),
                    _ => (h - 1 - y, x),
                };
                for (int c = 0; c < 3; c++)
                    Assert.Equal(a.Rgb[3 * (y * w + x) + c], b.Rgb[3 * (by * b.Width + bx) + c]);
            }
        Assert.NotNull(plain);
    }

    /// <summary>A lossless video whose picture has no symmetry (so every rotation is distinguishable).</summary>
    public static string MakeAsymmetric() => TestMedia.Lavfi("asym.mp4",
        "testsrc2=s=64x48:r=25:d=1", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", "-g", "5");

    [Fact]
    public void AudioBeforeVideo_PicksTheVideoStream()
    {
        string path = TestMedia.Custom("audio-first.mkv", p =>
            ["-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", TestMedia.ColourSource(64, 48, 25, 1),
             "-map", "0:a", "-map", "1:v", "-c:a", "libopus", "-c:v", "libx264", "-g", "5", p]);
        var probe = MediaLoader.Probe(path);
        Assert.Equal(1, probe.StreamIndex);
        Assert.Equal(25, probe.FrameCount);
        long[] picks = [0, 7, 19];
        var seen = FrameDecoder.Decode(probe, picks, DecodeStrategy.Seek).Select(f => TestMedia.IdentifyFrame(f, 25)).ToArray();
        Assert.Equal(picks, seen);
    }

    [Fact]
    public void VariableFrameRate_TimesAndFramesMatch()
    {
        // 10 frames at 25 fps, then 10 fps: timestamps are irregular.
        string vfr = TestMedia.Lavfi("vfr.mkv", TestMedia.ColourSource(64, 48, 25, 1),
            "-vf", "setpts='if(lt(N,10),N*0.04,0.4+(N-10)*0.1)/TB'", "-fps_mode", "vfr", "-c:v", "libx264", "-g", "6");
        var probe = MediaLoader.Probe(vfr);
        Assert.Equal(25, probe.FrameCount);
        Assert.Equal(0.0, probe.FrameTimes[0], 3);
        Assert.Equal(0.36, probe.FrameTimes[9], 3);
        double earlyGap = probe.FrameTimes[5] - probe.FrameTimes[4];
        double lateGap = probe.FrameTimes[20] - probe.FrameTimes[19];
        Assert.True(lateGap > 1.5 * earlyGap, $"gaps {earlyGap} and {lateGap}");

        long[] picks = [0, 9, 10, 17, 24];
        foreach (var strategy in new[] { DecodeStrategy.Seek, DecodeStrategy.Sequential })
        {
            var got = FrameDecoder.Decode(probe, picks, strategy).Select(f => (f.Index, Seen: TestMedia.IdentifyFrame(f, 25), f.Timestamp)).ToList();
            Assert.Equal(picks, got.Select(g => g.Index));
            Assert.Equal(picks, got.Select(g => g.Seen));
            Assert.Equal(picks.Select(p => probe.FrameTimes[p]), got.Select(g => g.Timestamp));
        }
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpg")]
    [InlineData("webp")]
    public void StillImages_AreOneFrame(string ext)
    {
        string path = TestMedia.Lavfi($"still.{ext}", TestMedia.ColourSource(97, 61, 1, 1), "-frames:v", "1");
        var probe = MediaLoader.Probe(path);
        Assert.True(probe.IsStillImage);
        Assert.Equal((97, 61), (probe.Width, probe.Height));
        var input = MediaLoader.LoadImage(path, 32);
        Assert.Equal(1, input.FrameCount);
        Assert.Equal(3 * 32 * 32, input.PixelValues.Length);
        Assert.Equal("", input.TimeInstruction);
        // A still image through LoadVideo is also one frame, whatever N asks.
        Assert.Equal(1, MediaLoader.LoadVideo(path, new VideoOptions { Frames = 8, Size = 32 }).FrameCount);
    }

    /// <summary>Odd-sized, busy picture (testsrc2 rounds sizes to even, so crop it).</summary>
    private const string StillSource = "testsrc2=s=98x62:r=1:d=1,format=rgb24,crop=97:61:1:1";

    [Fact]
    public void PngThroughFfmpeg_MatchesTheRawPixels()
    {
        // PNG is lossless: ffmpeg's decode + our preprocessing must equal preprocessing the raw bytes.
        string raw = TestMedia.Lavfi("still.rgb", StillSource, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24");
        string png = TestMedia.Lavfi("still-lossless.png", StillSource, "-frames:v", "1");
        var fromFile = MediaLoader.LoadImage(png, 48, AspectMode.Pad);
        var expected = new float[3 * 48 * 48];
        new ClipPreprocessor(48, AspectMode.Pad).Preprocess(File.ReadAllBytes(raw), 97, 61, expected);
        Assert.Equal(expected, fromFile.PixelValues);
    }

    [Fact]
    public void A_still_image_given_as_a_video_takes_the_image_aspect_mode()
    {
        string png = TestMedia.Lavfi("still-lossless.png", StillSource, "-frames:v", "1");
        var padded = MediaLoader.LoadImage(png, 48, AspectMode.Pad);
        var cropped = MediaLoader.LoadImage(png, 48, AspectMode.Crop);
        Assert.NotEqual(padded.PixelValues, cropped.PixelValues);   // 97x61: the two modes differ
        var asVideo = MediaLoader.LoadVideo(png, new VideoOptions { Frames = 8, Size = 48, Aspect = AspectMode.Crop, ImageAspect = AspectMode.Pad });
        Assert.Equal(padded.PixelValues, asVideo.PixelValues);
        Assert.Equal(AspectMode.Pad, asVideo.Aspect);
        // Without ImageAspect a still image takes the video's mode, as before.
        Assert.Equal(cropped.PixelValues, MediaLoader.LoadVideo(png, new VideoOptions { Frames = 8, Size = 48 }).PixelValues);
    }
}
