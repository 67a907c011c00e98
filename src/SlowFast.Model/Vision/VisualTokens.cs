namespace SlowFast.Model.Vision;

/// <summary>
/// The visual tokens of one video or image, in the language model's hidden width:
/// <see cref="Fast"/> go into the prompt at the &lt;image&gt; position; <see cref="Slow"/> are what the
/// hybrid layers cross-attend to. Both are row-major [count, Hidden].
/// </summary>
public sealed class VisualTokens
{
    /// <summary>Fast tokens [FastCount, Hidden], frame by frame, each frame row-major over (h, w).</summary>
    public required float[] Fast { get; init; }
    public required int FastCount { get; init; }
    /// <summary>Slow tokens [SlowCount, Hidden]: every frame's (video-pooled) tokens.</summary>
    public required float[] Slow { get; init; }
    public required int SlowCount { get; init; }
    public required int Hidden { get; init; }
    /// <summary>True for more than one frame (the reference's video path).</summary>
    public required bool IsVideo { get; init; }
    public required VisualTokenPlan Plan { get; init; }

    /// <summary>Tower output before the projector, [frames, TokensPerFrame, TowerChannels]; only when asked to keep it.</summary>
    public float[]? Features { get; init; }
    /// <summary>Projector output before any pooling, [frames, TokensPerFrame, Hidden]; only when asked to keep it.</summary>
    public float[]? Projected { get; init; }

    /// <summary>How these tokens reach the language model (see <see cref="ForDesign"/>).</summary>
    public VisualDesign Design { get; init; } = VisualDesign.SlowFast;

    /// <summary>
    /// These tokens as <paramref name="design"/> uses them. <see cref="VisualDesign.Baseline"/> (a
    /// self-attention-only model on the same weights, as LLaVA-style models work): every frame's
    /// video-pooled tokens — the slow tokens, in frame order — go into the sequence at the &lt;image&gt;
    /// position, and there is nothing to cross-attend to, so the hybrid layers run as plain decoder
    /// layers. The arrays are shared, not copied. Tokens already in that design are returned as they are.
    /// </summary>
    public VisualTokens ForDesign(VisualDesign design)
    {
        if (design == Design) return this;
        if (Design != VisualDesign.SlowFast) throw new InvalidOperationException("baseline tokens cannot be turned back into slow-fast tokens");
        return new VisualTokens
        {
            Fast = Slow, FastCount = SlowCount, Slow = [], SlowCount = 0, Hidden = Hidden, IsVideo = IsVideo, Plan = Plan,
            Features = Features, Projected = Projected, Design = design,
        };
    }
}
