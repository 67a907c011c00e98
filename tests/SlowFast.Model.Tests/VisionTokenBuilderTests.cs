using SlowFast.Model.Vision;
using static SlowFast.Model.Tests.VisionTestSupport;

namespace SlowFast.Model.Tests;

/// <summary>
/// Slow/fast token pooling against the scalar transcription of the reference's rules (with its zero
/// padding of the frame axis), and the token counts against <see cref="VisualTokenPlan"/>.
/// </summary>
public class VisionTokenBuilderTests
{
    private const int Hidden = 20;

    private static SlowFastConfig Config(int videoPool, int samplingStride, int temporalStride, int minFast, int spatialStride, int imageSize)
    {
        var c = Presets.Tiny();
        c.Vision = c.Vision with { ImageSize = imageSize }; // tiny tower: side = imageSize / 32
        c.MmVideoPoolingStride = videoPool;
        c.FastTokenTemporalSamplingStride = samplingStride;
        c.FastTokenTemporalStride = temporalStride;
        c.MinFastFrames = minFast;
        c.FastTokenSpatialStride = spatialStride;
        return c;
    }

    [Theory]
    // frames, video pool, sampling stride, temporal stride, min fast frames, spatial stride, image size (side = size/32)
    [InlineData(1, 2, 1, 4, 2, 1, 128)]   // image: no pooling at all
    [InlineData(1, 2, 2, 4, 2, 2, 160)]   // image, spatial pooling of an odd side (5 → 2)
    [InlineData(5, 2, 1, 4, 2, 1, 128)]   // 5/4 < 2: adaptive to 2 frames, overlapping windows [0,3) [2,5)
    [InlineData(7, 2, 1, 4, 2, 1, 128)]   // adaptive [0,4) [3,7)
    [InlineData(9, 2, 1, 4, 2, 1, 128)]   // plain windows [0,4) [4,8); frame 8 dropped
    [InlineData(8, 2, 2, 4, 2, 2, 160)]   // sampling 0,2,4,6 then adaptive; spatial 2 on side 2
    [InlineData(7, 2, 2, 2, 3, 1, 192)]   // sampling 0,2,4; 3/2 < 3 → adaptive to 3 single frames
    [InlineData(3, 1, 3, 1, 5, 2, 128)]   // fewer frames than min_fast_frames: all kept
    [InlineData(2, 2, 1, 1, 1, 1, 128)]   // no temporal pooling
    [InlineData(10, 3, 3, 2, 1, 1, 160)]  // video pooling 3 on side 5 (floor → 1); sampling 0,3,6
    [InlineData(6, 2, 1, 4, 5, 1, 128)]   // adaptive to 5 frames out of 6
    [InlineData(13, 1, 2, 3, 2, 2, 192)]  // padding to a multiple of 6 in the reference
    [InlineData(64, 2, 1, 4, 1, 1, 192)]  // the released frame64-s1t4 settings (at a toy size)
    public void Pooling_matches_reference_rules_and_token_plan(int frames, int videoPool, int sampling, int temporal, int minFast, int spatial, int size)
    {
        var c = Config(videoPool, sampling, temporal, minFast, spatial, size);
        int side = c.Vision.TokensPerSide;
        var projected = RandomFloats(frames * side * side * Hidden, seed: frames * 31 + size);

        var tokens = VisualTokenBuilder.Build(c, projected, frames, Hidden);
        var (fast, slow) = VisionScalarReference.SlowFast(c, projected, frames, side, Hidden);

        AssertClose(slow, tokens.Slow, 1e-6, "slow tokens");
        AssertClose(fast, tokens.Fast, 1e-6, "fast tokens");
        var plan = VisualTokenPlan.For(c, frames);
        Assert.Equal(plan.SlowTokens, tokens.SlowCount);
        Assert.Equal(plan.FastTokens, tokens.FastCount);
        Assert.Equal(slow.Length, plan.SlowTokens * Hidden);
        Assert.Equal(fast.Length, plan.FastTokens * Hidden);
        Assert.Equal(frames > 1, tokens.IsVideo);
        Assert.Equal(Hidden, tokens.Hidden);
    }

    [Fact]
    public void Image_tokens_are_not_video_pooled()
    {
        var c = Config(videoPool: 2, samplingStride: 1, temporalStride: 4, minFast: 2, spatialStride: 1, imageSize: 128);
        var projected = RandomFloats(16 * Hidden, seed: 5);
        var tokens = VisualTokenBuilder.Build(c, projected, 1, Hidden);
        Assert.Equal(projected, tokens.Slow);
        Assert.Equal(projected, tokens.Fast);
        Assert.Equal(16, tokens.SlowCount);
    }

    [Theory]
    // frames, stride, min frames, expected windows as start,end pairs
    [InlineData(8, 1, 2, new[] { 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8 })]
    [InlineData(9, 4, 2, new[] { 0, 4, 4, 8 })]
    [InlineData(5, 4, 2, new[] { 0, 3, 2, 5 })]             // adaptive: [⌊0⌋, ⌈2.5⌉), [⌊2.5⌋, ⌈5⌉)
    [InlineData(7, 4, 3, new[] { 0, 3, 2, 5, 4, 7 })]       // adaptive to 3: 7/3 = 2.33…
    [InlineData(2, 4, 3, new[] { 0, 1, 1, 2 })]             // adaptive to min(2, 3) = 2 frames
    [InlineData(3, 2, 1, new[] { 0, 2 })]
    public void Temporal_windows_follow_avg_pool3d_and_adaptive_rules(int frames, int stride, int minFrames, int[] expected)
    {
        var windows = VisualTokenBuilder.TemporalWindows(frames, stride, minFrames);
        Assert.Equal(expected, windows.SelectMany(w => new[] { w.Start, w.End }).ToArray());
    }

    [Fact]
    public void Strides_that_leave_no_tokens_are_refused()
    {
        var c = Config(videoPool: 2, samplingStride: 1, temporalStride: 1, minFast: 1, spatialStride: 4, imageSize: 128);
        var projected = RandomFloats(2 * 16 * Hidden, seed: 6);
        var e = Assert.Throws<UserError>(() => VisualTokenBuilder.Build(c, projected, 2, Hidden));
        Assert.Contains("fast_token_spatial_stride", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
