using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Vision;

/// <summary>
/// Turns projected per-frame tokens into slow and fast tokens exactly as the reference's
/// prepare_inputs_labels_for_multimodal and split_slow_fast_tokens do (the projector runs before any
/// pooling there; pooling is linear but the projector is not, so the order matters):
/// <list type="number">
/// <item>videos (frames &gt; 1): each frame 2-D average pooled by mm_video_pooling_stride (floor mode);
/// these are the slow tokens;</item>
/// <item>fast tokens of a video: frames chosen by sample_fast_frames when
/// fast_token_temporal_sampling_stride &gt; 1 (all frames otherwise), then temporal average pooling by
/// fast_token_temporal_stride — plain windows of that many frames (floor) when at least
/// min_fast_frames outputs remain, otherwise adaptive pooling down to min(frames, min_fast_frames) —
/// then 2-D average pooling by fast_token_spatial_stride;</item>
/// <item>a single image: no video pooling; slow = its tokens, fast = them spatially pooled.</item>
/// </list>
/// The reference zero-pads the frame axis to a multiple of the two temporal strides before choosing
/// frames, but every index it then picks is below the original frame count, so the padding never
/// reaches the result and is not reproduced here.
/// </summary>
public static class VisualTokenBuilder
{
    /// <summary>
    /// Slow and fast tokens from projected tokens [frames, side², hidden] (the reference's order:
    /// tower, projector, then pooling).
    /// </summary>
    public static VisualTokens Build(SlowFastConfig config, ReadOnlySpan<float> projected, int frames, int hidden)
    {
        var plan = VisualTokenPlan.For(config, frames);
        CheckPlan(plan);
        int perFrame = plan.TowerSide * plan.TowerSide * hidden;
        if (projected.Length != (long)frames * perFrame)
            throw new ArgumentException($"projected tokens for {frames} frames of {plan.TowerSide}×{plan.TowerSide}×{hidden} need {(long)frames * perFrame} floats; got {projected.Length}", nameof(projected));
        var slow = new float[(long)plan.SlowTokens * hidden];
        int slowPerFrame = plan.SlowTokensPerFrame * hidden;
        for (int f = 0; f < frames; f++)
            SlowFrame(config, plan, projected.Slice(f * perFrame, perFrame), hidden, slow.AsSpan(f * slowPerFrame, slowPerFrame));
        return WithFast(config, plan, slow, hidden, null, null);
    }

    /// <summary>
    /// One frame's slow tokens from its projected tokens [TowerSide², hidden]: 2-D average pooled by
    /// mm_video_pooling_stride for videos, a copy for an image. <paramref name="slow"/> is [SlowTokensPerFrame, hidden].
    /// </summary>
    public static void SlowFrame(SlowFastConfig config, VisualTokenPlan plan, ReadOnlySpan<float> projectedFrame, int hidden, Span<float> slow)
    {
        bool pool = plan.Frames > 1 && config.MmVideoPoolingStride > 1;
        if (pool) Pool.AvgPool2dHwc(projectedFrame, plan.TowerSide, plan.TowerSide, hidden, config.MmVideoPoolingStride, slow);
        else projectedFrame.CopyTo(slow);
    }

    /// <summary>
    /// Completes the tokens from all frames' slow tokens [frames, SlowTokensPerFrame, hidden]: computes the fast tokens.
    /// </summary>
    public static VisualTokens WithFast(SlowFastConfig config, VisualTokenPlan plan, float[] slow, int hidden, float[]? features, float[]? projected)
    {
        CheckPlan(plan);
        int frameFloats = plan.SlowTokensPerFrame * hidden;
        if (slow.Length != (long)plan.Frames * frameFloats)
            throw new ArgumentException($"slow tokens for {plan.Frames} frames need {(long)plan.Frames * frameFloats} floats; got {slow.Length}", nameof(slow));

        // 1-2: frame selection and temporal pooling (videos only), as [fastFrames, slowSide², hidden].
        float[] frames = slow;
        int frameCount = plan.Frames;
        if (plan.Frames > 1)
        {
            IReadOnlyList<int> chosen = config.FastTokenTemporalSamplingStride > 1
                ? VisualTokenPlan.SampleFastFrames(plan.Frames, config.FastTokenTemporalSamplingStride, config.MinFastFrames)
                : Enumerable.Range(0, plan.Frames).ToArray();
            var windows = TemporalWindows(chosen.Count, config.FastTokenTemporalStride, config.MinFastFrames);
            frames = AverageFrames(slow, frameFloats, chosen, windows);
            frameCount = windows.Count;
        }
        if (frameCount != plan.FastFrames)
            throw new InvalidOperationException($"fast frame count {frameCount} disagrees with the token plan's {plan.FastFrames}");

        // 3: spatial pooling of each fast frame.
        float[] fast;
        int stride = config.FastTokenSpatialStride;
        if (stride > 1)
        {
            int fastFrameFloats = plan.FastTokensPerFrame * hidden;
            fast = new float[(long)frameCount * fastFrameFloats];
            for (int f = 0; f < frameCount; f++)
                Pool.AvgPool2dHwc(frames.AsSpan(f * frameFloats, frameFloats), plan.SlowSide, plan.SlowSide, hidden, stride,
                    fast.AsSpan(f * fastFrameFloats, fastFrameFloats));
        }
        else fast = ReferenceEquals(frames, slow) ? (float[])slow.Clone() : frames;

        return new VisualTokens
        {
            Fast = fast,
            FastCount = plan.FastTokens,
            Slow = slow,
            SlowCount = plan.SlowTokens,
            Hidden = hidden,
            IsVideo = plan.Frames > 1,
            Plan = plan,
            Features = features,
            Projected = projected,
        };
    }

    /// <summary>
    /// The temporal pooling windows over <paramref name="frames"/> chosen frames, as [start, end) pairs:
    /// with stride 1 every frame alone; windows of <paramref name="stride"/> frames (trailing frames
    /// dropped, like avg_pool3d) when frames / stride ≥ <paramref name="minFrames"/>; otherwise
    /// adaptive_avg_pool3d's windows for min(frames, minFrames) outputs: [⌊i·T/out⌋, ⌈(i+1)·T/out⌉).
    /// </summary>
    public static IReadOnlyList<(int Start, int End)> TemporalWindows(int frames, int stride, int minFrames)
    {
        if (frames < 1) throw new ArgumentOutOfRangeException(nameof(frames));
        var list = new List<(int, int)>();
        if (stride <= 1)
        {
            for (int i = 0; i < frames; i++) list.Add((i, i + 1));
        }
        else if (frames / stride >= minFrames)
        {
            for (int i = 0; i < frames / stride; i++) list.Add((i * stride, (i + 1) * stride));
        }
        else
        {
            int outputs = Math.Min(frames, minFrames);
            for (int i = 0; i < outputs; i++)
                list.Add(((int)((long)i * frames / outputs), (int)(((long)(i + 1) * frames + outputs - 1) / outputs)));
        }
        if (list.Count == 0)
            throw new UserError($"temporal pooling by {stride} leaves no fast frames out of {frames} (min_fast_frames {minFrames})");
        return list;
    }

    /// <summary>Each output frame = the mean of the chosen frames its window covers (summed in order, then divided).</summary>
    private static float[] AverageFrames(float[] slow, int frameFloats, IReadOnlyList<int> chosen, IReadOnlyList<(int Start, int End)> windows)
    {
        var output = new float[(long)windows.Count * frameFloats];
        for (int o = 0; o < windows.Count; o++)
        {
            var (start, end) = windows[o];
            var dst = output.AsSpan(o * frameFloats, frameFloats);
            slow.AsSpan(chosen[start] * frameFloats, frameFloats).CopyTo(dst);
            for (int k = start + 1; k < end; k++)
                Elementwise.AddInPlace(dst, slow.AsSpan(chosen[k] * frameFloats, frameFloats));
            if (end - start > 1) Elementwise.Scale(dst, 1f / (end - start));
        }
        return output;
    }

    private static void CheckPlan(VisualTokenPlan plan)
    {
        if (plan.SlowSide < 1 || plan.FastSide < 1 || plan.FastFrames < 1)
            throw new UserError($"the pooling strides leave no visual tokens for {plan.Frames} frame(s) of {plan.TowerSide}×{plan.TowerSide} tokens (slow {plan.SlowSide}×{plan.SlowSide}, fast {plan.FastFrames} frame(s) of {plan.FastSide}×{plan.FastSide}); check mm_video_pooling_stride and fast_token_spatial_stride");
    }
}
