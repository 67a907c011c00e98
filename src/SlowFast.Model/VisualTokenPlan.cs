namespace SlowFast.Model;

/// <summary>
/// How many visual tokens a video or image becomes, following the reference's
/// prepare_inputs_labels_for_multimodal and split_slow_fast_tokens:
/// <list type="number">
/// <item>the tower gives side×side tokens a frame (18×18 at 576 px);</item>
/// <item>videos (more than one frame) are 2-D average pooled by mm_video_pooling_stride (floor);</item>
/// <item>slow tokens: every frame's pooled tokens, uncompressed;</item>
/// <item>fast tokens: temporal sampling (fast_token_temporal_sampling_stride, at least min_fast_frames),
/// temporal average pooling by fast_token_temporal_stride (adaptive down to min_fast_frames when fewer
/// would remain), then spatial pooling by fast_token_spatial_stride. The zero padding of the frame
/// axis to a multiple of the strides is undone by the frame selection that follows it, so it never
/// changes the result.</item>
/// </list>
/// A single image takes the image path: no video pooling; fast tokens are only spatially pooled.
/// </summary>
public sealed record VisualTokenPlan(int Frames, int TowerSide, int SlowSide, int FastFrames, int FastSide)
{
    public int SlowTokensPerFrame => SlowSide * SlowSide;
    public int SlowTokens => Frames * SlowTokensPerFrame;
    public int FastTokensPerFrame => FastSide * FastSide;
    public int FastTokens => FastFrames * FastTokensPerFrame;

    public static VisualTokenPlan For(SlowFastConfig c, int frames)
    {
        if (frames < 1) throw new UserError($"frame count must be at least 1 (got {frames})");
        int side = c.Vision.TokensPerSide;
        bool video = frames > 1;
        int slowSide = video && c.MmVideoPoolingStride > 1 ? side / c.MmVideoPoolingStride : side;
        int fastFrames = frames;
        if (video)
        {
            if (c.FastTokenTemporalSamplingStride > 1)
                fastFrames = SampleFastFrames(frames, c.FastTokenTemporalSamplingStride, c.MinFastFrames).Count;
            if (c.FastTokenTemporalStride > 1)
                fastFrames = fastFrames / c.FastTokenTemporalStride >= c.MinFastFrames
                    ? fastFrames / c.FastTokenTemporalStride
                    : Math.Min(fastFrames, c.MinFastFrames);
        }
        int fastSide = c.FastTokenSpatialStride > 1 ? slowSide / c.FastTokenSpatialStride : slowSide;
        return new VisualTokenPlan(frames, side, slowSide, fastFrames, fastSide);
    }

    /// <summary>
    /// The reference's sample_fast_frames: all frames when fewer than <paramref name="minFrames"/>,
    /// otherwise max(total / stride, minFrames) frames at floor(i × total / count).
    /// </summary>
    public static List<int> SampleFastFrames(int total, int stride, int minFrames)
    {
        var all = Enumerable.Range(0, total).ToList();
        if (total < minFrames) return all;
        int count = Math.Max(total / stride, minFrames);
        double step = (double)total / count;
        var list = new List<int>(count);
        for (int i = 0; i < count; i++) list.Add(Math.Min((int)(i * step), total - 1));
        return list;
    }
}
