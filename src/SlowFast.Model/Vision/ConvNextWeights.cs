using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Vision;

/// <summary>
/// The ConvNeXt tower's weights, read from a checkpoint once. The big matrices (the stem's convolution
/// viewed as [Cout, Cin·p·p], the MLP's fc1/fc2) stay in the memory-mapped checkpoint in their stored
/// dtype; the downsample convolutions are copied once with their columns in the order the downsample's
/// patches are built in; the small per-channel vectors (norms, biases, depthwise kernels, layer scale)
/// are copied to float32 because the kernels take them as float spans (the depthwise kernels re-laid
/// channel-minor once here, so no block re-lays them per frame).
/// </summary>
/// <remarks>The <see cref="ModelDirectory"/> the weights came from must outlive this object.</remarks>
internal sealed class ConvNextWeights
{
    public required WeightMatrix StemConv { get; init; }
    public required float[] StemConvBias { get; init; }
    public required float[] StemNormWeight { get; init; }
    public required float[] StemNormBias { get; init; }
    public required StageWeights[] Stages { get; init; }

    internal sealed class StageWeights
    {
        public required int Dim { get; init; }
        /// <summary>Null for stage 0 (the stem already produced its width and resolution).</summary>
        public required DownsampleWeights? Downsample { get; init; }
        public required BlockWeights[] Blocks { get; init; }
    }

    internal sealed class DownsampleWeights
    {
        public required float[] NormWeight { get; init; }
        public required float[] NormBias { get; init; }
        /// <summary>The 2×2 conv as [Cout, 2·2·Cin], columns in (ky, kx, c) order (<see cref="Conv.PixelMajorPatchWeights"/>): a copy, not the checkpoint's bytes.</summary>
        public required WeightMatrix Conv { get; init; }
        public required float[] ConvBias { get; init; }
    }

    internal sealed class BlockWeights
    {
        /// <summary>The depthwise kernel laid out as [k·k, C] (<see cref="Conv.LayOutDepthwiseWeights"/>).</summary>
        public required float[] DepthwiseTaps { get; init; }
        public required float[] DepthwiseBias { get; init; }
        public required float[] NormWeight { get; init; }
        public required float[] NormBias { get; init; }
        public required WeightMatrix Fc1 { get; init; }
        public required float[] Fc1Bias { get; init; }
        public required WeightMatrix Fc2 { get; init; }
        public required float[] Fc2Bias { get; init; }
        public required float[] LayerScale { get; init; }
        /// <summary>fc1 in int8 with one scale per output channel (<see cref="ConvNextTower.MlpInt8"/>), else null.</summary>
        public Int8ChannelWeights? Fc1Int8 { get; init; }
        /// <summary>fc2 likewise.</summary>
        public Int8ChannelWeights? Fc2Int8 { get; init; }
    }

    /// <summary>Whether any matrix is stored as BF16 (not block-quantized): only those are packed for the bfloat16 GEMM.</summary>
    public bool HasBf16Matrices =>
        Stages.SelectMany(s => s.Blocks.SelectMany(b => new[] { b.Fc1, b.Fc2 }).Concat(s.Downsample is { } d ? [d.Conv] : []))
            .Append(StemConv).Any(m => m.DType == DType.BF16 && !m.IsQuantized);

    /// <summary>
    /// These weights as a tower setting reads them. <paramref name="packBf16"/>: every BF16 matrix also
    /// packed for the bfloat16 GEMM (<see cref="MatMul.PackForBFloat16"/>). <paramref name="int8Mlps"/>:
    /// every block's fc1 and fc2 also quantized to int8 per output channel
    /// (<see cref="Int8ChannelWeights.Quantize"/>, for <see cref="ConvNextTower.MlpInt8"/>), and then not
    /// packed, since they never run in bfloat16. A checkpoint's own block-quantized matrices
    /// (<c>slowfast quantize --vision</c>) keep their arithmetic; they, F32/F16 matrices and the vectors are shared.
    /// </summary>
    public ConvNextWeights Prepared(bool packBf16, bool int8Mlps)
    {
        WeightMatrix Pack(WeightMatrix m) => Packs(m, packBf16) ? MatMul.PackForBFloat16(m) : m;
        WeightMatrix PackMlp(WeightMatrix m) => QuantizesMlp(m, int8Mlps) ? m : Pack(m);
        Int8ChannelWeights? Int8(WeightMatrix m) => QuantizesMlp(m, int8Mlps) ? Int8ChannelWeights.Quantize(m) : null;
        return new ConvNextWeights
        {
            StemConv = Pack(StemConv),
            StemConvBias = StemConvBias,
            StemNormWeight = StemNormWeight,
            StemNormBias = StemNormBias,
            Stages = Stages.Select(s => new StageWeights
            {
                Dim = s.Dim,
                Downsample = s.Downsample is { } d ? new DownsampleWeights { NormWeight = d.NormWeight, NormBias = d.NormBias, Conv = Pack(d.Conv), ConvBias = d.ConvBias } : null,
                Blocks = s.Blocks.Select(b => new BlockWeights
                {
                    DepthwiseTaps = b.DepthwiseTaps, DepthwiseBias = b.DepthwiseBias, NormWeight = b.NormWeight, NormBias = b.NormBias,
                    Fc1 = PackMlp(b.Fc1), Fc1Bias = b.Fc1Bias, Fc2 = PackMlp(b.Fc2), Fc2Bias = b.Fc2Bias, LayerScale = b.LayerScale,
                    Fc1Int8 = Int8(b.Fc1), Fc2Int8 = Int8(b.Fc2),
                }).ToArray(),
            }).ToArray(),
        };
    }

    private static bool Packs(WeightMatrix m, bool packBf16) => packBf16 && MatMul.PackingForBFloat16Allocates(m);
    private static bool QuantizesMlp(WeightMatrix m, bool int8Mlps) => int8Mlps && !m.IsQuantized;

    /// <summary>
    /// Bytes <see cref="Prepared"/> allocates with the same arguments: the packed and int8 copies it makes
    /// (what the memory estimate counts for a tower's first frame).
    /// </summary>
    public long PreparedBytes(bool packBf16, bool int8Mlps)
    {
        long Pack(WeightMatrix m) => Packs(m, packBf16) ? MatMul.PackedBFloat16Bytes(m.Rows, m.Cols) : 0;
        long Mlp(WeightMatrix m) => QuantizesMlp(m, int8Mlps) ? Int8ChannelWeights.BytesFor(m.Rows, m.Cols) : Pack(m);
        return Pack(StemConv) + Stages.Sum(s => (s.Downsample is { } d ? Pack(d.Conv) : 0) + s.Blocks.Sum(b => Mlp(b.Fc1) + Mlp(b.Fc2)));
    }

    public static ConvNextWeights Load(ModelDirectory model)
    {
        var v = model.Config.Vision;
        string prefix = CheckpointLayout.VisionPrefix;
        float[] Floats(string name) => model.Get(prefix + name).ToFloatArray();
        WeightMatrix Matrix(string name) => model.Linear(prefix + name);
        static float[] Taps(float[] torchLayout, int channels, int k)
        {
            var taps = new float[torchLayout.Length];
            Conv.LayOutDepthwiseWeights(torchLayout, channels, k, taps);
            return taps;
        }

        var stages = new StageWeights[v.Dims.Length];
        for (int s = 0; s < stages.Length; s++)
        {
            DownsampleWeights? down = s == 0 ? null : new DownsampleWeights
            {
                NormWeight = Floats($"stages.{s}.downsample.0.weight"),
                NormBias = Floats($"stages.{s}.downsample.0.bias"),
                Conv = Conv.PixelMajorPatchWeights(Matrix($"stages.{s}.downsample.1.weight"), v.Dims[s - 1], 2),
                ConvBias = Floats($"stages.{s}.downsample.1.bias"),
            };
            var blocks = new BlockWeights[v.Depths[s]];
            for (int b = 0; b < blocks.Length; b++)
            {
                string blk = $"stages.{s}.blocks.{b}.";
                blocks[b] = new BlockWeights
                {
                    DepthwiseTaps = Taps(Floats(blk + "conv_dw.weight"), v.Dims[s], v.KernelSize),
                    DepthwiseBias = Floats(blk + "conv_dw.bias"),
                    NormWeight = Floats(blk + "norm.weight"),
                    NormBias = Floats(blk + "norm.bias"),
                    Fc1 = Matrix(blk + "mlp.fc1.weight"),
                    Fc1Bias = Floats(blk + "mlp.fc1.bias"),
                    Fc2 = Matrix(blk + "mlp.fc2.weight"),
                    Fc2Bias = Floats(blk + "mlp.fc2.bias"),
                    LayerScale = Floats(blk + "weight"),
                };
            }
            stages[s] = new StageWeights { Dim = v.Dims[s], Downsample = down, Blocks = blocks };
        }
        return new ConvNextWeights
        {
            StemConv = Matrix("stem.0.weight"),
            StemConvBias = Floats("stem.0.bias"),
            StemNormWeight = Floats("stem.1.weight"),
            StemNormBias = Floats("stem.1.bias"),
            Stages = stages,
        };
    }
}
