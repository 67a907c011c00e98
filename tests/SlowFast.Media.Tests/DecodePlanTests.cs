namespace SlowFast.Media.Tests;

/// <summary>Long runs are split so that no ffmpeg select expression grows past what ffmpeg parses.</summary>
public class DecodePlanTests
{
    [Fact]
    public void A_long_run_is_split_into_parts_that_seek_to_their_first_frame()
    {
        var frames = Enumerable.Range(0, 200).Select(i => (long)(3 * i)).ToArray();
        var runs = DecodePlan.Make(frames, new bool[600], DecodeStrategy.Sequential);
        Assert.Equal([64, 64, 64, 8], runs.Select(r => r.Frames.Count));
        Assert.Equal([0L, 192, 384, 576], runs.Select(r => r.FirstFrame));
        Assert.Equal(frames, runs.SelectMany(r => r.Frames));
    }

    [Theory]
    [InlineData(DecodeStrategy.Sequential)]
    [InlineData(DecodeStrategy.Auto)]
    public void Every_frame_of_a_300_frame_video_decodes_as_itself(DecodeStrategy strategy)
    {
        string video = TestMedia.Lavfi("long-300.mp4", TestMedia.ColourSource(64, 48, 25, 12), "-c:v", "libx264", "-g", "250", "-pix_fmt", "yuv420p");
        var probe = MediaLoader.Probe(video);
        Assert.Equal(300, probe.FrameCount);
        var all = Enumerable.Range(0, 300).Select(i => (long)i).ToArray();
        var seen = FrameDecoder.Decode(probe, all, strategy).Select(f => (f.Index, Seen: TestMedia.IdentifyFrame(f, 300))).ToList();
        Assert.Equal(all, seen.Select(s => s.Index));
        // The colour code repeats every 251 frames, so frame 251 looks like frame 0.
        Assert.Equal(all.Select(i => i % 251), seen.Select(s => s.Seen));
    }
}
