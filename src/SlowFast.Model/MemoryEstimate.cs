namespace SlowFast.Model;

/// <summary>
/// The memory one question about a video needs besides the weights (which are memory-mapped), so a
/// frame count beyond what the machine holds is refused before any work, with the estimate, rather
/// than found by running out of memory. Float32 throughout, as the engine keeps these:
/// <list type="bullet">
/// <item>the visual tokens: slow [Ns, hidden] and fast [Nf, hidden] (the baseline holds only its sequence tokens);</item>
/// <item>the slow tokens' keys and values in every hybrid layer, kept for the request;</item>
/// <item>the KV cache of the prompt (and answer) positions, every layer;</item>
/// <item>the prompt's input embeddings and a prefill chunk's activations (q/k/v, attention, MLP in row chunks);</item>
/// <item>one frame's pixels and the vision tower's buffers (frames stream through the tower one at a time; its MLP
/// hidden buffer holds up to 16 Mi floats), and the tower's matrices packed once for bfloat16 arithmetic (under
/// <c>--vision-int8</c> the blocks' MLP matrices as int8 instead, a byte an element): for a loaded model exactly
/// what its tower will still make (nothing in float32 arithmetic, with <c>--no-packed-vision</c>, or once made).</item>
/// </list>
/// </summary>
public sealed record MemoryEstimate(long VisualTokens, long SlowKeyValues, long KvCache, long Activations, long Vision)
{
    public long Total => VisualTokens + SlowKeyValues + KvCache + Activations + Vision;

    public static MemoryEstimate For(SlowFastConfig c, int frames, VisualDesign design = VisualDesign.SlowFast, int textTokens = 64,
        int answerTokens = 512, int prefillChunk = 512, bool visionInt8 = false, long? towerMatrixBytes = null)
    {
        var plan = VisualTokenPlan.For(c, frames);
        long h = c.HiddenSize, kv = c.NumKeyValueHeads * c.HeadDim, q = c.NumAttentionHeads * c.HeadDim;
        bool baseline = design == VisualDesign.Baseline;
        long sequenceVisual = baseline ? plan.SlowTokens : plan.FastTokens;
        long positions = textTokens + sequenceVisual + answerTokens;
        long visual = (plan.SlowTokens + (baseline ? 0 : plan.FastTokens)) * h * 4;
        long slowKv = baseline ? 0 : c.HybridLayers.Count * (long)plan.SlowTokens * 2 * kv * 4;
        long kvCache = c.NumHiddenLayers * positions * 2 * kv * 4;
        long chunk = Math.Min(prefillChunk, positions);
        // The prompt's embeddings; a chunk's residual, norm, projections, q/k/v and attention rows; the MLP's two [rows, I] buffers.
        long mlpRows = Math.Min(Decoder.Qwen2Decoder.MlpChunkRows, chunk);
        long activations = (positions * h + chunk * (4 * h + 2 * q + 2 * kv) + 2L * mlpRows * c.IntermediateSize) * 4;
        var v = c.Vision;
        long towerSide = v.ImageSize / v.PatchSize;
        long vision = (3L * v.ImageSize * v.ImageSize + 2 * towerSide * towerSide * Math.Max(v.Dims[0], 3 * v.PatchSize * v.PatchSize)
            + SlowFast.Model.Vision.ConvNextTower.DefaultMlpHiddenFloats + (long)v.TokensPerFrame * (v.HiddenSize + 2 * h)) * 4
            + (towerMatrixBytes ?? TowerMatrixBytes(v, visionInt8));   // the tower's matrices made once (ConvNextTower.MatrixBytesToPrepare)
        return new MemoryEstimate(visual, slowKv, kvCache, activations, vision);
    }

    /// <summary>
    /// Bytes of the tower's matrices as made once at its first frame, from the config alone (no weights at
    /// hand): the stem's and downsamples' convolutions packed in bfloat16, every block's fc1 and fc2 too, or
    /// as int8 (a byte an element) with <paramref name="mlpInt8"/>. A loaded tower knows exactly
    /// (<c>ConvNextTower.MatrixBytesToPrepare</c>).
    /// </summary>
    private static long TowerMatrixBytes(ConvNextConfig v, bool mlpInt8)
    {
        long convolutions = 3L * v.PatchSize * v.PatchSize * v.Dims[0], mlps = 0;
        for (int s = 0; s < v.Dims.Length; s++)
        {
            convolutions += s > 0 ? 4L * v.Dims[s - 1] * v.Dims[s] : 0;
            mlps += v.Depths[s] * 8L * v.Dims[s] * v.Dims[s];
        }
        return 2 * convolutions + (mlpInt8 ? 1 : 2) * mlps;
    }

    /// <summary>
    /// Memory this process can still use: the GC's limit (physical memory, or a container's) less what it
    /// holds now; with <paramref name="afterCollection"/>, less what it still holds after a full collection
    /// (a large decision, such as packing a decoder at load, should not count another model's garbage).
    /// </summary>
    public static long Available(bool afterCollection = false)
    {
        var info = GC.GetGCMemoryInfo();
        return Math.Max(0, info.TotalAvailableMemoryBytes - GC.GetTotalMemory(afterCollection));
    }

    /// <summary>Refuses, with the estimate, a request that would not fit in <paramref name="available"/> bytes (default: <see cref="Available"/>).</summary>
    public void Check(int frames, string what, long? available = null)
    {
        long limit = available ?? Available();
        if (Total > limit)
            throw new UserError($"{what}: {frames} frames need about {Gb(Total)} of memory besides the weights (visual tokens {Gb(VisualTokens)}, " +
                $"slow keys/values {Gb(SlowKeyValues)}, KV cache {Gb(KvCache)}, activations {Gb(Activations + Vision)}) but {Gb(limit)} is available; use fewer frames");
    }

    private static string Gb(long bytes) => $"{bytes / 1e9:F2} GB";
}
