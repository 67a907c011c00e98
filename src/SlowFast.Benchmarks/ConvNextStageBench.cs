using SlowFast.Model;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>
/// One ConvNeXt block of a given stage at its real resolution and width, run by the model's own
/// <see cref="ConvNextTower"/>: the block is the only stage of a one-stage tower whose 4×4 stem maps a
/// (4·side)² image straight to that stage's side×side×dim feature map, written as a temporary
/// checkpoint with random weights. The stem is part of the timing; it is under 2% of a block at the
/// real shapes (and is the real stem for stage 0).
/// </summary>
public static class ConvNextStageBench
{
    /// <summary>Pixels per side of <paramref name="stage"/>'s feature map.</summary>
    public static int Side(ConvNextConfig tower, int stage) => tower.ImageSize / tower.PatchSize >> stage;

    /// <summary>Floating-point operations of stem + one block of <paramref name="stage"/> as <see cref="MeasureBlock"/> runs them (the stem conv, the depthwise conv, the two products).</summary>
    public static double BlockFlops(ConvNextConfig tower, int stage)
    {
        double pixels = Math.Pow(Side(tower, stage), 2), dim = tower.Dims[stage];
        return 2 * pixels * 3 * tower.PatchSize * tower.PatchSize * dim + 2 * pixels * tower.KernelSize * tower.KernelSize * dim + ProductFlops(tower, stage);
    }

    /// <summary>Floating-point operations of one block's two products (C → 4C, 4C → C).</summary>
    public static double ProductFlops(ConvNextConfig tower, int stage) => 2 * 2 * Math.Pow(Side(tower, stage), 2) * tower.Dims[stage] * 4.0 * tower.Dims[stage];

    /// <summary>Times stem + one block of <paramref name="stage"/> of <paramref name="tower"/> (one frame per call).</summary>
    public static Timing MeasureBlock(ConvNextConfig tower, int stage, DType weightType, int reps, string tempRoot, int warmups = 1,
        MatMulPrecision precision = MatMulPrecision.Float32)
    {
        string dir = Path.Combine(tempRoot, $"convnext-stage{stage}-{tower.Dims[stage]}");
        var stageTower = new ConvNextConfig
        {
            Depths = [1],
            Dims = [tower.Dims[stage]],
            ImageSize = Side(tower, stage) * tower.PatchSize,
            PatchSize = tower.PatchSize,
            KernelSize = tower.KernelSize,
            NormEps = tower.NormEps,
            NumClasses = 0,
        };
        if (!Directory.Exists(dir)) CreateCheckpoint(stageTower, weightType, dir);
        using var model = ModelDirectory.Open(dir);
        var t = new ConvNextTower(model) { Precision = precision };
        var pixels = RandomData.Floats(t.FrameFloats, 1f, 21);
        var tokens = new float[t.TokensPerFrame * t.Channels];
        return Timing.Measure(() => t.EncodeFrame(pixels, tokens), reps, warmups);
    }

    /// <summary>
    /// Times the downsample in front of <paramref name="stage"/> (≥ 1) as the tower runs it: each pixel of
    /// the previous stage's map LayerNorm-ed into its 2×2 patch, then the patches × the reordered weightᵀ.
    /// </summary>
    public static Timing MeasureDownsample(ConvNextConfig tower, int stage, DType weightType, int reps, MatMulPrecision precision = MatMulPrecision.Float32)
    {
        int side = Side(tower, stage - 1), inDim = tower.Dims[stage - 1], outDim = tower.Dims[stage];
        int n = side * side * inDim;
        var x = RandomData.Floats(n, 1f, 31);
        var normW = RandomData.Floats(inDim, 1f, 32);
        var normB = RandomData.Floats(inDim, 0.1f, 33);
        var patches = new float[n];
        var conv = Conv.PixelMajorPatchWeights(RandomData.Matrix(outDim, 4 * inDim, weightType, 34), inDim, 2);
        var bias = RandomData.Floats(outDim, 0.1f, 35);
        int pixels = side / 2 * (side / 2);
        var y = new float[pixels * outDim];
        return Timing.Measure(() =>
        {
            Conv.LayerNormPatchifyHwc(x, side, side, inDim, 2, normW, normB, (float)tower.NormEps, patches);
            MatMul.Linear(patches, pixels, conv, bias, y, precision);
        }, reps);
    }

    /// <summary>A checkpoint of the tiny preset's decoder with <paramref name="tower"/> as its vision tower (only the tower is used).</summary>
    private static void CreateCheckpoint(ConvNextConfig tower, DType weightType, string dir)
    {
        var config = Presets.Tiny();
        config.MmVisionTower = "convnext-bench-stage";
        config.Vision = tower;
        config.MmHiddenSize = tower.HiddenSize;
        ModelCreator.Create(config, new ModelCreator.Options(dir, weightType, 5, PlaceholderTokenizer(Path.GetDirectoryName(dir)!)));
    }

    /// <summary>
    /// The benchmarks never tokenize, so their temporary checkpoints get a stand-in tokenizer.json
    /// (checkpoint creation copies one) instead of requiring the real Qwen tokenizer.
    /// </summary>
    public static string PlaceholderTokenizer(string root)
    {
        string path = Path.Combine(root, "placeholder-tokenizer.json");
        if (!File.Exists(path)) File.WriteAllText(path, "{\"note\": \"benchmark checkpoint: never tokenized\"}\n");
        return path;
    }
}
