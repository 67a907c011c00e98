namespace SlowFast.Model;

/// <summary>How a video's visual tokens reach the language model.</summary>
public enum VisualDesign
{
    /// <summary>The checkpoint's design: fast tokens in the sequence, slow tokens cross-attended in the hybrid layers.</summary>
    SlowFast,
    /// <summary>
    /// Self-attention only, as LLaVA-style models do: every frame's (video-pooled) tokens — the slow
    /// tokens — are placed in the sequence, and the hybrid layers' cross-attention is not run.
    /// </summary>
    Baseline,
}

/// <summary>One part's cost: floating-point operations and the bytes of weights and activations it touches.</summary>
/// <param name="Flops">2 per multiply-add of a matrix product, convolution or attention; 1 per addition of a pooling.</param>
/// <param name="WeightBytes">The distinct weights the part reads, in the checkpoint's stored dtype (the tower re-reads its weights for every frame; this counts them once).</param>
/// <param name="ActivationBytes">Float32 inputs and outputs of each of the part's products, each counted once per product
/// (for attention: the queries, keys, values and output; for a decoding step, the KV cache it reads).</param>
public sealed record PartCost(string Name, double Flops, double WeightBytes, double ActivationBytes);

/// <summary>What a prompt looks like to the cost model: text tokens, and how many of them precede the video.</summary>
public sealed record PromptText(int TextTokens, int TextBeforeVisual)
{
    /// <summary>The chat template with a short question ("Describe the video in detail."): 26 text tokens, 14 of them before the video.</summary>
    public static readonly PromptText Typical = new(26, 14);
}

/// <summary>
/// The arithmetic and memory traffic of one question about a video, part by part, from the config's
/// shapes alone (so any preset or checkpoint, any frame count). What is counted:
/// <list type="bullet">
/// <item><b>vision tower</b> (all frames): the stem and downsample convolutions, each block's depthwise
/// convolution (only the taps inside the frame: zero padding is not multiplied) and its two MLP
/// products. LayerNorms, GELU and residual additions are left out (under 1% of the products).</item>
/// <item><b>projector</b>: its Linear layers on every frame's tokens (it runs before any pooling).</item>
/// <item><b>pooling</b>: the additions of the video pooling (slow tokens), the fast tokens' temporal
/// windows and their spatial pooling.</item>
/// <item><b>LLM prefill</b>: every decoder layer's q/k/v/o and MLP products over the P positions (text
/// plus fast tokens; for <see cref="VisualDesign.Baseline"/>, text plus every frame's tokens), causal
/// attention (position t reads t+1 keys), and lm_head for the last position only.</item>
/// <item><b>slow K/V projections</b>: each hybrid layer's cross_attn_kv_proj over the slow tokens.</item>
/// <item><b>cross-attention</b>: each hybrid layer's attending rows × slow tokens (scores and weighted
/// values) and the gate's dot product per row.</item>
/// <item><b>decode step</b>: one generated token with the prompt in the KV cache: every layer's products
/// for one row, attention over P+1 keys, lm_head; no cross-attention (generated tokens do not attend
/// to the slow tokens in the reference's decoding).</item>
/// </list>
/// Norms, rotary, softmax and embedding look-ups are not counted. The unit tests check these formulas
/// against multiply-adds counted in the loops of the scalar reference implementations on tiny shapes.
/// </summary>
public sealed class ComputeCost
{
    public const string VisionTower = "vision tower";
    public const string Projector = "projector";
    public const string Pooling = "pooling";
    public const string Prefill = "LLM prefill";
    public const string SlowKeyValues = "slow K/V projections";
    public const string CrossAttention = "cross-attention";
    public const string DecodeStep = "decode step";

    private const double F32 = 4;

    public SlowFastConfig Config { get; }
    public VisualDesign Design { get; }
    public VisualTokenPlan Plan { get; }
    public PromptText Prompt { get; }
    /// <summary>Positions in the decoder's input sequence: text plus the visual tokens placed in it.</summary>
    public long Positions { get; }
    /// <summary>Visual tokens placed in the sequence (fast tokens, or every frame's tokens for the baseline).</summary>
    public long SequenceVisualTokens { get; }
    /// <summary>Tokens the hybrid layers cross-attend to (0 for the baseline).</summary>
    public long CrossAttendedTokens { get; }
    /// <summary>Prompt rows that add the cross-attention in each hybrid layer.</summary>
    public long CrossAttentionRows { get; }
    public IReadOnlyList<PartCost> Parts { get; }

    /// <summary>The LLM's share of a question: prefill, slow K/V projections and cross-attention (what the paper compares).</summary>
    public double LlmPrefillFlops => Part(Prefill).Flops + Part(SlowKeyValues).Flops + Part(CrossAttention).Flops;

    public PartCost Part(string name) => Parts.First(p => p.Name == name);

    /// <param name="weightBytesPerElement">Bytes of a stored weight: 2 for BF16/F16 checkpoints, 4 for F32.</param>
    public static ComputeCost For(SlowFastConfig config, int frames, VisualDesign design = VisualDesign.SlowFast,
        PromptText? prompt = null, double weightBytesPerElement = 2) =>
        new(config, frames, design, prompt ?? PromptText.Typical, weightBytesPerElement);

    /// <summary>Bytes of one stored weight for a config's torch_dtype (2 unless float32).</summary>
    public static double WeightBytesFor(SlowFastConfig config) =>
        config.TorchDtype is "float32" or "f32" ? 4 : 2;

    private ComputeCost(SlowFastConfig c, int frames, VisualDesign design, PromptText prompt, double wb)
    {
        if (prompt.TextTokens < 1 || prompt.TextBeforeVisual < 0 || prompt.TextBeforeVisual > prompt.TextTokens)
            throw new UserError($"a prompt of {prompt.TextTokens} text tokens with {prompt.TextBeforeVisual} before the video is not possible");
        Config = c;
        Design = design;
        Plan = VisualTokenPlan.For(c, frames);
        Prompt = prompt;
        bool baseline = design == VisualDesign.Baseline;
        SequenceVisualTokens = baseline ? Plan.SlowTokens : Plan.FastTokens;
        CrossAttendedTokens = baseline ? 0 : Plan.SlowTokens;
        Positions = prompt.TextTokens + SequenceVisualTokens;
        CrossAttentionRows = baseline ? 0
            : !c.TextOnlyCrossAttention ? Positions
            : c.MaskSystemTokens ? prompt.TextTokens - prompt.TextBeforeVisual
            : prompt.TextTokens;

        Parts =
        [
            VisionTowerCost(c, frames, wb),
            ProjectorCost(c, frames, wb),
            PoolingCost(c, Plan, baseline),
            PrefillCost(c, Positions, prompt.TextTokens, wb),
            SlowKeyValueCost(c, CrossAttendedTokens, wb),
            CrossAttentionCost(c, CrossAttentionRows, CrossAttendedTokens, wb),
            DecodeStepCost(c, Positions, wb),
        ];
    }

    /// <summary>Accumulates products: multiply-adds, distinct weights, float32 activations in and out.</summary>
    private sealed class Tally
    {
        public double MultiplyAdds, Additions, Weights, Activations;

        /// <summary>[rows, k] × [k, n] (+ bias n when <paramref name="bias"/>).</summary>
        public void Product(double rows, double k, double n, bool bias)
        {
            MultiplyAdds += rows * k * n;
            Weights += k * n + (bias ? n : 0);
            Activations += rows * (k + n);
        }

        public PartCost Done(string name, double weightBytes) =>
            new(name, 2 * MultiplyAdds + Additions, Weights * weightBytes, Activations * F32);
    }

    private static PartCost VisionTowerCost(SlowFastConfig c, int frames, double wb)
    {
        var v = c.Vision;
        var t = new Tally();
        int p = v.PatchSize, side = v.ImageSize / p;
        t.Product((double)side * side, 3.0 * p * p, v.Dims[0], bias: true);
        t.Weights += 2.0 * v.Dims[0]; // stem LayerNorm
        for (int s = 0; s < v.Dims.Length; s++)
        {
            int dim = v.Dims[s];
            if (s > 0)
            {
                t.Weights += 2.0 * v.Dims[s - 1];
                side /= 2;
                t.Product((double)side * side, 4.0 * v.Dims[s - 1], dim, bias: true);
            }
            double pixels = (double)side * side;
            double taps = DepthwiseTaps(side, v.KernelSize);
            for (int b = 0; b < v.Depths[s]; b++)
            {
                t.MultiplyAdds += taps * dim;
                t.Weights += (double)v.KernelSize * v.KernelSize * dim + dim + 3.0 * dim; // depthwise weight and bias, norm, layer scale
                t.Activations += 2 * pixels * dim;
                t.Product(pixels, dim, 4.0 * dim, bias: true);
                t.Product(pixels, 4.0 * dim, dim, bias: true);
            }
        }
        // Every frame repeats the work; the weights are the same ones.
        t.MultiplyAdds *= frames;
        t.Activations *= frames;
        return t.Done(VisionTower, wb);
    }

    /// <summary>Multiply-adds of a k×k depthwise convolution (zero padding k/2) over a side×side map, per channel: the taps inside the map.</summary>
    public static double DepthwiseTaps(int side, int kernel)
    {
        int r = kernel / 2;
        double along = 0;
        for (int i = 0; i < side; i++) along += Math.Min(side - 1, i + r) - Math.Max(0, i - r) + 1;
        return along * along;
    }

    private static PartCost ProjectorCost(SlowFastConfig c, int frames, double wb)
    {
        var t = new Tally();
        double rows = (double)frames * c.Vision.TokensPerFrame;
        int width = c.MmHiddenSize ?? c.Vision.HiddenSize;
        for (int i = 0; i < c.ProjectorDepth; i++)
        {
            t.Product(rows, width, c.HiddenSize, bias: true);
            width = c.HiddenSize;
        }
        return t.Done(Projector, wb);
    }

    private static PartCost PoolingCost(SlowFastConfig c, VisualTokenPlan plan, bool baseline)
    {
        var t = new Tally();
        double h = c.HiddenSize;
        bool video = plan.Frames > 1;
        if (video && c.MmVideoPoolingStride > 1)
        {
            // Each slow token sums stride² projected tokens.
            double s = c.MmVideoPoolingStride;
            t.Additions += plan.Frames * (double)plan.SlowTokensPerFrame * s * s * h;
            t.Activations += plan.Frames * ((double)plan.TowerSide * plan.TowerSide + plan.SlowTokensPerFrame) * h;
        }
        if (!baseline)
        {
            double slowFrame = plan.SlowTokensPerFrame * h;
            if (video)
            {
                var chosen = c.FastTokenTemporalSamplingStride > 1
                    ? VisualTokenPlan.SampleFastFrames(plan.Frames, c.FastTokenTemporalSamplingStride, c.MinFastFrames).Count
                    : plan.Frames;
                var windows = Vision.VisualTokenBuilder.TemporalWindows(chosen, c.FastTokenTemporalStride, c.MinFastFrames);
                if (windows.Any(w => w.End - w.Start > 1))
                {
                    double summed = windows.Sum(w => (double)(w.End - w.Start));
                    t.Additions += summed * slowFrame;
                    t.Activations += (summed + windows.Count) * slowFrame;
                }
            }
            if (c.FastTokenSpatialStride > 1)
            {
                double s = c.FastTokenSpatialStride;
                t.Additions += plan.FastTokens * s * s * h;
                t.Activations += (plan.FastFrames * slowFrame + plan.FastTokens * h);
            }
        }
        return t.Done(Pooling, 0);
    }

    /// <summary>One decoder layer's products over <paramref name="rows"/> new rows (q, k, v with biases, o, the SwiGLU MLP).</summary>
    private static void LayerProducts(SlowFastConfig c, double rows, Tally t)
    {
        double h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim, i = c.IntermediateSize;
        t.Weights += 2 * h; // the two RMSNorms
        t.Product(rows, h, q, bias: true);
        t.Product(rows, h, kv, bias: true);
        t.Product(rows, h, kv, bias: true);
        t.Product(rows, q, h, bias: false);
        t.Product(rows, h, i, bias: false);
        t.Product(rows, h, i, bias: false);
        t.Product(rows, i, h, bias: false);
    }

    private static PartCost PrefillCost(SlowFastConfig c, long positions, int textTokens, double wb)
    {
        var t = new Tally();
        double p = positions, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            LayerProducts(c, p, t);
            // Causal attention: position j reads j+1 keys, for scores and for the weighted values.
            t.MultiplyAdds += 2 * q * (p * (p + 1) / 2);
            t.Activations += p * (2 * q + 2 * kv);
        }
        t.Weights += (double)textTokens * c.HiddenSize + c.HiddenSize; // embedding rows of the text, final norm
        t.Product(1, c.HiddenSize, c.VocabSize, bias: false);          // lm_head, last position
        return t.Done(Prefill, wb);
    }

    private static PartCost SlowKeyValueCost(SlowFastConfig c, long slowTokens, double wb)
    {
        var t = new Tally();
        if (slowTokens > 0)
            foreach (var _ in c.HybridLayers)
            {
                t.Weights += c.HiddenSize; // the layer's input norm, applied to the slow tokens
                t.Product(slowTokens, c.HiddenSize, 2.0 * c.NumKeyValueHeads * c.HeadDim, bias: true);
            }
        return t.Done(SlowKeyValues, wb);
    }

    private static PartCost CrossAttentionCost(SlowFastConfig c, long rows, long slowTokens, double wb)
    {
        var t = new Tally();
        if (rows > 0 && slowTokens > 0)
        {
            double q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim;
            foreach (var _ in c.HybridLayers)
            {
                t.MultiplyAdds += 2.0 * rows * q * slowTokens;
                t.Activations += rows * 2 * q + slowTokens * 2 * kv;
                t.Product(rows, q, 1, bias: true); // the gate
                if (c.GateHasWarmup) t.Weights += 1;
            }
        }
        return t.Done(CrossAttention, wb);
    }

    private static PartCost DecodeStepCost(SlowFastConfig c, long promptPositions, double wb)
    {
        var t = new Tally();
        double keys = promptPositions + 1, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            LayerProducts(c, 1, t);
            t.MultiplyAdds += 2 * q * keys;
            t.Activations += 2 * q + 2 * kv * keys;
        }
        t.Weights += 2.0 * c.HiddenSize; // one embedding row, final norm
        t.Product(1, c.HiddenSize, c.VocabSize, bias: false);
        return t.Done(DecodeStep, wb);
    }
}
