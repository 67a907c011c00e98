using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Vision;

/// <summary>
/// Pixels to visual tokens: the ConvNeXt tower and the projector frame by frame, then the slow/fast
/// pooling of <see cref="VisualTokenBuilder"/>. Each frame is projected and (for videos) pooled as
/// soon as the tower has encoded it — the projector and the per-frame pooling act on each frame
/// alone, so this is the reference's result without holding every frame's full-size tokens.
/// </summary>
/// <remarks>
/// One request at a time per instance (the tower's buffers are shared). The <see cref="ModelDirectory"/>
/// must stay open while the encoder is used.
/// </remarks>
public sealed class VisionEncoder
{
    /// <summary>Default cap on the memory the visual tokens of one request may take (bytes).</summary>
    public static long DefaultMaxTokenBytes => Math.Max(256L << 20, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2);

    public SlowFastConfig Config { get; }
    public ConvNextTower Tower { get; }
    public Projector Projector { get; }
    /// <summary>Cap on the bytes of the tokens kept for one request; larger requests are refused before any work.</summary>
    public long MaxTokenBytes { get; set; } = DefaultMaxTokenBytes;

    public VisionEncoder(ModelDirectory model) : this(model.Config, new ConvNextTower(model), new Projector(model)) { }

    public VisionEncoder(SlowFastConfig config, ConvNextTower tower, Projector projector)
    {
        if (projector.InputSize != tower.Channels)
            throw new ArgumentException($"projector takes {projector.InputSize} channels but the tower gives {tower.Channels}");
        Config = config;
        Tower = tower;
        Projector = projector;
    }

    /// <summary>Pixels per side of a frame the tower takes.</summary>
    public int ImageSize => Tower.ImageSize;

    /// <summary>Bytes the tokens of <paramref name="frames"/> frames need (slow + fast, plus the intermediates when kept).</summary>
    public long TokenBytes(int frames, bool keepIntermediates = false)
    {
        var plan = VisualTokenPlan.For(Config, frames);
        long hidden = Projector.OutputSize;
        long bytes = ((long)plan.SlowTokens + plan.FastTokens) * hidden * sizeof(float);
        if (keepIntermediates) bytes += (long)frames * plan.TowerSide * plan.TowerSide * (Tower.Channels + hidden) * sizeof(float);
        return bytes;
    }

    private float[]? _oneFeatures, _oneProjected, _oneScratch;

    /// <summary>
    /// One frame of a video of <paramref name="plan"/>'s frame count: tower, projector, then its slow
    /// tokens [SlowTokensPerFrame, hidden] (video-pooled) into <paramref name="slow"/>. What
    /// <see cref="Encoding.EncodeNextFrames"/> does for a frame, without keeping the video's other frames
    /// (<c>slowfast encode</c> writes each frame's tokens out as it goes). Not thread-safe.
    /// </summary>
    public void EncodeSlowFrame(VisualTokenPlan plan, ReadOnlySpan<float> chw, Span<float> slow, MatMulPrecision precision, CancellationToken cancel = default)
    {
        int hidden = Projector.OutputSize, n = Tower.TokensPerFrame;
        if (slow.Length != plan.SlowTokensPerFrame * hidden) throw new ArgumentException($"a frame's slow tokens are {plan.SlowTokensPerFrame * hidden} floats; got {slow.Length}", nameof(slow));
        _oneFeatures ??= new float[n * Tower.Channels];
        _oneProjected ??= new float[n * hidden];
        _oneScratch ??= new float[Projector.Depth > 1 ? n * hidden : 0];
        var (towerPrecision, projectorPrecision) = (Tower.Precision, Projector.Precision);
        Tower.Precision = Projector.Precision = precision;
        try
        {
            Tower.EncodeFrame(chw, _oneFeatures, cancel);
            Projector.Project(_oneFeatures, n, _oneProjected, _oneScratch);
        }
        finally { (Tower.Precision, Projector.Precision) = (towerPrecision, projectorPrecision); }
        VisualTokenBuilder.SlowFrame(Config, plan, _oneProjected, hidden, slow);
    }

    /// <summary>Writes frame <c>frame</c>'s normalized pixels [3, S, S] into <c>chw</c>.</summary>
    public delegate void FrameSource(int frame, Span<float> chw);

    /// <summary>
    /// Encodes <paramref name="frames"/> frames of normalized pixels [frames, 3, S, S]. One frame takes
    /// the image path (as in the reference, a one-frame video is an image); more frames are a video.
    /// <paramref name="progress"/> receives the number of frames encoded. With
    /// <paramref name="keepIntermediates"/> the result also holds the tower features and the projected
    /// tokens of every frame (for tests and <c>slowfast forward</c>).
    /// </summary>
    public VisualTokens Encode(ReadOnlySpan<float> pixels, int frames, IProgress<int>? progress = null,
        CancellationToken cancel = default, bool keepIntermediates = false)
    {
        if (frames < 1) throw new UserError($"vision: frame count must be at least 1 (got {frames})");
        long frameFloats = Tower.FrameFloats;
        if (pixels.Length != frames * frameFloats)
            throw new UserError($"vision: {frames} frame(s) of [3, {ImageSize}, {ImageSize}] need {frames * frameFloats} pixel values; got {pixels.Length}");
        unsafe
        {
            fixed (float* p = pixels)
            {
                float* start = p; // the lambda runs only inside this fixed block, during Encode
                return Encode(frames, (f, chw) => new ReadOnlySpan<float>(start + f * frameFloats, (int)frameFloats).CopyTo(chw),
                    progress, cancel, keepIntermediates);
            }
        }
    }

    /// <summary>
    /// Like <see cref="Encode(ReadOnlySpan{float}, int, IProgress{int}?, CancellationToken, bool)"/>, with
    /// the frames supplied one at a time by <paramref name="source"/> (in order, each once), so a caller
    /// decoding a video never needs every frame's pixels at once.
    /// </summary>
    public VisualTokens Encode(int frames, FrameSource source, IProgress<int>? progress = null,
        CancellationToken cancel = default, bool keepIntermediates = false)
    {
        var encoding = Start(frames, source, Tower.Precision, keepIntermediates);
        while (!encoding.Done)
        {
            cancel.ThrowIfCancellationRequested();
            encoding.EncodeNextFrames(Tower.LastStageFrames, progress, cancel);
        }
        return encoding.Finish();
    }

    /// <summary>
    /// Starts encoding <paramref name="frames"/> frames a step at a time (<see cref="Encoding.EncodeNextFrames"/>),
    /// so a scheduler can interleave other work between frames. Refuses, before any work, a request whose
    /// tokens would exceed <see cref="MaxTokenBytes"/>.
    /// </summary>
    public Encoding Start(int frames, FrameSource source, MatMulPrecision precision, bool keepIntermediates = false)
    {
        if (frames < 1) throw new UserError($"vision: frame count must be at least 1 (got {frames})");
        long need = TokenBytes(frames, keepIntermediates);
        if (need > MaxTokenBytes || need / sizeof(float) > Array.MaxLength)
            throw new UserError($"vision: {frames} frames would need {need / 1e9:F2} GB of visual tokens, over the {MaxTokenBytes / 1e9:F2} GB limit; use fewer frames");
        return new Encoding(this, frames, source, precision, keepIntermediates);
    }

    /// <summary>
    /// One video's encoding in progress: frames go through the tower and the projector a few at a time
    /// (up to the tower's <see cref="ConvNextTower.LastStageFrames"/>: its last stage and the projector
    /// then take all their rows in one product) and (for videos) are pooled into their slow tokens as
    /// soon as they are encoded — the projector and the per-frame pooling act on each frame alone, so
    /// this is the reference's result without holding every frame's full-size tokens. The fast tokens
    /// are pooled from the slow ones at the end.
    /// </summary>
    public sealed class Encoding
    {
        private readonly VisionEncoder _encoder;
        private readonly FrameSource _source;
        private readonly MatMulPrecision _precision;
        private readonly VisualTokenPlan _plan;
        private readonly float[] _slow, _framePixels, _frameFeatures, _frameProjected, _projectorScratch;
        private readonly float[]? _features, _projected;
        private readonly int _group;   // most frames per step: the buffers hold that many

        public int Frames { get; }
        public int FramesDone { get; private set; }
        public bool Done => FramesDone == Frames;

        internal Encoding(VisionEncoder encoder, int frames, FrameSource source, MatMulPrecision precision, bool keepIntermediates)
        {
            _encoder = encoder;
            _source = source;
            _precision = precision;
            Frames = frames;
            _plan = VisualTokenPlan.For(encoder.Config, frames);
            int hidden = encoder.Projector.OutputSize, channels = encoder.Tower.Channels, n = encoder.Tower.TokensPerFrame;
            _slow = new float[(long)_plan.SlowTokens * hidden];
            _features = keepIntermediates ? new float[(long)frames * n * channels] : null;
            _projected = keepIntermediates ? new float[(long)frames * n * hidden] : null;
            _group = Math.Min(frames, encoder.Tower.LastStageFrames);
            _framePixels = new float[(long)_group * encoder.Tower.FrameFloats];
            _frameFeatures = new float[(long)_group * n * channels];
            _frameProjected = new float[(long)_group * n * hidden];
            _projectorScratch = new float[encoder.Projector.Depth > 1 ? (long)_group * n * hidden : 0];
        }

        /// <summary>
        /// Encodes the next frames, up to <paramref name="maxFrames"/> and the tower's
        /// <see cref="ConvNextTower.LastStageFrames"/> at once (fewer frames a step: a scheduler gets
        /// control back sooner). The tower's buffers are the encoder's: one step at a time per encoder.
        /// <paramref name="progress"/> then receives the count of frames done, once for each frame of the step.
        /// </summary>
        public void EncodeNextFrames(int maxFrames, IProgress<int>? progress = null, CancellationToken cancel = default)
        {
            if (Done) throw new InvalidOperationException("every frame is encoded");
            ArgumentOutOfRangeException.ThrowIfLessThan(maxFrames, 1);
            var tower = _encoder.Tower;
            var projector = _encoder.Projector;
            int first = FramesDone, hidden = projector.OutputSize, n = tower.TokensPerFrame;
            int count = Math.Min(Math.Min(maxFrames, _group), Frames - first);
            int slowPerFrame = _plan.SlowTokensPerFrame * hidden, frameFloats = tower.FrameFloats;
            for (int i = 0; i < count; i++) _source(first + i, _framePixels.AsSpan(i * frameFloats, frameFloats));
            var features = _frameFeatures.AsSpan(0, count * n * tower.Channels);
            var projected = _frameProjected.AsSpan(0, count * n * hidden);
            var (towerPrecision, projectorPrecision) = (tower.Precision, projector.Precision);
            tower.Precision = projector.Precision = _precision;
            try
            {
                tower.EncodeFrames(_framePixels.AsSpan(0, count * frameFloats), count, features, cancel: cancel);
                projector.Project(features, count * n, projected, _projectorScratch);
            }
            finally { (tower.Precision, projector.Precision) = (towerPrecision, projectorPrecision); }
            for (int i = 0; i < count; i++)
            {
                int f = first + i;
                VisualTokenBuilder.SlowFrame(_encoder.Config, _plan, projected.Slice(i * n * hidden, n * hidden), hidden, _slow.AsSpan(f * slowPerFrame, slowPerFrame));
            }
            if (_features != null) features.CopyTo(_features.AsSpan(first * n * tower.Channels));
            if (_projected != null) projected.CopyTo(_projected.AsSpan(first * n * hidden));
            FramesDone += count;
            for (int f = first; f < FramesDone; f++) progress?.Report(f + 1);
        }

        /// <summary>The visual tokens, once every frame is encoded.</summary>
        public VisualTokens Finish()
        {
            if (!Done) throw new InvalidOperationException($"{FramesDone} of {Frames} frames are encoded");
            return VisualTokenBuilder.WithFast(_encoder.Config, _plan, _slow, _encoder.Projector.OutputSize, _features, _projected);
        }
    }
}
