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
        using var block = StageBlock.Open(tower, stage, weightType, tempRoot, precision);
        return block.Measure(reps, warmups);
    }

    /// <summary>
    /// Stem + one block of a stage, built once and timed as often as wanted: the weights packed, the
    /// buffers made and the code compiled at the first call stay for the next.
    /// </summary>
    public sealed class StageBlock : IDisposable
    {
        private readonly ModelDirectory _model;
        private readonly ConvNextTower _tower;
        private readonly float[] _pixels, _tokens;

        private StageBlock(ModelDirectory model, MatMulPrecision precision)
        {
            _model = model;
            _tower = new ConvNextTower(model) { Precision = precision };
            _pixels = RandomData.Floats(_tower.FrameFloats, 1f, 21);
            _tokens = new float[_tower.TokensPerFrame * _tower.Channels];
        }

        /// <summary>The block of <paramref name="stage"/> as the only stage of a one-stage tower, its checkpoint written under <paramref name="tempRoot"/> once.</summary>
        public static StageBlock Open(ConvNextConfig tower, int stage, DType weightType, string tempRoot, MatMulPrecision precision)
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
            return new StageBlock(ModelDirectory.Open(dir), precision);
        }

        public Timing Measure(int reps, int warmups = 1) => Timing.Measure(() => _tower.EncodeFrame(_pixels, _tokens), reps, warmups);

        public void Dispose() => _model.Dispose();
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
