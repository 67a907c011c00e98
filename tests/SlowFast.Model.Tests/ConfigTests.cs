using System.Text.Json.Nodes;
using SlowFast.Model;

namespace SlowFast.Model.Tests;

public class ConfigTests
{
    private static SlowFastConfig Parse(string json) => SlowFastConfig.FromJson(JsonNode.Parse(json)!.AsObject(), "config.json");

    [Fact]
    public void AbsentFieldsTakeTheReferenceDefaults()
    {
        var c = Parse("""
            {"model_type": "llava_qwen_slow_fast", "hidden_size": 128, "num_attention_heads": 4, "num_hidden_layers": 10,
             "intermediate_size": 256, "mm_vision_tower": "convnext-576", "cross_attn_gating_type": "whole-dynamic"}
            """);
        Assert.Equal(4, c.NumKeyValueHeads);          // Qwen2Config: num_key_value_heads defaults to num_attention_heads
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.Equal("linear", c.MmProjectorType);    // build_vision_projector's getattr default
        Assert.Equal(3072, c.MmHiddenSize);           // from the tower
        Assert.Equal(2, c.MmVideoPoolingStride);      // train.py ModelArguments
        Assert.Equal(8, c.CrossAttnEveryNLayers);
        Assert.Equal("vanilla", c.CrossAttnImplementation);
        Assert.Equal(0, c.CrossAttnMinLayerDepth);
        Assert.Equal(10, c.CrossAttnMaxLayerDepth);   // None -> number of layers
        Assert.Equal(1, c.MinFastFrames);             // None -> 1
        Assert.True(c.TileImageInput);
        Assert.True(c.MmUseImPatchToken);             // the loader's getattr default
        Assert.Equal(new[] { 0, 8 }, c.HybridLayers);
        Assert.Equal(18, c.Vision.TokensPerSide);
    }

    [Theory]
    [InlineData("""{"model_type": "llama"}""", "unknown model_type 'llama'")]
    [InlineData("""{"hidden_size": 8}""", "no model_type")]
    [InlineData("""{"model_type": "llava_qwen_slow_fast", "mm_vision_tower": "convnext-576", "cross_attn_gating_type": "whole-dynamic", "mm_projector_type": "mlp2x_relu"}""", "unknown mm_projector_type 'mlp2x_relu'")]
    [InlineData("""{"model_type": "llava_qwen_slow_fast", "mm_vision_tower": "convnext-576"}""", "unknown cross_attn_gating_type 'channel-wise-dynamic-sigmoid'")]
    [InlineData("""{"model_type": "llava_qwen_slow_fast", "mm_vision_tower": "convnext-576", "cross_attn_gating_type": "whole-dynamic", "cross_attn_implementation": "sparse"}""", "unknown cross_attn_implementation 'sparse'")]
    [InlineData("""{"model_type": "llava_qwen_slow_fast", "mm_vision_tower": "siglip-so400m", "cross_attn_gating_type": "whole-dynamic"}""", "unknown mm_vision_tower 'siglip-so400m'")]
    [InlineData("""{"model_type": "llava_qwen_slow_fast", "mm_vision_tower": "convnext-576", "cross_attn_gating_type": "whole-dynamic", "hidden_size": "big"}""", "field 'hidden_size' should be an integer")]
    [InlineData("""{"model_type": "llava_qwen_slow_fast", "mm_vision_tower": "convnext-576", "cross_attn_gating_type": "whole-dynamic", "hidden_size": 100, "num_attention_heads": 7}""", "not a multiple")]
    public void BadConfigsGiveOneLineErrorsNamingTheProblem(string json, string expected)
    {
        var e = Assert.Throws<UserError>(() => Parse(json));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("config.json:", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void SevenBPresetHasTheReleasedShapesAndSizes()
    {
        var c = Presets.SevenB();
        Assert.Equal((28, 3584, 28, 4, 18944, 152064), (c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.IntermediateSize, c.VocabSize));
        Assert.Equal(new[] { 0, 8, 16, 24 }, c.HybridLayers);
        Assert.Equal((576, 18, 3072), (c.Vision.ImageSize, c.Vision.TokensPerSide, c.Vision.HiddenSize));
        Assert.Equal(new[] { 3, 4, 30, 3 }, c.Vision.Depths);
        Assert.Equal((2, 4, 1, 1), (c.MmVideoPoolingStride, c.FastTokenTemporalStride, c.FastTokenSpatialStride, c.FastTokenTemporalSamplingStride));
        var layout = CheckpointLayout.For(c);
        long llm = layout.Where(w => w.Part is ModelPart.Llm).Sum(w => w.ElementCount);
        long vision = layout.Where(w => w.Part is ModelPart.VisionTower).Sum(w => w.ElementCount);
        // Qwen2-7B has 7.62 B parameters; ConvNeXt-XXL (with its unused 1000-class head) 0.846 B.
        Assert.InRange(llm / 1e9, 7.60, 7.64);
        Assert.InRange(vision / 1e9, 0.84, 0.85);
    }

    [Fact]
    public void TinyPresetHasEveryPart()
    {
        var c = Presets.Tiny();
        Assert.True(c.HybridLayers.Count >= 2);
        Assert.True(c.NumKeyValueHeads < c.NumAttentionHeads);
        Assert.Equal("mlp2x_gelu", c.MmProjectorType);
        Assert.Equal(151936, c.VocabSize);
        var layout = CheckpointLayout.For(c);
        long nonEmbedding = layout.Where(w => !w.Name.Contains("embed_tokens") && !w.Name.StartsWith("lm_head")).Sum(w => w.ElementCount);
        Assert.InRange(nonEmbedding * 4 / 1e6, 0.1, 8); // a few MB of FP32 weights besides the embeddings
        Assert.Contains(layout, w => w.Name.EndsWith("self_attn.cross_attn_warm_up_gate"));
        Assert.Contains(layout, w => w.Name == "model.vision_tower.vision_tower.stages.3.downsample.1.weight");
    }

    [Fact]
    public void ConfigRoundTripsThroughJson()
    {
        var c = Presets.Tiny();
        var again = SlowFastConfig.FromJson(JsonNode.Parse(c.ToJson())!.AsObject(), "round-trip");
        Assert.Equal(c.ToJson(), again.ToJson());
        Assert.Equal(c.Vision.Dims, again.Vision.Dims);
        Assert.Equal(c.HybridLayers, again.HybridLayers);
    }

    [Fact]
    public void OverridesApplyAndRevalidate()
    {
        var c = SlowFastConfig.WithOverrides(Presets.Tiny(), ["cross_attn_gating_type=whole-dynamic", "min_fast_frames=3", "tie_word_embeddings=true"], "--set");
        Assert.Equal("whole-dynamic", c.CrossAttnGatingType);
        Assert.Equal(3, c.MinFastFrames);
        Assert.True(c.TieWordEmbeddings);
        Assert.DoesNotContain(CheckpointLayout.For(c), w => w.Name == "lm_head.weight");
        Assert.DoesNotContain(CheckpointLayout.For(c), w => w.Name.EndsWith("warm_up_gate"));
        Assert.Throws<UserError>(() => SlowFastConfig.WithOverrides(Presets.Tiny(), ["mm_projector_type=conv"], "--set"));
    }

    [Theory]
    // (frames, expected slow, expected fast) for the 7b preset: 81 tokens a frame after 2x2 pooling,
    // fast = frames/4 frames (at least 16, adaptive below that).
    [InlineData(64, 64 * 81, 16 * 81)]
    [InlineData(128, 128 * 81, 32 * 81)]
    [InlineData(30, 30 * 81, 16 * 81)]   // 30/4 = 7 < 16: adaptive pooling to min(30, 16) frames
    [InlineData(10, 10 * 81, 10 * 81)]   // fewer frames than min_fast_frames: all of them
    [InlineData(1, 324, 324)]            // a single image: no video pooling
    public void VisualTokenCountsFollowTheReference(int frames, int slow, int fast)
    {
        var plan = VisualTokenPlan.For(Presets.SevenB(), frames);
        Assert.Equal(slow, plan.SlowTokens);
        Assert.Equal(fast, plan.FastTokens);
    }

    [Fact]
    public void SampleFastFramesMatchesTheReferenceFormula()
    {
        Assert.Equal(Enumerable.Range(0, 5), VisualTokenPlan.SampleFastFrames(5, 2, 8));            // fewer than min: all
        Assert.Equal(new[] { 0, 2, 4, 6 }, VisualTokenPlan.SampleFastFrames(8, 2, 1));
        Assert.Equal(new[] { 0, 1, 3, 4, 6 }, VisualTokenPlan.SampleFastFrames(8, 4, 5));         // max(2, 5) = 5 at i*8/5
        Assert.Equal(new[] { 0, 2, 4 }, VisualTokenPlan.SampleFastFrames(7, 2, 1));                // 7//2 = 3 at i*7/3
    }
}
