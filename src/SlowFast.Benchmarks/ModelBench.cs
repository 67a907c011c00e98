using SlowFast.Tensors.Kernels;
using System.Diagnostics;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;
using SlowFast.Tensors;

namespace SlowFast.Benchmarks;

/// <summary>
/// End-to-end speed of a model: vision tower frames/s (random pixels), prefill tokens/s for a prompt
/// of the released layout (fast tokens of N frames inside ~60 text tokens, slow tokens of N frames
/// cross-attended), and decode tokens/s with its share of the memory-bandwidth bound (the bytes of
/// weights one decoded token reads, divided by the measured read bandwidth).
/// </summary>
public static class ModelBench
{
    /// <summary>Benchmarks a whole checkpoint with the model's own vision encoder and decoder (no tokenizer needed).</summary>
    public static JsonObject Checkpoint(string dir, string source, int frames, MachineLimits limits, int reps, bool quick, TextWriter log,
        MatMulPrecision precision = MatMulPrecision.Float32, VisualDesign design = VisualDesign.SlowFast)
    {
        using var model = ModelDirectory.Open(dir);
        var config = model.Config;
        var result = new JsonObject { ["source"] = source, ["mode"] = "checkpoint", ["frames"] = frames, ["precision"] = MatMul.EffectiveName(precision), ["design"] = design.ToString() };

        // Vision: a few frames of the video path per repetition.
        var vision = new VisionEncoder(model);
        vision.Tower.Precision = vision.Projector.Precision = precision;
        int visionFrames = Math.Min(frames, quick ? 2 : 4);
        var pixels = RandomData.Floats((long)visionFrames * vision.Tower.FrameFloats, 1f, 3);
        log.WriteLine($"  vision: {visionFrames} frames of {vision.ImageSize} px per repetition");
        vision.Encode(pixels.AsSpan(0, vision.Tower.FrameFloats), 1); // warm-up: JIT and the tower's buffers
        var tv = Timing.Measure(() => vision.Encode(pixels, visionFrames), Math.Min(reps, 3), warmups: 0);
        result["vision"] = VisionJson(tv, visionFrames, frames, estimated: false);
        log.WriteLine($"  vision: {visionFrames / tv.Median:F2} frames/s ({tv.Describe()} for {visionFrames} frames)");
        vision.Tower.ReleaseBuffers();

        var decoder = new Qwen2Decoder(config, DecoderWeights.From(model));
        var workspace = new DecoderWorkspace();
        var prompt = PromptShape.ForFrames(config, frames, design);
        result["prompt"] = prompt.ToJson();
        int hidden = config.HiddenSize;
        var ids = PromptIds(prompt, config.VocabSize);
        var fast = RandomData.Floats((long)prompt.FastTokens * hidden, 0.05f, 4);
        var slowTokens = RandomData.Floats((long)prompt.SlowTokens * hidden, 0.05f, 5);
        var built = DecoderPrompt.Build(decoder, ids, fast, prompt.FastTokens, "bench prompt");
        var rows = CrossAttentionRows.ForPrompt(config, built.TokenTypes);
        int decodeTokens = quick ? 4 : 16;
        var logits = new float[decoder.VocabSize];

        // Warm-up: a short text-only request JITs every path and pages the memory-mapped weights in.
        {
            var warmCache = decoder.CreateCache(16);
            var e = new float[8 * hidden];
            decoder.Embed(ids.AsSpan(0, 8), e);
            decoder.Forward(e, 8, warmCache, [], null, LogitRows.Last, logits, precision, workspace);
            decoder.Forward(e.AsMemory(0, hidden), 1, warmCache, [], null, LogitRows.Last, logits, precision, workspace);
        }

        log.WriteLine($"  prefill: {prompt.Positions} positions ({prompt.TextTokens} text + {prompt.FastTokens} fast), {prompt.SlowTokens} slow tokens");
        KvCache cache = decoder.CreateCache(built.Length + decodeTokens + 1);
        SlowKeyValues? slow = null;
        var tp = Timing.Measure(() => { cache.Clear(); return decoder.CreateSlowKeyValues(slowTokens, prompt.SlowTokens); },
            s => { slow = s; decoder.Forward(built.Embeddings, built.Length, cache, rows, s, LogitRows.Last, logits, precision, workspace); },
            Math.Min(reps, 3), warmups: 0);
        result["prefill"] = PrefillJson(tp, prompt.Positions, estimated: false);
        log.WriteLine($"  prefill: {prompt.Positions / tp.Median:F1} tokens/s ({tp.Describe()})");

        // Decode greedily after the last prefill, as generation does (generated tokens skip the cross-attention by default).
        var embedding = new float[hidden];
        var td = Timing.Measure(() => Sampler.ArgMax(logits), token =>
        {
            decoder.Embed([token], embedding);
            decoder.Forward(embedding, 1, cache, [], slow, LogitRows.Last, logits, precision, workspace);
        }, decodeTokens, warmups: 0);
        long bytesPerToken = decoder.Weights.Layers.Sum(DecoderLayerBench.MatrixBytes) + decoder.Weights.LmHead.ByteLength + 4L * decoder.Weights.FinalNorm.Length;
        result["decode"] = DecodeJson(td, bytesPerToken, limits, estimated: false);
        log.WriteLine($"  decode: {1 / td.Median:F2} tokens/s ({td.Describe()} a token), {100 * bytesPerToken / (limits.ReadBandwidthGBs * 1e9) / td.Median:F1}% of the bandwidth bound");
        result["peak_working_set_bytes"] = Process.GetCurrentProcess().PeakWorkingSet64;
        return result;
    }

    /// <summary>
    /// A model too big to hold for a benchmark (the 7B preset without a checkpoint): one plain and one
    /// hybrid decoder layer, the lm_head and every ConvNeXt stage's block with random weights of the
    /// real shapes, each timed on its own; the whole model's times are the sums over its layers.
    /// </summary>
    public static JsonObject SampledLayers(SlowFastConfig config, string source, int frames, MachineLimits limits, int reps, bool quick,
        string tempRoot, LayerCache layers, TextWriter log, VisualDesign design = VisualDesign.SlowFast)
    {
        var result = new JsonObject { ["source"] = source, ["mode"] = "sampled-layers", ["frames"] = frames, ["precision"] = MatMul.EffectiveName(layers.Precision), ["design"] = design.ToString() };
        var prompt = PromptShape.ForFrames(config, frames, design);
        result["prompt"] = prompt.ToJson();
        int hybridCount = config.HybridLayers.Count, plainCount = config.NumHiddenLayers - hybridCount;
        int layerReps = Math.Min(reps, quick ? 1 : 3), decodeReps = quick ? 4 : 16;

        var plain = layers.Get(config, hybrid: false, prompt, layerReps, decodeReps, log);
        var hybrid = layers.Get(config, hybrid: true, prompt, layerReps, decodeReps, log);
        var lmHead = new MatShape("lm_head", 1, config.HiddenSize, config.VocabSize, DType.BF16);
        var tl = KernelSuite.TimeLinear(lmHead, Math.Max(reps, 3));
        log.WriteLine($"  lm_head GEMV 1x{lmHead.K}x{lmHead.N}: {tl.Describe()}");

        double prefill = plainCount * plain.Prefill.Median + hybridCount * hybrid.Prefill.Median + tl.Median;
        double prefillCpu = plainCount * plain.Prefill.CpuMedian + hybridCount * hybrid.Prefill.CpuMedian + tl.CpuMedian;
        double decode = plainCount * plain.Decode.Median + hybridCount * hybrid.Decode.Median + tl.Median;
        double decodeCpu = plainCount * plain.Decode.CpuMedian + hybridCount * hybrid.Decode.CpuMedian + tl.CpuMedian;
        result["prefill"] = PrefillJson(new Timing(prefill, prefill, prefill, layerReps, prefillCpu), prompt.Positions, estimated: true);
        long bytesPerToken = config.NumHiddenLayers * plain.DecodeWeightBytes + (long)lmHead.WeightBytes;
        result["decode"] = DecodeJson(new Timing(decode, decode, decode, decodeReps, decodeCpu), bytesPerToken, limits, estimated: true);
        result["layers"] = new JsonArray(
            LayerJson("decoder layer (plain)", plainCount, plain, limits),
            LayerJson("decoder layer (hybrid)", hybridCount, hybrid, limits),
            new JsonObject { ["name"] = "lm_head + final norm", ["count"] = 1, ["prefill"] = tl.ToJson(), ["decode"] = tl.ToJson() });
        log.WriteLine($"  model prefill (sum over layers): {prompt.Positions / prefill:F1} tokens/s ({prefill:F1} s); decode: {1 / decode:F2} tokens/s, " +
            $"{100 * bytesPerToken / (limits.ReadBandwidthGBs * 1e9) / decode:F1}% of the bandwidth bound");

        // Vision: per stage one block (× depth), the downsamples and the projector.
        var tower = config.Vision;
        var stages = new JsonArray();
        double frame = 0, frameCpu = 0;
        for (int s = 0; s < tower.Dims.Length; s++)
        {
            var tb = layers.Block(tower, s, layerReps, tempRoot, log);
            frame += tower.Depths[s] * tb.Median;
            frameCpu += tower.Depths[s] * tb.CpuMedian;
            var row = new JsonObject
            {
                ["stage"] = s, ["side"] = ConvNextStageBench.Side(tower, s), ["dim"] = tower.Dims[s], ["depth"] = tower.Depths[s],
                ["block"] = tb.ToJson(),
            };
            if (s > 0)
            {
                var td = ConvNextStageBench.MeasureDownsample(tower, s, DType.BF16, layerReps, layers.Precision);
                frame += td.Median;
                frameCpu += td.CpuMedian;
                row["downsample"] = td.ToJson();
            }
            row["stage_s"] = tower.Depths[s] * tb.Median + (row["downsample"] is JsonObject d ? (double)d["median_s"]! : 0);
            stages.Add(row);
        }
        var projector = TimeProjector(config, reps, layers.Precision);
        frame += projector.Median;
        frameCpu += projector.CpuMedian;
        result["vision"] = VisionJson(new Timing(frame, frame, frame, layerReps, frameCpu), 1, frames, estimated: true);
        result["convnext_stages"] = stages;
        result["projector"] = projector.ToJson();
        log.WriteLine($"  vision (sum over stages): {1 / frame:F3} frames/s ({frame:F1} s a frame)");
        result["peak_working_set_bytes"] = Process.GetCurrentProcess().PeakWorkingSet64;
        return result;
    }

    /// <summary>The mlp2x_gelu projector on one frame's tokens (Linear → GELU → Linear).</summary>
    private static Timing TimeProjector(SlowFastConfig c, int reps, MatMulPrecision precision)
    {
        int n = c.Vision.TokensPerFrame;
        var w1 = RandomData.Matrix(c.HiddenSize, c.Vision.HiddenSize, DType.BF16, 51);
        var w2 = RandomData.Matrix(c.HiddenSize, c.HiddenSize, DType.BF16, 52);
        var x = RandomData.Floats((long)n * c.Vision.HiddenSize, 1f, 53);
        var h = new float[n * c.HiddenSize];
        var y = new float[n * c.HiddenSize];
        return Timing.Measure(() =>
        {
            Tensors.Kernels.MatMul.Linear(x, n, w1, ReadOnlySpan<float>.Empty, h, precision);
            Tensors.Kernels.Activations.Gelu(h);
            Tensors.Kernels.MatMul.Linear(h, n, w2, ReadOnlySpan<float>.Empty, y, precision);
        }, Math.Max(reps, 3));
    }

    private static int[] PromptIds(PromptShape p, int vocab)
    {
        var ids = new int[p.TextTokens + 1];
        int limit = Math.Min(vocab, 151643); // ordinary tokens only (the special ones start at 151643)
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)((i * 7919L + 13) % limit);
        ids[p.TextBefore] = DecoderPrompt.ImagePlaceholder;
        return ids;
    }

    private static JsonObject VisionJson(Timing t, int framesPerCall, int frames, bool estimated)
    {
        var o = t.ToJson();
        o["frames_per_call"] = framesPerCall;
        o["frames_per_s"] = framesPerCall / t.Median;
        o["frames_per_cpu_s"] = framesPerCall / t.CpuMedian;
        o["seconds_for_frames"] = frames * t.Median / framesPerCall;
        o["estimated"] = estimated;
        return o;
    }

    private static JsonObject PrefillJson(Timing t, int positions, bool estimated)
    {
        var o = t.ToJson();
        o["positions"] = positions;
        o["tokens_per_s"] = positions / t.Median;
        o["tokens_per_cpu_s"] = positions / t.CpuMedian;
        o["estimated"] = estimated;
        return o;
    }

    private static JsonObject DecodeJson(Timing t, long bytesPerToken, MachineLimits limits, bool estimated)
    {
        double bound = bytesPerToken / (limits.ReadBandwidthGBs * 1e9);
        var o = t.ToJson();
        o["tokens_per_s"] = 1 / t.Median;
        o["tokens_per_cpu_s"] = 1 / t.CpuMedian;
        o["weight_bytes_per_token"] = bytesPerToken;
        o["bandwidth_bound_tokens_per_s"] = 1 / bound;
        o["pct_bandwidth_bound"] = 100 * bound / t.Median;
        o["pct_bandwidth_bound_best"] = 100 * bound / t.Min;
        o["estimated"] = estimated;
        return o;
    }

    private static JsonObject LayerJson(string name, int count, LayerCache.LayerTimes t, MachineLimits limits) => new()
    {
        ["name"] = name, ["count"] = count, ["prefill"] = t.Prefill.ToJson(), ["decode"] = t.Decode.ToJson(),
        ["decode_weight_bytes"] = t.DecodeWeightBytes,
        ["decode_pct_bandwidth_bound"] = 100 * t.DecodeWeightBytes / (limits.ReadBandwidthGBs * 1e9) / t.Decode.Median,
    };
}

/// <summary>
/// Layer and block measurements shared by the model section and the PyTorch side-by-side within one
/// run, so that the same shape is not timed twice.
/// </summary>
public sealed class LayerCache(MatMulPrecision precision = MatMulPrecision.Float32)
{
    /// <summary>Arithmetic of the layers' matrix products.</summary>
    public MatMulPrecision Precision { get; } = precision;

    public sealed record LayerTimes(Timing Prefill, Timing Decode, long DecodeWeightBytes);

    private readonly Dictionary<string, LayerTimes> _layers = new();
    private readonly Dictionary<string, Timing> _blocks = new();

    public LayerTimes Get(SlowFastConfig config, bool hybrid, PromptShape prompt, int reps, int decodeReps, TextWriter log)
    {
        // A plain layer never reads the slow tokens, so their count does not change its work.
        var work = hybrid ? prompt : prompt with { SlowTokens = 0 };
        string key = $"{config.HiddenSize}/{config.NumAttentionHeads}/{config.NumKeyValueHeads}/{config.IntermediateSize}/{hybrid}/{work}";
        if (_layers.TryGetValue(key, out var done)) return done;
        log.WriteLine($"  {(hybrid ? "hybrid" : "plain")} decoder layer (hidden {config.HiddenSize}, MLP {config.IntermediateSize}): prefill {prompt.Positions} positions" +
            (hybrid ? $" with {prompt.SlowTokens} slow tokens" : "") + ", then decoding");
        var bench = new DecoderLayerBench(config, hybrid, DType.BF16, Precision);
        var (prefill, decode) = bench.Measure(prompt, reps, decodeReps);
        log.WriteLine($"    prefill {prefill.Describe()}, decode {decode.Describe()} a token");
        var times = new LayerTimes(prefill, decode, bench.DecodeWeightBytes);
        _layers[key] = times;
        GC.Collect(); // the layer's weights go before the next one is made
        return times;
    }

    /// <summary>Keeps a block's timing made elsewhere (the kernels section's rounds against PyTorch) for <see cref="Block"/>.</summary>
    public void RememberBlock(ConvNextConfig tower, int stage, Timing timing) => _blocks[BlockKey(tower, stage)] = timing;

    private static string BlockKey(ConvNextConfig tower, int stage)
    {
        int side = ConvNextStageBench.Side(tower, stage);
        return $"{side}x{side}x{tower.Dims[stage]}";
    }

    public Timing Block(ConvNextConfig tower, int stage, int reps, string tempRoot, TextWriter log)
    {
        string key = BlockKey(tower, stage);
        if (_blocks.TryGetValue(key, out var done)) return done;
        var t = ConvNextStageBench.MeasureBlock(tower, stage, DType.BF16, reps, tempRoot, precision: Precision);
        log.WriteLine($"  ConvNeXt stage {stage} block {key} (with its stem): {t.Describe()}");
        _blocks[key] = t;
        return t;
    }
}
