namespace SlowFast.Model.Generation;

/// <summary>How to pick the answer's tokens. The defaults give greedy decoding of up to 512 tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>Stop after this many new tokens (the stop token, when reached first, is not counted as text).</summary>
    public int MaxNewTokens { get; init; } = 512;
    /// <summary>0 (default): greedy — always the most likely token. Above 0: sample from softmax(logits / T).</summary>
    public double Temperature { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches P (1 = off).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Keep only the K most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>
    /// HF's repetition penalty (1 = off): a token already generated has its logit divided by the penalty
    /// when positive, multiplied when negative. As in the reference's generate (which passes only input
    /// embeddings to HF), only generated tokens count, not the prompt.
    /// </summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Seed of the sampler; the same seed, prompt and options give the same answer.</summary>
    public ulong Seed { get; init; }
    /// <summary>
    /// Off (default, the reference's semantics): generated tokens do not read the slow tokens — in the
    /// reference each decoding step multiplies the cross-attention output by zero, so it is skipped here.
    /// On: each generated token attends to the slow tokens as a response token does in training, with
    /// the slow tokens' keys/values computed once per request and cached.
    /// </summary>
    public bool AttendSlowTokensWhileDecoding { get; init; }
    /// <summary>Stop at &lt;|im_end|&gt; and &lt;|endoftext|&gt; (default). Off: always generate MaxNewTokens tokens.</summary>
    public bool StopAtEndTokens { get; init; } = true;

    /// <summary>
    /// Arithmetic of the matrix products for this request; null: the engine's default
    /// (<see cref="Engine.EngineOptions.DefaultPrecision"/>: bfloat16 where the CPU has AVX512-BF16).
    /// </summary>
    public SlowFast.Tensors.Kernels.MatMulPrecision? Precision { get; init; }

    /// <summary>Testing aid: keep a copy of every step's logits (before sampling) in <see cref="GenerationResult.StepLogits"/>.</summary>
    internal bool KeepStepLogits { get; init; }

    /// <summary>Testing aid: recompute the slow keys/values at every step instead of caching them.</summary>
    internal bool RecomputeSlowKeyValues { get; init; }

    public void Validate()
    {
        if (MaxNewTokens < 1) throw new UserError($"max new tokens must be at least 1 (got {MaxNewTokens})");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new UserError($"temperature must be 0 or more (got {Temperature})");
        if (!(TopP > 0 && TopP <= 1)) throw new UserError($"top-p must be in (0, 1] (got {TopP})");
        if (TopK < 0) throw new UserError($"top-k must be 0 (off) or more (got {TopK})");
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty)) throw new UserError($"repetition penalty must be positive (got {RepetitionPenalty})");
    }
}
