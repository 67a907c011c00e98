namespace SlowFast.Media.Tests;

/// <summary>Frames handed out one at a time are exactly the frames <see cref="MediaLoader.LoadVideo"/> holds all at once.</summary>
public class FrameStreamTests
{
    [Theory]
    [InlineData(SamplingMode.Uniform, null, null)]
    [InlineData(SamplingMode.Fps, null, null)]
    [InlineData(SamplingMode.Uniform, 1.0, 2.0)]
    public void A_video_streams_the_pixels_LoadVideo_gives(SamplingMode sampling, double? start, double? end)
    {
        string video = DecodingTests.Make("big-h264.mp4"); // 3 s
        var options = new VideoOptions { Frames = 7, Size = 24, Sampling = sampling, TargetFps = 3, Start = start, End = end };
        var all = MediaLoader.LoadVideo(video, options);
        using var stream = FrameStream.OpenVideo(video, options);
        Assert.Equal(all.FrameCount, stream.FrameCount);
        var frame = new float[stream.FrameLength];
        for (int t = 0; t < stream.FrameCount; t++)
        {
            stream.ReadNext(frame);
            Assert.Equal(all.PixelValues.AsSpan(t * frame.Length, frame.Length).ToArray(), frame);
        }
        Assert.Equal(stream.FrameCount, stream.FramesRead);
        Assert.Throws<InvalidOperationException>(() => stream.ReadNext(frame));
    }

    [Fact]
    public void Images_stream_as_frames_in_order()
    {
        string png = TestMedia.Lavfi("one.png", "testsrc2=size=64x48", "-frames:v", "1");
        var options = new VideoOptions { Frames = 2, Size = 16 };
        using var stream = FrameStream.FromImages([png, png], options);
        var first = new float[stream.FrameLength];
        var second = new float[stream.FrameLength];
        stream.ReadNext(first);
        stream.ReadNext(second);
        Assert.Equal(MediaLoader.LoadImage(png, 16).PixelValues, first);
        Assert.Equal(first, second);
    }
}
