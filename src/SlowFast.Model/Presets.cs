namespace SlowFast.Model;

/// <summary>
/// Model shapes that <c>slowfast create-model</c> can write with random weights.
/// <list type="bullet">
/// <item><c>tiny</c>: every part of the architecture at toy size, for unit and golden tests (real Qwen vocabulary).</item>
/// <item><c>small</c>: Qwen2-0.5B's decoder and a ConvNeXt-Base-sized tower at 384 px, for quick benchmarks.</item>
/// <item><c>7b</c>: the released slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4 shapes.</item>
/// </list>
/// </summary>
public static class Presets
{
    public static readonly string[] Names = ["tiny", "small", "7b"];

    public static SlowFastConfig Get(string name) => name.ToLowerInvariant() switch
    {
        "tiny" => Tiny(),
        "small" => Small(),
        "7b" => SevenB(),
        _ => throw new UserError($"unknown preset '{name}' (expected {string.Join(", ", Names)})"),
    };

    /// <summary>The released 64-frame checkpoint: Qwen2-7B-Instruct, ConvNeXt-XXL CLIP at 576 px, mlp2x_gelu, hybrid layers 0/8/16/24.</summary>
    public static SlowFastConfig SevenB() => WithReleasedSlowFastSettings(new SlowFastConfig
    {
        VocabSize = 152064,
        HiddenSize = 3584,
        IntermediateSize = 18944,
        NumHiddenLayers = 28,
        NumAttentionHeads = 28,
        NumKeyValueHeads = 4,
        TieWordEmbeddings = false,
        SlidingWindow = 131072,
        MaxWindowLayers = 28,
        MmVisionTower = ConvNextConfig.XxLarge576Name,
        Vision = ConvNextConfig.XxLarge576(),
        CrossAttnMaxLayerDepth = 28,
        MinFastFrames = 16,
        MmTrainingVideoFrames = 64,
        TokenizerModelMaxLength = 4096,
    });

    /// <summary>Qwen2-0.5B decoder (tied embeddings) with a ConvNeXt-Base-sized tower at 384 px; hybrid every 8 layers.</summary>
    public static SlowFastConfig Small() => WithReleasedSlowFastSettings(new SlowFastConfig
    {
        VocabSize = 151936,
        HiddenSize = 896,
        IntermediateSize = 4864,
        NumHiddenLayers = 24,
        NumAttentionHeads = 14,
        NumKeyValueHeads = 2,
        TieWordEmbeddings = true,
        SlidingWindow = 131072,
        MaxWindowLayers = 24,
        MmVisionTower = "convnext-base-384",
        Vision = new ConvNextConfig { Depths = [3, 3, 27, 3], Dims = [128, 256, 512, 1024], ImageSize = 384, NumClasses = 0 },
        CrossAttnMaxLayerDepth = 24,
        MinFastFrames = 16,
        TokenizerModelMaxLength = 8192,
    });

    /// <summary>
    /// Every part at toy size: 4 layers (hybrid 0 and 2), GQA 4 query / 2 KV heads of 16, a 4-stage
    /// ConvNeXt at 128 px (4×4 tokens a frame), mlp2x_gelu, the real Qwen vocabulary. min_fast_frames is
    /// 2 so that both the plain and the adaptive temporal pooling paths run with a handful of frames.
    /// </summary>
    public static SlowFastConfig Tiny() => WithReleasedSlowFastSettings(new SlowFastConfig
    {
        VocabSize = 151936,
        HiddenSize = 64,
        IntermediateSize = 160,
        NumHiddenLayers = 4,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        MaxPositionEmbeddings = 4096,
        TieWordEmbeddings = false,
        SlidingWindow = 4096,
        MaxWindowLayers = 4,
        MmVisionTower = "convnext-tiny-test",
        Vision = new ConvNextConfig { Depths = [1, 1, 2, 1], Dims = [16, 24, 32, 48], ImageSize = 128, NumClasses = 10 },
        CrossAttnEveryNLayers = 2,
        CrossAttnMaxLayerDepth = 4,
        MinFastFrames = 2,
        TokenizerModelMaxLength = 4096,
    });

    /// <summary>The slow-fast settings of the released frame64-s1t4 checkpoint (its finetune script's arguments).</summary>
    private static SlowFastConfig WithReleasedSlowFastSettings(SlowFastConfig c)
    {
        // Qwen2-Instruct's own settings (no BOS in prompts; <|im_end|> ends a turn).
        c.RopeTheta = 1000000.0;
        c.RmsNormEps = 1e-6;
        c.BosTokenId = 151643;
        c.EosTokenId = 151645;
        c.MmProjectorType = "mlp2x_gelu";
        c.MmHiddenSize = c.Vision.HiddenSize;
        c.MmVisionSelectLayer = -2;
        c.MmUseImStartEnd = false;
        c.MmUseImPatchToken = false;
        c.ImageAspectRatio = "pad";
        c.MmVideoPoolingStride = 2;
        c.CrossAttnImplementation = "text-only-vanilla-flashattn";
        c.CrossAttnGatingType = "whole-dynamic-tanh-warmup";
        c.CrossAttnMinLayerDepth = 0;
        c.CrossAttnHeadNum = c.NumAttentionHeads;
        c.CrossAttnKvHeadNum = c.NumAttentionHeads / 2;
        c.InitializeCrossAttnKvFromLm = true;
        c.FastTokenSpatialStride = 1;
        c.FastTokenTemporalStride = 4;
        c.FastTokenTemporalSamplingStride = 1;
        c.TileImageInput = false;
        c.TorchDtype = "bfloat16";
        c.Validate("preset");
        return c;
    }
}
