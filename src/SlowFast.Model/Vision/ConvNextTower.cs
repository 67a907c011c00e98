using System.Diagnostics;
using SlowFast.Tensors;
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
/// never materialized for the whole frame. The last stage's residual stream is the caller's token
/// buffer itself, and <see cref="EncodeFrames"/> runs the last stage on up to
/// <see cref="LastStageFrames"/> frames at once: its maps are few rows per frame (18×18 at 576 px)
/// against the largest weights, so together the products read and pack those weights once for
/// several frames. Parallelism is inside the kernels. Not thread-safe for
/// concurrent calls on one instance (calls are serialized by a lock). The <see cref="ModelDirectory"/>
/// the tower was built from must stay open while it is used.
/// </remarks>
public sealed class ConvNextTower
{
    private readonly ConvNextWeights _w;
    /// <summary>The same weights with every BF16 matrix also packed for the bfloat16 GEMM, made at the first bfloat16 frame.</summary>
    private ConvNextWeights? _packed;
    private bool _packWeights = true;
    private bool _mlpInt8;
    /// <summary>Whether packing for bfloat16 has anything to pack (float32 checkpoints have nothing).</summary>
    private readonly bool _hasBf16Matrices;
    /// <summary>The same weights with every block's fc1/fc2 also in int8 (and the rest packed if bfloat16 ran), made at the first frame under <see cref="MlpInt8"/>.</summary>
    private ConvNextWeights? _int8;
    private readonly object _lock = new();
    private Workspace? _workspace;
    private int _mlpHiddenFloats = DefaultMlpHiddenFloats;
    private int _lastStageFrames = DefaultLastStageFrames;
    private int _minMlpRows = DefaultMinMlpRows;

    /// <summary>
    /// Default MLP hidden budget: 16 Mi floats (64 MB of float32 or 32 MB of bfloat16 rows), so that every
    /// stage of the released tower but the first runs its MLP over whole maps: stage 2, two thirds of
    /// the tower's work, as one 1296-row product instead of three of 432 rows, whose fixed costs per
    /// product (filling the pipeline, the first row block's wait for its weights) weigh three times as
    /// much (docs/benchmarks/vision-2026-12-02.md).
    /// </summary>
    public const int DefaultMlpHiddenFloats = 1 << 24;
    /// <summary>
    /// Default <see cref="MinMlpRows"/>: 512 rows, enough that packing the weights (75 MB a product at
    /// the released tower's last stage) is a small part of each product.
    /// </summary>
    public const int DefaultMinMlpRows = 512;
    /// <summary>Default <see cref="LastStageFrames"/>.</summary>
    public const int DefaultLastStageFrames = 4;

    public ConvNextConfig Config { get; }

    /// <summary>
    /// Arithmetic of the matrix products: <see cref="MatMulPrecision.Float32"/> (default, what the
    /// golden tests check) or <see cref="MatMulPrecision.BFloat16"/> (PyTorch's bf16 arithmetic, about
    /// twice as fast where the CPU has AVX512-BF16).
    /// </summary>
    public MatMulPrecision Precision { get; set; }
    /// <summary>
    /// When set, every op of every frame adds its wall time and flops here (a timestamp per op;
    /// benchmarks only). Not synchronized: attach it while no other thread encodes.
    /// </summary>
    public TowerProfile? Profile { get; set; }

    /// <summary>
    /// Whether the blocks' row work runs inside their kernels (the default): in bfloat16 arithmetic the
    /// LayerNorm as fc1 rounds its rows, GELU on fc1's output tiles (handed to fc2 as bfloat16 rows) and
    /// layer scale + residual on fc2's; otherwise the LayerNorm right after the depthwise conv (and under
    /// <see cref="MlpInt8"/> GELU on fc1's int8 tiles, layer scale + residual on fc2's). False runs
    /// it as separate passes, with the same results bit for bit: for benchmarks and tests comparing the
    /// two in one process.
    /// </summary>
    public bool FuseRowWork { get; set; } = true;

    /// <summary>
    /// Whether bfloat16 arithmetic reads the matrices packed once, at the first bfloat16 frame, in the
    /// layout the bfloat16 GEMM works from (the default), instead of packing each matrix anew for every
    /// frame group (packing costs about as much as reading the weights, and the narrow products feel it
    /// most), for as much memory again as the tower's BF16 matrices (1.7 GB for ConvNeXt-XXL). Same
    /// results either way. A packed copy once made is kept (also while this is false) until
    /// <see cref="ReleaseBuffers"/>.
    /// </summary>
    public bool PackWeights
    {
        get => _packWeights;
        set { lock (_lock) _packWeights = value; }
    }

    /// <summary>
    /// Whether each block's fc1 and fc2 run in int8 with one scale per input row and per output channel
    /// (<see cref="MatMul.LinearInt8"/>, AVX512-VNNI), their weights quantized once at the first frame;
    /// the rest of the tower keeps <see cref="Precision"/>. Off by default: it changes the model's
    /// numbers (about 0.6% relative error per product on random data), so only the user decides.
    /// Without AVX512-VNNI it has no effect.
    /// </summary>
    public bool MlpInt8
    {
        get => _mlpInt8;
        set { lock (_lock) _mlpInt8 = value; }
    }

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
    /// Budget of the MLP hidden buffer, in floats (default <see cref="DefaultMlpHiddenFloats"/>): the
    /// block MLP runs on as many pixel rows at a time as fit, but at least <see cref="MinMlpRows"/>
    /// (the buffer then grows past the budget), in chunks of equal size. Smaller saves memory; larger
    /// gives the matrix products more rows per call.
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

    /// <summary>
    /// Fewest pixel rows per MLP chunk (default <see cref="DefaultMinMlpRows"/>; a stage with fewer
    /// rows takes them all): each chunk's products pack the weights anew, so narrow maps with wide
    /// weights need chunks of many rows whatever <see cref="MlpHiddenFloats"/> says.
    /// </summary>
    public int MinMlpRows
    {
        get => _minMlpRows;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            lock (_lock) { _minMlpRows = value; _workspace = null; }
        }
    }

    /// <summary>
    /// Most frames <see cref="EncodeFrames"/> runs through the last stage together (default
    /// <see cref="DefaultLastStageFrames"/>); the last stage's scratch holds that many frames' maps.
    /// </summary>
    public int LastStageFrames
    {
        get => _lastStageFrames;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            lock (_lock) { _lastStageFrames = value; _workspace = null; }
        }
    }

    public ConvNextTower(ModelDirectory model)
    {
        Config = model.Config.Vision;
        _w = ConvNextWeights.Load(model);
        _hasBf16Matrices = _w.HasBf16Matrices;
    }

    /// <summary>
    /// Encodes one frame. <paramref name="chw"/> is [3, S, S] normalized pixels; <paramref name="tokens"/>
    /// receives [TokensPerFrame, Channels], row-major over (h, w).
    /// </summary>
    public void EncodeFrame(ReadOnlySpan<float> chw, Span<float> tokens, CancellationToken cancel = default)
    {
        if (chw.Length != FrameFloats) throw new ArgumentException($"a frame has {FrameFloats} floats ([3, {ImageSize}, {ImageSize}]); got {chw.Length}", nameof(chw));
        if (tokens.Length != TokensPerFrame * Channels) throw new ArgumentException($"tokens need {TokensPerFrame * Channels} floats ([{TokensPerFrame}, {Channels}]); got {tokens.Length}", nameof(tokens));
        lock (_lock) EncodeGroup(chw, 1, tokens, Buffers(), cancel);
    }

    /// <summary>
    /// Encodes <paramref name="frames"/> frames ([frames, 3, S, S]) into [frames, TokensPerFrame, Channels]:
    /// up to <see cref="LastStageFrames"/> at a time, each alone up to the last stage, then that stage
    /// on all of them at once. Reports the number of frames done after each group. The tokens equal
    /// those of <see cref="EncodeFrame"/> frame by frame up to float32 rounding (with more rows a
    /// product may run another kernel, which sums in another order).
    /// </summary>
    internal void EncodeFrames(ReadOnlySpan<float> pixels, int frames, Span<float> tokens, IProgress<int>? progress = null, CancellationToken cancel = default)
    {
        if (frames < 1) throw new ArgumentOutOfRangeException(nameof(frames), $"frame count {frames} must be positive");
        if (pixels.Length != (long)frames * FrameFloats) throw new ArgumentException($"{frames} frames have {(long)frames * FrameFloats} floats; got {pixels.Length}", nameof(pixels));
        int perFrame = TokensPerFrame * Channels;
        if (tokens.Length != (long)frames * perFrame) throw new ArgumentException($"tokens need {(long)frames * perFrame} floats; got {tokens.Length}", nameof(tokens));
        lock (_lock)
        {
            var ws = Buffers();
            for (int first = 0; first < frames; first += _lastStageFrames)
            {
                int group = Math.Min(_lastStageFrames, frames - first);
                EncodeGroup(pixels.Slice(first * FrameFloats, group * FrameFloats), group, tokens.Slice(first * perFrame, group * perFrame), ws, cancel);
                for (int f = first; f < first + group; f++) progress?.Report(f + 1);
            }
        }
    }

    /// <summary>
    /// Time spent packing the matrices for the bfloat16 GEMM (<see cref="PackWeights"/>) or quantizing the
    /// MLP matrices to int8 (<see cref="MlpInt8"/>) over this tower's life: at its first frame that needs
    /// them, and again only after <see cref="ReleaseBuffers"/> dropped them. A one-time cost inside the
    /// first frame's time, reported apart so that it is not mistaken for the per-frame speed (it writes
    /// as much fresh memory as the matrices take, and first writes to fresh pages are slow on some
    /// virtual machines).
    /// </summary>
    public TimeSpan PackingTime { get; private set; }

    /// <summary>
    /// Makes the matrices' packed or int8 copies now, as the first frame in <paramref name="precision"/>
    /// would (see <see cref="PackWeights"/> and <see cref="MlpInt8"/>), so that a server's first video
    /// does not wait for them. Returns the time it took: zero when there was nothing to do.
    /// </summary>
    public TimeSpan Prepare(MatMulPrecision precision)
    {
        lock (_lock)
        {
            var before = PackingTime;
            Weights(precision);
            return PackingTime - before;
        }
    }

    /// <summary>
    /// The weights a frame in <paramref name="precision"/> reads: packed for the bfloat16 GEMM when it runs
    /// (see <see cref="PackWeights"/>), with int8 MLP matrices under <see cref="MlpInt8"/>; each form made
    /// once, timed in <see cref="PackingTime"/>.
    /// </summary>
    private ConvNextWeights Weights(MatMulPrecision precision)
    {
        var (pack, int8) = PreparedForms(precision);
        if (!pack && !int8) return _w;
        ref ConvNextWeights? prepared = ref int8 ? ref _int8 : ref _packed;
        if (prepared == null)
        {
            long start = Stopwatch.GetTimestamp();
            prepared = _w.Prepared(pack, int8);
            PackingTime += Stopwatch.GetElapsedTime(start);
        }
        return prepared;
    }

    /// <summary>Which copies of the matrices a frame in <paramref name="precision"/> reads: packed for the bfloat16 GEMM, int8 MLPs.</summary>
    private (bool Pack, bool Int8) PreparedForms(MatMulPrecision precision) =>
        (_packWeights && MatMul.Effective(precision) == MatMulPrecision.BFloat16 && _hasBf16Matrices, _mlpInt8 && MatMul.Int8ChannelsSupported);

    /// <summary>
    /// Bytes the next frame in <paramref name="precision"/> will allocate for the matrices' packed or int8
    /// copies (see <see cref="PackWeights"/> and <see cref="MlpInt8"/>): zero when it reads the checkpoint's
    /// matrices as they are, or once those copies are made (they are kept until <see cref="ReleaseBuffers"/>).
    /// </summary>
    public long MatrixBytesToPrepare(MatMulPrecision precision)
    {
        lock (_lock)
        {
            var (pack, int8) = PreparedForms(precision);
            if (!pack && !int8) return 0;
            return (int8 ? _int8 : _packed) == null ? _w.PreparedBytes(pack, int8) : 0;
        }
    }

    private Workspace Buffers() => _workspace ??= new Workspace(Config, _mlpHiddenFloats, _minMlpRows, _lastStageFrames);

    /// <summary>Frees the cached per-frame buffers and the packed weights (they are re-made on the next call).</summary>
    public void ReleaseBuffers()
    {
        lock (_lock) { _workspace = null; _packed = null; _int8 = null; }
    }

    /// <summary>Buffers for one frame up to the last stage (sized for the largest), and the last stage's scratch for a group of frames.</summary>
    private sealed class Workspace
    {
        /// <summary>The residual stream [H·W, C].</summary>
        public readonly float[] A;
        /// <summary>Scratch of the same size: depthwise output, LayerNorm output, a downsample's patches.</summary>
        public readonly float[] B;
        /// <summary>The last stage's depthwise output for a group of frames (its residual stream is the caller's tokens).</summary>
        public readonly float[] LastStageScratch;
        public readonly int MlpHiddenFloats, MinMlpRows;
        /// <summary>Elements of the largest MLP hidden chunk (rows × 4C), whichever form it takes.</summary>
        private readonly long _hiddenElements;
        private float[]? _hidden;
        private ushort[]? _hiddenBf16;

        /// <summary>The MLP's hidden chunk in float32 (made at first use).</summary>
        public Span<float> Hidden(int rows, int width) => (_hidden ??= HugePages.AllocateZeroed<float>(_hiddenElements)).AsSpan(0, rows * width);

        /// <summary>The MLP's hidden chunk as bfloat16 rows for fc2 (<see cref="MatMul.LinearGeluToBFloat16"/>; made at first use).</summary>
        public Span<ushort> HiddenBFloat16(int rows, int width)
        {
            int stride = MatMul.BFloat16RowElements(width);
            long need = (long)rows * stride;
            if (_hiddenBf16 == null || _hiddenBf16.Length < need) _hiddenBf16 = HugePages.AllocateZeroed<ushort>(Math.Max(need, _hiddenElements / width * stride));
            return _hiddenBf16.AsSpan(0, (int)need);
        }

        public Workspace(ConvNextConfig c, int mlpHiddenFloats, int minMlpRows, int lastStageFrames)
        {
            MlpHiddenFloats = mlpHiddenFloats;
            MinMlpRows = minMlpRows;
            int side = c.ImageSize / c.PatchSize;
            long largest = (long)side * side * Math.Max(c.Dims[0], 3 * c.PatchSize * c.PatchSize);
            long hidden = 0;
            int last = c.Dims.Length - 1;
            for (int s = 0; s < c.Dims.Length; s++)
            {
                if (s > 0)
                {
                    largest = Math.Max(largest, (long)side * side * c.Dims[s - 1]);
                    side /= 2;
                }
                long pixels = (long)side * side * (s == last ? lastStageFrames : 1);
                if (s < last) largest = Math.Max(largest, pixels * c.Dims[s]);
                hidden = Math.Max(hidden, MlpChunkRows(mlpHiddenFloats, minMlpRows, pixels, c.Dims[s]) * 4L * c.Dims[s]);
            }
            // Made once and kept (each up to tens of MB): on huge pages, so their first touch is cheap.
            A = HugePages.AllocateZeroed<float>(largest);
            B = HugePages.AllocateZeroed<float>(largest);
            LastStageScratch = HugePages.AllocateZeroed<float>((long)lastStageFrames * side * side * c.Dims[last]);
            _hiddenElements = hidden;
        }
    }

    /// <summary>Rows per MLP chunk: as many as the budget holds but at least <paramref name="minRows"/>, then evened out over the chunks needed.</summary>
    private static int MlpChunkRows(int budgetFloats, int minRows, long pixels, int dim)
    {
        long most = Math.Clamp(Math.Max(budgetFloats / (4L * dim), minRows), 1, pixels);
        long chunks = (pixels + most - 1) / most;
        return (int)((pixels + chunks - 1) / chunks);
    }

    /// <summary>
    /// <paramref name="frames"/> frames: each alone through the stem and the stages before the last,
    /// whose output (the stem's, or the last downsample's) is written straight into the frame's slice
    /// of <paramref name="tokens"/>; then the last stage's blocks on all of them, in place in the tokens.
    /// </summary>
    private void EncodeGroup(ReadOnlySpan<float> pixels, int frames, Span<float> tokens, Workspace ws, CancellationToken cancel)
    {
        var c = Config;
        float eps = (float)c.NormEps;
        var w = Weights(Precision);
        int last = w.Stages.Length - 1, perFrame = TokensPerFrame * Channels;
        var profile = Profile;
        var time = profile != null ? TowerProfile.Clock.Now() : default;
        for (int f = 0; f < frames; f++)
        {
            cancel.ThrowIfCancellationRequested();
            UpToLastStage(w, pixels.Slice(f * FrameFloats, FrameFloats), tokens.Slice(f * perFrame, perFrame), ws, profile, ref time, cancel);
        }
        var x = tokens[..(frames * perFrame)];
        var t = ws.LastStageScratch.AsSpan(0, x.Length);
        foreach (var block in w.Stages[last].Blocks)
        {
            cancel.ThrowIfCancellationRequested();
            Block(block, last, TokensPerSide, Channels, frames, x, t, c.KernelSize, eps, ws, profile, ref time);
        }
        if (profile != null) profile.Frames += frames;
    }

    /// <summary>Stem, every stage before the last, and the last stage's downsample, for one frame; the last stage's input map lands in <paramref name="lastStageInput"/>.</summary>
    private void UpToLastStage(ConvNextWeights w, ReadOnlySpan<float> chw, Span<float> lastStageInput, Workspace ws, TowerProfile? profile, ref TowerProfile.Clock time, CancellationToken cancel)
    {
        var c = Config;
        float eps = (float)c.NormEps;
        int p = c.PatchSize;
        int side = c.ImageSize / p;
        int pixels = side * side;
        int dim = c.Dims[0];
        int last = w.Stages.Length - 1;

        // Stem: the p×p stride-p conv is patches × weightᵀ, then LayerNorm over channels.
        int patch0 = 3 * p * p;
        var stemOut = last == 0 ? lastStageInput : ws.A.AsSpan(0, pixels * dim);
        Conv.PatchifyChw(chw, 3, c.ImageSize, c.ImageSize, p, ws.B.AsSpan(0, pixels * patch0));
        MatMul.Linear(ws.B.AsSpan(0, pixels * patch0), pixels, w.StemConv, w.StemConvBias, stemOut, Precision);
        RowParallel.LayerNorm(stemOut, dim, w.StemNormWeight, w.StemNormBias, eps, stemOut);
        profile?.Add(0, TowerProfile.Stem, ref time, 2.0 * pixels * patch0 * dim);

        for (int s = 0; s <= last; s++)
        {
            var stage = w.Stages[s];
            if (stage.Downsample is { } down)
            {
                // LayerNorm (channels) → 2×2 stride-2 conv as patches × weightᵀ; the norm is done as the
                // pixels are copied into their patches (the weight's columns are in the patches' pixel-major order).
                int n = pixels * dim;
                Conv.LayerNormPatchifyHwc(ws.A.AsSpan(0, n), side, side, dim, 2, down.NormWeight, down.NormBias, eps, ws.B.AsSpan(0, n));
                side /= 2;
                pixels = side * side;
                var output = s == last ? lastStageInput : ws.A.AsSpan(0, pixels * stage.Dim);
                MatMul.Linear(ws.B.AsSpan(0, n), pixels, down.Conv, down.ConvBias, output, Precision);
                profile?.Add(s, TowerProfile.Downsample, ref time, 2.0 * n * stage.Dim);
                dim = stage.Dim;
            }
            if (s == last) break;
            foreach (var block in stage.Blocks)
            {
                cancel.ThrowIfCancellationRequested();
                Block(block, s, side, dim, 1, ws.A.AsSpan(0, pixels * dim), ws.B.AsSpan(0, pixels * dim), c.KernelSize, eps, ws, profile, ref time);
            }
        }
    }

    /// <summary>
    /// x += layerScale · fc2(gelu(fc1(norm(dwconv(x))))) on <paramref name="frames"/> frames' maps
    /// (x and the scratch t are [frames, side·side, dim]): the depthwise conv frame by frame, the MLP on
    /// a chunk of pixel rows of all of them at a time. With <see cref="FuseRowWork"/>, where the products
    /// run in bfloat16 through the GEMM, the LayerNorm happens as fc1 rounds its input rows, GELU on fc1's
    /// output tiles, which reach fc2 already rounded to bfloat16, and the layer scale + residual add on
    /// fc2's, so between the depthwise conv and the next block nothing else passes over the activations
    /// (otherwise the LayerNorm runs in the depthwise conv's call).
    /// The results are bit for bit those of the separate passes.
    /// </summary>
    private void Block(ConvNextWeights.BlockWeights b, int stage, int side, int dim, int frames, Span<float> x, Span<float> t, int kernel, float eps,
        Workspace ws, TowerProfile? profile, ref TowerProfile.Clock time)
    {
        int map = side * side * dim, pixels = side * side * frames;   // pixel rows of all the frames
        int chunk = MlpChunkRows(ws.MlpHiddenFloats, ws.MinMlpRows, pixels, dim), smallest = pixels - (pixels - 1) / chunk * chunk;
        bool fuse = FuseRowWork;
        // Fused, where every chunk's fc1 hands bfloat16 rows to fc2: the LayerNorm happens as fc1 rounds its
        // input rows (which it reads anyway); otherwise in the depthwise conv's call, right after the conv.
        bool int8 = b.Fc1Int8 != null && b.Fc2Int8 != null;
        bool handOff = !int8 && fuse && MatMul.CanHandOffBFloat16(b.Fc1, smallest, Precision) && MatMul.CanHandOffBFloat16(b.Fc2, smallest, Precision);
        bool normInConv = (fuse || int8) && !handOff;
        for (int f = 0; f < frames; f++)
            Conv.DepthwiseHwcTaps(x.Slice(f * map, map), side, side, dim, b.DepthwiseTaps, b.DepthwiseBias, kernel, t.Slice(f * map, map),
                normInConv ? b.NormWeight : default, normInConv ? b.NormBias : default, eps);
        profile?.Add(stage, normInConv ? TowerProfile.DepthwiseNorm : TowerProfile.Depthwise, ref time, 2.0 * kernel * kernel * pixels * dim);

        for (int row = 0; row < pixels; row += chunk)
        {
            int rows = Math.Min(chunk, pixels - row);
            var tc = t.Slice(row * dim, rows * dim);
            var xc = x.Slice(row * dim, rows * dim);
            double productFlops = 2.0 * rows * dim * 4 * dim;
            if (handOff)
            {
                // fc1 normalizes its input rows as it rounds them, applies GELU to its output tiles and rounds
                // those as fc2 would: fc2 reads bfloat16 rows (half the bytes) and nothing passes over the
                // activations between the depthwise conv and the next block.
                var hiddenBf16 = ws.HiddenBFloat16(rows, 4 * dim);
                MatMul.LinearGeluToBFloat16(tc, rows, b.Fc1, b.Fc1Bias, hiddenBf16, Precision,
                    new LinearFusion { InputNormWeight = b.NormWeight, InputNormBias = b.NormBias, InputNormEps = eps });
                profile?.Add(stage, TowerProfile.Fc1GeluBf16, ref time, productFlops);
                MatMul.LinearFused(hiddenBf16, rows, b.Fc2, b.Fc2Bias, default, Precision, new LinearFusion { ResidualScale = b.LayerScale }, xc);
                profile?.Add(stage, TowerProfile.Fc2Fused, ref time, productFlops);
                continue;
            }
            var hidden = ws.Hidden(rows, 4 * dim);
            if (int8 && fuse)
            {
                // int8 products (normalized in the depthwise conv's call; each takes its input rows' scales as it
                // quantizes them), GELU on fc1's output tiles, the layer scale and residual add on fc2's, which
                // go into x from cache and are never written out.
                MatMul.LinearInt8(tc, rows, b.Fc1Int8!, b.Fc1Bias, hidden, new LinearFusion { Gelu = true });
                profile?.Add(stage, TowerProfile.Fc1GeluInt8, ref time, productFlops);
                MatMul.LinearInt8(hidden, rows, b.Fc2Int8!, b.Fc2Bias, default, new LinearFusion { ResidualScale = b.LayerScale }, xc);
                profile?.Add(stage, TowerProfile.Fc2FusedInt8, ref time, productFlops);
                continue;
            }
            // The row work as passes of their own, around float/bfloat16 or int8 products.
            if (!normInConv)
            {
                RowParallel.LayerNorm(tc, dim, b.NormWeight, b.NormBias, eps, tc);
                profile?.Add(stage, TowerProfile.Norm, ref time, 0);
            }
            if (int8) MatMul.LinearInt8(tc, rows, b.Fc1Int8!, b.Fc1Bias, hidden);
            else MatMul.Linear(tc, rows, b.Fc1, b.Fc1Bias, hidden, Precision);
            profile?.Add(stage, int8 ? TowerProfile.Fc1Int8 : TowerProfile.Fc1, ref time, productFlops);
            RowParallel.Gelu(hidden, 4 * dim);
            profile?.Add(stage, TowerProfile.Gelu, ref time, 0);
            if (!int8 && fuse && MatMul.CanFuse(b.Fc2, rows, Precision))
            {
                MatMul.LinearFused(hidden, rows, b.Fc2, b.Fc2Bias, tc, Precision, new LinearFusion { ResidualScale = b.LayerScale }, xc);
                profile?.Add(stage, TowerProfile.Fc2Fused, ref time, productFlops);
                continue;
            }
            if (int8) MatMul.LinearInt8(hidden, rows, b.Fc2Int8!, b.Fc2Bias, tc);
            else MatMul.Linear(hidden, rows, b.Fc2, b.Fc2Bias, tc, Precision);
            profile?.Add(stage, int8 ? TowerProfile.Fc2Int8 : TowerProfile.Fc2, ref time, productFlops);
            RowParallel.ScaleAddResidual(xc, tc, dim, b.LayerScale);
            profile?.Add(stage, TowerProfile.ScaleResidual, ref time, 0);
        }
    }
}
