using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Engine;

/// <summary>How an <see cref="InferenceEngine"/> shares one model between requests.</summary>
public sealed record EngineOptions
{
    /// <summary>Sequences decoded together in one batched forward pass; more wait, in arrival order.</summary>
    public int MaxConcurrentSequences { get; init; } = 8;

    /// <summary>
    /// Bytes the KV caches of running sequences may take together. A request whose cache would not fit
    /// waits (in arrival order) until running ones finish; one that could never fit is refused.
    /// Default: a quarter of the memory available to the process, at least 256 MiB.
    /// </summary>
    public long KvCacheBudgetBytes { get; init; } = Math.Max(256L << 20, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4);

    /// <summary>
    /// Prompt positions run in one step, shared by the prompts being prefilled (oldest first). A longer
    /// prefill is split, so decoding sequences wait at most one chunk for their next token.
    /// </summary>
    public int PrefillChunkTokens { get; init; } = 512;

    /// <summary>
    /// Bytes of finished prompts' KV caches kept for reuse by later prompts that start the same way
    /// (a follow-up question, another question about the same video); least recently used go first.
    /// 0 turns prefix reuse off.
    /// </summary>
    public long PrefixCacheBytes { get; init; } = Math.Max(256L << 20, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 8);

    /// <summary>
    /// Arithmetic of requests that do not choose one: bfloat16 where the CPU has AVX512-BF16 (the
    /// reference's own inference dtype, about twice as fast), else float32.
    /// </summary>
    public MatMulPrecision DefaultPrecision { get; init; } = MatMul.BFloat16Supported ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32;

    /// <summary>
    /// Quantize the decoder's linear weights to this block format when the model loads (in memory,
    /// nothing written; <c>--quantize</c>); null keeps them as stored. Ignored for a quantized checkpoint.
    /// </summary>
    public Tensors.Quantization.BlockFormat? QuantizeWeights { get; init; }

    /// <summary>
    /// Whether the vision tower keeps its matrices packed for the bfloat16 GEMM after its first bfloat16
    /// frame (<see cref="Vision.ConvNextTower.PackWeights"/>, the default): faster vision for as much memory
    /// again as the tower's BF16 matrices (about 1.7 GB for ConvNeXt-XXL). False: <c>--no-packed-vision</c>.
    /// </summary>
    public bool PackVisionWeights { get; init; } = true;

    /// <summary>
    /// Whether the decoder's BF16 matrices are packed for the bfloat16 GEMM when the model loads, in place
    /// of the memory-mapped ones, where <see cref="DefaultPrecision"/> is bfloat16 on this machine (the
    /// default; <c>serve --no-packed-decoder</c> turns it off, <c>ask --pack-decoder</c> on). Products then
    /// never pack weights per call, and read them from huge pages: faster prefill (above all of short
    /// prompts, such as a follow-up question), decoding no slower. The packed matrices take about as much memory
    /// as the stored ones, held by the process instead of the page cache, and loading reads and packs the
    /// whole decoder: worth it for a process that answers more than one question
    /// (<see cref="SlowFastModel.DecoderPacking"/> says what was done). Declined where they would take more
    /// than 3/4 of the memory available.
    /// </summary>
    public bool PackDecoderWeights { get; init; } = true;

    /// <summary>
    /// Run the vision tower's MLP products in int8 with one scale per row and per output channel
    /// (<see cref="Vision.ConvNextTower.MlpInt8"/>; <c>--vision-int8</c>): faster vision, other numbers
    /// (about 0.4% relative error on the tower's output with random weights). Off by default. Where the
    /// CPU has no AVX512-VNNI it has no effect.
    /// </summary>
    public bool VisionInt8 { get; init; }

    public void Validate()
    {
        if (MaxConcurrentSequences < 1) throw new UserError($"engine: max concurrent sequences must be at least 1 (got {MaxConcurrentSequences})");
        if (KvCacheBudgetBytes < 1) throw new UserError($"engine: the KV-cache budget must be positive (got {KvCacheBudgetBytes})");
        if (PrefillChunkTokens < 1) throw new UserError($"engine: the prefill chunk must be at least 1 token (got {PrefillChunkTokens})");
        if (PrefixCacheBytes < 0) throw new UserError($"engine: the prefix cache size must be 0 or more (got {PrefixCacheBytes})");
    }
}
