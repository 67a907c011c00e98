namespace SlowFast.Media.Tests;

/// <summary>End to end: sampling modes, time ranges, the time instruction and the pixels file.</summary>
public class LoadingTests
{
    [Fact]
    public void Uniform_SamplesTheReferenceIndicesAndTheirPictures()
    {
        string video = DecodingTests.Make("h264.mp4"); // 50 frames, 25 fps
        var input = MediaLoader.LoadVideo(video, new VideoOptions { Frames = 8, Size = 32 });
        Assert.Equal(FrameSampler.Uniform(50, 8), input.FrameIndices);
        Assert.Equal(8, input.FrameCount);
        Assert.Equal(8 * 3 * 32 * 32, input.PixelValues.Length);
        Assert.Equal(50, input.TotalFrames);
        Assert.Equal(25, input.FrameRate, 6);
        Assert.Equal("Time: 2.0s; Time interval between frame 0.25s; video tokens:", input.TimeInstruction);
        for (int t = 0; t < 8; t++)
        {
            Assert.Equal(input.FrameIndices[t] / 25.0, input.Timestamps[t], 6);
            // The centre pixel of a flat frame, un-normalised, is that frame's colour.
            var colour = TestMedia.ColourOf(input.FrameIndices[t]);
            int plane = 32 * 32, centre = 16 * 32 + 16;
            int[] want = [colour.R, colour.G, colour.B];
            for (int c = 0; c < 3; c++)
            {
                double u = (input.PixelValues[t * 3 * plane + c * plane + centre] * ClipPreprocessor.ClipStd[c] + ClipPreprocessor.ClipMean[c]) * 255;
                Assert.InRange(u, want[c] - 8, want[c] + 8);
            }
        }
    }

    [Fact]
    public void MoreFramesThanTheVideoHas_Repeats()
    {
        string video = DecodingTests.Make("av1.mkv"); // 25 frames
        var input = MediaLoader.LoadVideo(video, new VideoOptions { Frames = 40, Size = 16 });
        Assert.Equal(40, input.FrameCount);
        Assert.Equal(FrameSampler.Uniform(25, 40), input.FrameIndices);
        // Repeated indices carry identical pixels.
        for (int t = 1; t < 40; t++)
            if (input.FrameIndices[t] == input.FrameIndices[t - 1])
                Assert.True(input.Frame(t).SequenceEqual(input.Frame(t - 1)));
    }

    [Fact]
    public void FpsSampling_FollowsTheReference()
    {
        string video = DecodingTests.Make("big-h264.mp4"); // 75 frames at 25 fps
        var input = MediaLoader.LoadVideo(video, new VideoOptions { Frames = 64, Size = 16, Sampling = SamplingMode.Fps, TargetFps = 2 });
        // Every round(25 / 2) = 12th frame: 0, 12, ..., 72 (fewer than the cap, so all kept).
        Assert.Equal(new long[] { 0, 12, 24, 36, 48, 60, 72 }, input.FrameIndices);
        Assert.Equal("fps", input.SamplingName);
        var capped = MediaLoader.LoadVideo(video, new VideoOptions { Frames = 3, Size = 16, Sampling = SamplingMode.Fps, TargetFps = 2 });
        Assert.Equal(FrameSampler.AtRate(75, 25, 2, 3), capped.FrameIndices);
    }

    [Fact]
    public void TimeRange_SamplesInsideIt()
    {
        string video = DecodingTests.Make("big-h264.mp4"); // 3 s
        var input = MediaLoader.LoadVideo(video, new VideoOptions { Frames = 5, Size = 16, Start = 1.0, End = 2.0 });
        // Frames at 1.00 .. 2.00 s are 25 .. 50: 26 frames.
        Assert.Equal(26, input.TotalFrames);
        Assert.Equal(FrameSampler.Uniform(26, 5).Select(i => i + 25), input.FrameIndices);
        Assert.All(input.Timestamps, t => Assert.InRange(t, 1.0, 2.0));
        Assert.Equal(MediaLoader.TimeInstruction(26 / 25.0, 5), input.TimeInstruction);
    }

    [Fact]
    public void PixelsFile_RoundTrips()
    {
        string video = DecodingTests.Make("vp9.webm");
        var input = MediaLoader.LoadVideo(video, new VideoOptions { Frames = 6, Size = 24, Sampling = SamplingMode.Fps, TargetFps = 5 });
        string path = Path.Combine(TestMedia.Dir, "pixels.safetensors");
        PixelsFile.Write(path, input);
        var back = PixelsFile.Read(path);
        Assert.Equal(input.PixelValues, back.PixelValues);
        Assert.Equal(input.FrameIndices, back.FrameIndices);
        Assert.Equal(input.Timestamps, back.Timestamps);
        Assert.Equal((input.FrameCount, input.Size, input.TotalFrames), (back.FrameCount, back.Size, back.TotalFrames));
        Assert.Equal(input.FrameRate, back.FrameRate);
        Assert.Equal(input.TimeInstruction, back.TimeInstruction);
        Assert.Equal("fps", back.SamplingName);
        using var raw = SlowFast.Tensors.IO.SafetensorsFile.Open(path);
        Assert.Equal(PixelsFile.FormatTag, raw.Metadata["format"]);
        Assert.Equal("[6, 3, 24, 24]", raw.Get("pixel_values").ShapeString);
    }

    [Fact]
    public void PixelsFile_RejectsOtherSafetensors()
    {
        string path = Path.Combine(TestMedia.Dir, "not-pixels.safetensors");
        SlowFast.Tensors.IO.SafetensorsWriter.Write(path,
            [(new SlowFast.Tensors.IO.TensorSpec("pixel_values", SlowFast.Tensors.DType.F32, [2, 2]), new byte[16])]);
        var e = Assert.Throws<UserError>(() => PixelsFile.Read(path));
        Assert.Contains("pixel_values", e.Message);
    }
}
