using SlowFast.Model.Vision;
using static SlowFast.Model.Tests.VisionTestSupport;

namespace SlowFast.Model.Tests;

/// <summary>The whole pixels → slow/fast tokens path against tower, projector and pooling done separately by the scalar references.</summary>
public class VisionEncoderTests
{
    [Theory]
    [InlineData(1)]  // image path
    [InlineData(5)]  // adaptive temporal pooling (tiny: stride 4, min_fast_frames 2)
    public void Encode_matches_scalar_pipeline(int frames)
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab]));
        var encoder = new VisionEncoder(model);
        int s = encoder.ImageSize, frameFloats = 3 * s * s;
        var pixels = RandomFloats(frames * frameFloats, seed: 40 + frames, scale: 2f);
        var reports = new List<int>();

        var tokens = encoder.Encode(pixels, frames, new VisionTowerTests.SyncProgress(reports), keepIntermediates: true);

        Assert.Equal(Enumerable.Range(1, frames), reports);
        int n = encoder.Tower.TokensPerFrame, hidden = model.Config.HiddenSize;
        var features = new List<float>();
        for (int f = 0; f < frames; f++) features.AddRange(VisionScalarReference.Tower(model, pixels.AsSpan(f * frameFloats, frameFloats).ToArray()));
        var expectedFeatures = features.ToArray();
        var expectedProjected = VisionScalarReference.Project(model, expectedFeatures, frames * n);
        var (fast, slow) = VisionScalarReference.SlowFast(model.Config, expectedProjected, frames, encoder.Tower.TokensPerSide, hidden);

        double scale = Math.Max(1, MaxAbs(expectedProjected));
        AssertClose(expectedFeatures, tokens.Features, 1e-4 * Math.Max(1, MaxAbs(expectedFeatures)), "features");
        AssertClose(expectedProjected, tokens.Projected, 1e-4 * scale, "projected");
        AssertClose(slow, tokens.Slow, 1e-4 * scale, "slow tokens");
        AssertClose(fast, tokens.Fast, 1e-4 * scale, "fast tokens");
        var plan = VisualTokenPlan.For(model.Config, frames);
        Assert.Equal(plan, tokens.Plan);
        Assert.Equal(plan.SlowTokens, tokens.SlowCount);
        Assert.Equal(plan.FastTokens, tokens.FastCount);
        Assert.Equal(hidden, tokens.Hidden);
        Assert.Equal(frames > 1, tokens.IsVideo);
    }

    [Fact]
    public void Intermediates_are_dropped_unless_asked_for()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab]));
        var encoder = new VisionEncoder(model);
        var pixels = RandomFloats(2 * encoder.Tower.FrameFloats, seed: 9);
        var plain = encoder.Encode(pixels, 2);
        var kept = encoder.Encode(pixels, 2, keepIntermediates: true);
        Assert.Null(plain.Features);
        Assert.Null(plain.Projected);
        Assert.Equal(kept.Slow, plain.Slow);
        Assert.Equal(kept.Fast, plain.Fast);
    }

    [Fact]
    public void Frames_from_a_source_give_the_same_tokens_as_a_pixel_array()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab]));
        var encoder = new VisionEncoder(model);
        int frameFloats = encoder.Tower.FrameFloats;
        var pixels = RandomFloats(3 * frameFloats, seed: 12);
        var asked = new List<int>();
        var fromSource = encoder.Encode(3, (f, chw) => { asked.Add(f); pixels.AsSpan(f * frameFloats, frameFloats).CopyTo(chw); });
        var fromArray = encoder.Encode(pixels, 3);
        Assert.Equal([0, 1, 2], asked);
        Assert.Equal(fromArray.Slow, fromSource.Slow);
        Assert.Equal(fromArray.Fast, fromSource.Fast);
    }

    [Fact]
    public void Too_many_frames_for_the_memory_budget_are_refused_before_any_work()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab]));
        var encoder = new VisionEncoder(model);
        encoder.MaxTokenBytes = encoder.TokenBytes(4) - 1;
        var pixels = new float[4 * encoder.Tower.FrameFloats];
        var reports = new List<int>();
        var e = Assert.Throws<UserError>(() => encoder.Encode(pixels, 4, new VisionTowerTests.SyncProgress(reports)));
        Assert.Contains("4 frames", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        Assert.Empty(reports);
        // Three frames fit.
        Assert.Equal(VisualTokenPlan.For(model.Config, 3).SlowTokens, encoder.Encode(pixels.AsSpan(0, 3 * encoder.Tower.FrameFloats), 3).SlowCount);
    }

    [Fact]
    public void Token_plan_for_64_frames_of_the_7b_preset()
    {
        // 64 frames at 576 px: 18×18 tokens pooled to 9×9 (slow: 64·81), fast: 16 frames of 81, hidden 3584.
        var c = Presets.SevenB();
        var plan = VisualTokenPlan.For(c, 64);
        Assert.Equal(64 * 81, plan.SlowTokens);
        Assert.Equal(16 * 81, plan.FastTokens);
    }

    [Fact]
    public void Bad_pixel_count_and_frame_count_are_user_errors()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab]));
        var encoder = new VisionEncoder(model);
        Assert.Throws<UserError>(() => encoder.Encode(new float[encoder.Tower.FrameFloats + 1], 1));
        Assert.Throws<UserError>(() => encoder.Encode(ReadOnlySpan<float>.Empty, 0));
    }
}
