using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Vision;

/// <summary>
/// The ConvNeXt vision tower (timm's ConvNeXt as the reference's convnext_encoder uses it): a stem
/// (p×p conv, stride p, then LayerNorm), then stages, each an optional downsample (LayerNorm, then 2×2
/// conv, stride 2; stage 0 has none) and blocks (7×7 depthwise conv → LayerNorm → Linear 4C → GELU →
/// Linear C → layer scale → residual). The tokens are the last stage's feature map, row-major over
/// (h, w): what the reference's forward_features(...)[-1] gives (select_layer is hard-coded to −1 and
/// there is no final norm).
/// </summary>
/// <remarks>
/// Activations are channels-last [H, W, C] so that LayerNorm and the MLP are per-pixel row operations
/// on a [H·W, C] matrix. A frame is encoded in two reusable buffers (the residual stream and a scratch
/// of the same size) plus an MLP hidden buffer for a chunk of pixel rows, so the 4× MLP expansion is
/// never materialized for the whole frame. Parallelism is inside the kernels. Not thread-safe for
/// concurrent calls on one instance (calls are serialized by a lock). The <see cref="ModelDirectory"/>
/// the tower was built from must stay open while it is used.
/// </remarks>
public sealed class ConvNextTower
{
    private readonly ConvNextWeights _w;
    private readonly object _lock = new();
    private Workspace? _workspace;
    private int _mlpHiddenFloats = 1 << 21;

    public ConvNextConfig Config { get; }

    /// <summary>
    /// Arithmetic of the matrix products: <see cref="MatMulPrecision.Float32"/> (default, what the
    /// golden tests check) or <see cref="MatMulPrecision.BFloat16"/> (PyTorch's bf16 arithmetic, about
    /// twice as fast where the CPU has AVX512-BF16).
    /// </summary>
    public MatMulPrecision Precision { get; set; }
    /// <summary>Pixels along a side of the input frame (576 for the released tower).</summary>
    public int ImageSize => Config.ImageSize;
    /// <summary>Tokens along one side of the output (18 at 576 px).</summary>
    public int TokensPerSide => Config.TokensPerSide;
    /// <summary>Tokens per frame: <see cref="TokensPerSide"/>².</summary>
    public int TokensPerFrame => Config.TokensPerFrame;
    /// <summary>Channels per token: the last stage's width (3072 for the released tower).</summary>
    public int Channels => Config.HiddenSize;
    /// <summary>Floats of one input frame: 3·S·S.</summary>
    public int FrameFloats => 3 * ImageSize * ImageSize;

    /// <summary>
    /// Cap on the MLP hidden buffer, in floats (default 2 Mi = 8 MB): the block MLP runs on as many
    /// pixel rows at a time as fit (at least one). Smaller saves memory; larger gives the matrix
    /// products more rows per call.
    /// </summary>
    public int MlpHiddenFloats
    {
        get => _mlpHiddenFloats;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            lock (_lock) { _mlpHiddenFloats = value; _workspace = null; }
        }
    }

    public ConvNextTower(ModelDirectory model)
    {
        Config = model.Config.Vision;
        _w = ConvNextWeights.Load(model);
    }

    /// <summary>
    /// Encodes one frame. <paramref name="chw"/> is [3, S, S] normalized pixels; <paramref name="tokens"/>
    /// receives [TokensPerFrame, Channels], row-major over (h, w).
    /// </summary>
    public void EncodeFrame(ReadOnlySpan<float> chw, Span<float> tokens, CancellationToken cancel = default)
    {
        if (chw.Length != FrameFloats) throw new ArgumentException($"a frame has {FrameFloats} floats ([3, {ImageSize}, {ImageSize}]); got {chw.Length}", nameof(chw));
        if (tokens.Length != TokensPerFrame * Channels) throw new ArgumentException($"tokens need {TokensPerFrame * Channels} floats ([{TokensPerFrame}, {Channels}]); got {tokens.Length}", nameof(tokens));
        lock (_lock)
        {
            _workspace ??= new Workspace(Config, _mlpHiddenFloats);
            Forward(chw, tokens, _workspace, cancel);
        }
    }

    /// <summary>
    /// Encodes <paramref name="frames"/> frames ([frames, 3, S, S]) into [frames, TokensPerFrame, Channels],
    /// one frame at a time, reporting the number of frames done after each.
    /// </summary>
    internal void EncodeFrames(ReadOnlySpan<float> pixels, int frames, Span<float> tokens, IProgress<int>? progress = null, CancellationToken cancel = default)
    {
        if (frames < 1) throw new ArgumentOutOfRangeException(nameof(frames), $"frame count {frames} must be positive");
        if (pixels.Length != (long)frames * FrameFloats) throw new ArgumentException($"{frames} frames have {(long)frames * FrameFloats} floats; got {pixels.Length}", nameof(pixels));
        int perFrame = TokensPerFrame * Channels;
        if (tokens.Length != (long)frames * perFrame) throw new ArgumentException($"tokens need {(long)frames * perFrame} floats; got {tokens.Length}", nameof(tokens));
        for (int f = 0; f < frames; f++)
        {
            cancel.ThrowIfCancellationRequested();
            EncodeFrame(pixels.Slice(f * FrameFloats, FrameFloats), tokens.Slice(f * perFrame, perFrame), cancel);
            progress?.Report(f + 1);
        }
    }

    /// <summary>Frees the cached per-frame buffers (they are re-made on the next call).</summary>
    public void ReleaseBuffers()
    {
        lock (_lock) _workspace = null;
    }

    /// <summary>Buffers for one frame, sized for the largest stage.</summary>
    private sealed class Workspace
    {
        /// <summary>The residual stream [H·W, C] (also holds patches during a downsample).</summary>
        public float[] A;
        /// <summary>Scratch of the same size: depthwise output, LayerNorm output, patches.</summary>
        public float[] B;
        public readonly float[] Hidden;
        public readonly int MlpHiddenFloats;

        public Workspace(ConvNextConfig c, int mlpHiddenFloats)
        {
            MlpHiddenFloats = mlpHiddenFloats;
            int side = c.ImageSize / c.PatchSize;
            long largest = (long)side * side * Math.Max(c.Dims[0], 3 * c.PatchSize * c.PatchSize);
            long hidden = 0;
            for (int s = 0; s < c.Dims.Length; s++)
            {
                if (s > 0)
                {
                    largest = Math.Max(largest, (long)side * side * c.Dims[s - 1]);
                    side /= 2;
                }
                long pixels = (long)side * side;
                largest = Math.Max(largest, pixels * c.Dims[s]);
                hidden = Math.Max(hidden, MlpChunkRows(mlpHiddenFloats, pixels, c.Dims[s]) * 4L * c.Dims[s]);
            }
            A = new float[largest];
            B = new float[largest];
            Hidden = new float[hidden];
        }

        public void Swap() => (A, B) = (B, A);
    }

    private static int MlpChunkRows(int budgetFloats, long pixels, int dim) => (int)Math.Clamp(budgetFloats / (4L * dim), 1, pixels);

    private void Forward(ReadOnlySpan<float> chw, Span<float> tokens, Workspace ws, CancellationToken cancel)
    {
        var c = Config;
        float eps = (float)c.NormEps;
        int p = c.PatchSize;
        int side = c.ImageSize / p;
        int pixels = side * side;
        int dim = c.Dims[0];

        // Stem: the p×p stride-p conv is patches × weightᵀ, then LayerNorm over channels.
        int patch0 = 3 * p * p;
        Conv.PatchifyChw(chw, 3, c.ImageSize, c.ImageSize, p, ws.B.AsSpan(0, pixels * patch0));
        MatMul.Linear(ws.B.AsSpan(0, pixels * patch0), pixels, _w.StemConv, _w.StemConvBias, ws.A.AsSpan(0, pixels * dim), Precision);
        RowParallel.LayerNorm(ws.A.AsSpan(0, pixels * dim), dim, _w.StemNormWeight, _w.StemNormBias, eps, ws.A.AsSpan(0, pixels * dim));

        for (int s = 0; s < _w.Stages.Length; s++)
        {
            var stage = _w.Stages[s];
            if (stage.Downsample is { } down)
            {
                // LayerNorm (channels) → 2×2 stride-2 conv as patches × weightᵀ.
                int n = pixels * dim;
                RowParallel.LayerNorm(ws.A.AsSpan(0, n), dim, down.NormWeight, down.NormBias, eps, ws.B.AsSpan(0, n));
                Conv.PatchifyHwc(ws.B.AsSpan(0, n), side, side, dim, 2, ws.A.AsSpan(0, n));
                side /= 2;
                pixels = side * side;
                MatMul.Linear(ws.A.AsSpan(0, n), pixels, down.Conv, down.ConvBias, ws.B.AsSpan(0, pixels * stage.Dim), Precision);
                ws.Swap();
                dim = stage.Dim;
            }
            foreach (var block in stage.Blocks)
            {
                cancel.ThrowIfCancellationRequested();
                Block(block, side, dim, c.KernelSize, eps, ws);
            }
        }
        ws.A.AsSpan(0, pixels * dim).CopyTo(tokens);
    }

    /// <summary>x += layerScale · fc2(gelu(fc1(norm(dwconv(x))))), with the MLP run a chunk of pixel rows at a time.</summary>
    private void Block(ConvNextWeights.BlockWeights b, int side, int dim, int kernel, float eps, Workspace ws)
    {
        int pixels = side * side;
        var x = ws.A.AsSpan(0, pixels * dim);
        var t = ws.B.AsSpan(0, pixels * dim);
        Conv.DepthwiseHwc(x, side, side, dim, b.DepthwiseWeight, b.DepthwiseBias, kernel, t);

        int chunk = MlpChunkRows(ws.MlpHiddenFloats, pixels, dim);
        for (int row = 0; row < pixels; row += chunk)
        {
            int rows = Math.Min(chunk, pixels - row);
            var tc = t.Slice(row * dim, rows * dim);
            var hidden = ws.Hidden.AsSpan(0, rows * 4 * dim);
            RowParallel.LayerNorm(tc, dim, b.NormWeight, b.NormBias, eps, tc);
            MatMul.Linear(tc, rows, b.Fc1, b.Fc1Bias, hidden, Precision);
            RowParallel.Gelu(hidden, 4 * dim);
            MatMul.Linear(hidden, rows, b.Fc2, b.Fc2Bias, tc, Precision);
            RowParallel.ScaleAddResidual(x.Slice(row * dim, rows * dim), tc, dim, b.LayerScale);
        }
    }
}
