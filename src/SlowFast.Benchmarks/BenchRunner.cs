using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;
using System.Text.Json.Nodes;
using SlowFast.Model;

namespace SlowFast.Benchmarks;

/// <summary>What <see cref="BenchRunner.Run"/> measures.</summary>
/// <param name="ModelDir">A checkpoint directory to benchmark whole; null: <paramref name="Preset"/>'s shapes.</param>
/// <param name="Preset">tiny / small (a temporary checkpoint is made) or 7b (sampled layers, no checkpoint).</param>
/// <param name="Only">Keep only the matrix products whose name contains this text.</param>
/// <param name="VisionProfile">The vision tower's per-op profile instead of the model and engine figures; after the kernels and layers when <paramref name="Kernels"/>.</param>
public sealed record BenchOptions(string? ModelDir = null, string Preset = "small", int Frames = 64, bool Kernels = true, bool Model = true,
    int Reps = 5, bool Torch = true, bool Quick = false, string? Only = null, MatMulPrecision Precision = MatMulPrecision.Float32,
    bool Engine = true, bool CompareBaseline = false, VisualDesign Design = VisualDesign.SlowFast, bool VisionProfile = false,
    bool QuantizedProducts = false, bool ComparePackedDecoder = false);

/// <summary>
/// The whole benchmark: machine limits, kernels (with PyTorch on the same shapes), layer-level
/// side-by-side with PyTorch (one Qwen2 decoder layer, ConvNeXt blocks) and the model figures.
/// Returns one JSON document (see <see cref="BenchReport"/> for its Markdown form); progress goes to
/// <c>log</c>.
/// </summary>
public static class BenchRunner
{
    public static JsonObject Run(BenchOptions o, TextWriter log)
    {
        var doc = new JsonObject { ["quick"] = o.Quick, ["reps"] = o.Reps };
        log.WriteLine("measuring the machine's FMA peak and read bandwidth");
        var limits = MachineLimits.Measure(o.Quick);
        log.WriteLine("  " + limits.Describe());
        doc["machine"] = limits.ToJson();
        var tempRoot = Directory.CreateTempSubdirectory("slowfast-bench-").FullName;
        var layers = new LayerCache(o.Precision);
        doc["precision"] = MatMul.EffectiveName(o.Precision);
        try
        {
            if (o.CompareBaseline)
            {
                log.WriteLine("slow-fast against the self-attention-only baseline: LLM prefill");
                doc["baseline_comparison"] = BaselineComparison.Run(Presets.Get(o.Preset), o.ModelDir ?? $"preset {o.Preset}", o.ModelDir,
                    Math.Min(o.Reps, o.Quick ? 1 : 3), layers, log);
                return doc;
            }
            if (o.ComparePackedDecoder)
            {
                string dir = o.ModelDir ?? TemporaryCheckpoint(o, tempRoot, log);
                log.WriteLine("the decoder as stored against packed at load: prefill and decoding");
                doc["packed_decoder"] = PackedDecoderBench.Run(dir, o.ModelDir ?? $"preset {o.Preset} (temporary checkpoint, random BF16 weights)",
                    o.Frames, o.Precision, o.Quick, log);
                return doc;
            }
            if (o.QuantizedProducts)
            {
                SlowFastConfig config;
                if (o.ModelDir == null) config = Presets.Get(o.Preset);
                else { using var model = ModelDirectory.Open(o.ModelDir); config = model.Config; }
                doc["quantized_products"] = QuantizedProductsBench.Run(config, limits, o.Quick ? 2 : Math.Max(o.Reps, 3), o.Quick ? 64 : 512, o.Precision, log);
                return doc;
            }
            if (o.VisionProfile)
            {
                // With Kernels, the kernels and layers first: both sections then stand against the same measured peak.
                if (o.Kernels) doc["kernels"] = RunKernels(o, limits, tempRoot, layers, log);
                SlowFastConfig config;
                if (o.ModelDir == null) config = Presets.Get(o.Preset);
                else { using var model = ModelDirectory.Open(o.ModelDir); config = model.Config; }
                doc["vision_profile"] = VisionProfileBench.Run(config, o.ModelDir, o.Quick ? 1 : Math.Min(o.Reps, 3), o.Precision, tempRoot, log);   // rounds of LastStageFrames frames
                return doc;
            }
            if (o.Kernels) doc["kernels"] = RunKernels(o, limits, tempRoot, layers, log);
            if (o.Model) doc["model"] = RunModel(o, limits, tempRoot, layers, log);
            if (o.Engine && RunEngine(o, tempRoot, log) is { } engine) doc["engine"] = engine;
        }
        finally
        {
            try { Directory.Delete(tempRoot, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        return doc;
    }

    private static JsonObject RunKernels(BenchOptions o, MachineLimits limits, string tempRoot, LayerCache layers, TextWriter log)
    {
        var shapes = (o.Quick ? KernelShapes.Quick : KernelShapes.Full)
            .Where(s => o.Only == null || s.Name.Contains(o.Only, StringComparison.OrdinalIgnoreCase)).ToList();
        log.WriteLine($"matrix products ({shapes.Count} shapes, {o.Reps} repetitions after a warm-up)");
        var result = new JsonObject { ["matmul"] = KernelSuite.RunMatMuls(shapes, limits, o.Reps, log) };
        if (o.Torch)
        {
            log.WriteLine("PyTorch on the same matrix products (same thread count)");
            var torchKernels = TorchRunner.Run("torch_kernels.py",
                ["--threads", limits.Threads.ToString(), "--reps", o.Reps.ToString(), "--shapes", string.Join(",", shapes.Select(s => s.Key).Distinct())], log);
            AttachMatMulRatios(result["matmul"]!.AsArray(), torchKernels);
            result["torch"] = new JsonObject { ["kernels"] = torchKernels };   // ["model"] joins it below
        }
        if (o.Only != null) return result;
        log.WriteLine("other kernels");
        result["other"] = KernelSuite.RunOthers(o.Reps, o.Quick, log);

        // Layers side by side with PyTorch: 7B shapes (Qwen2-0.5B / ConvNeXt-Base with --quick).
        var config = o.Quick ? Presets.Small() : Presets.SevenB();
        var prompt = o.Quick ? new PromptShape(20, 68, 40, 0) : PromptShape.ForFrames(config, 64) with { SlowTokens = 0 };
        int reps = Math.Min(o.Reps, o.Quick ? 2 : 3);
        log.WriteLine($"one decoder layer and ConvNeXt blocks ({(o.Quick ? "small" : "7b")} shapes)");
        var layer = layers.Get(config, hybrid: false, prompt, reps, o.Quick ? 4 : 16, log);
        var comparisons = new JsonArray();
        var layerRow = new JsonObject
        {
            ["name"] = $"decoder layer prefill {prompt.Positions} ({(o.Quick ? "small" : "7b")})",
            ["hidden"] = config.HiddenSize, ["positions"] = prompt.Positions, ["ours"] = layer.Prefill.ToJson(),
        };
        comparisons.Add(layerRow);
        if (o.Torch)
        {
            log.WriteLine("PyTorch on the same decoder layer (same thread count)");
            var torchLayer = TorchRunner.Run("torch_model.py", ["--threads", limits.Threads.ToString(), "--reps", reps.ToString(),
                "--layer", $"{config.HiddenSize},{config.NumAttentionHeads},{config.NumKeyValueHeads},{config.IntermediateSize},{prompt.Positions}"], log);
            AttachTorchTimes(layerRow, torchLayer?["decoder_layer"], "f32", "bf16");
            result["torch"]!["model"] = torchLayer?.DeepClone();
        }
        foreach (var row in CompareBlocks(o, limits, config.Vision, tempRoot, layers, log)) comparisons.Add(row);
        result["layers"] = comparisons;
        return result;
    }

    private static JsonObject RunModel(BenchOptions o, MachineLimits limits, string tempRoot, LayerCache layers, TextWriter log)
    {
        if (o.ModelDir != null)
        {
            log.WriteLine($"model {o.ModelDir}: {o.Frames} frames");
            return ModelBench.Checkpoint(o.ModelDir, o.ModelDir, o.Frames, limits, o.Reps, o.Quick, log, o.Precision, o.Design);
        }
        if (o.Preset.Equals("7b", StringComparison.OrdinalIgnoreCase))
        {
            var config = Presets.Get(o.Preset);
            log.WriteLine($"preset 7b: one plain and one hybrid decoder layer, lm_head and ConvNeXt stage blocks of the real shapes ({o.Frames} frames)");
            return ModelBench.SampledLayers(config, "preset 7b (sampled layers, random weights)", o.Frames, limits, o.Reps, o.Quick, tempRoot, layers, log, o.Design);
        }
        string dir = TemporaryCheckpoint(o, tempRoot, log);
        log.WriteLine($"model preset {o.Preset}: {o.Frames} frames");
        return ModelBench.Checkpoint(dir, $"preset {o.Preset} (temporary checkpoint, random BF16 weights)", o.Frames, limits, o.Reps, o.Quick, log, o.Precision, o.Design);
    }

    /// <summary>The engine's batching and prefix-reuse figures; they need a whole checkpoint (--model, or a tiny/small preset).</summary>
    private static JsonObject? RunEngine(BenchOptions o, string tempRoot, TextWriter log)
    {
        if (o.ModelDir == null && o.Preset.Equals("7b", StringComparison.OrdinalIgnoreCase))
        {
            log.WriteLine("engine: the 7b figures need a checkpoint: slowfast create-model --preset 7b --out DIR, then bench --model DIR");
            return null;
        }
        string dir = o.ModelDir ?? TemporaryCheckpoint(o, tempRoot, log);
        string source = o.ModelDir ?? $"preset {o.Preset} (temporary checkpoint, random BF16 weights)";
        log.WriteLine($"engine on {source}");
        return EngineBench.Run(dir, source, o.Frames, o.Precision, o.Quick, log);
    }

    /// <summary>A BF16 random-weight checkpoint of the preset, written once per run.</summary>
    private static string TemporaryCheckpoint(BenchOptions o, string tempRoot, TextWriter log)
    {
        string dir = Path.Combine(tempRoot, "preset-" + o.Preset);
        if (File.Exists(Path.Combine(dir, "config.json"))) return dir;
        log.WriteLine($"preset {o.Preset}: writing a temporary BF16 checkpoint with random weights");
        ModelCreator.Create(Presets.Get(o.Preset), new ModelCreator.Options(dir, Tensors.DType.BF16, 0, ConvNextStageBench.PlaceholderTokenizer(tempRoot)));
        return dir;
    }

    private static void AttachMatMulRatios(JsonArray rows, JsonNode? torch)
    {
        if (torch?["results"] is not JsonArray results) return;
        foreach (var row in rows)
        {
            var match = results.FirstOrDefault(e => (int)e!["m"]! == (int)row!["m"]! && (int)e["k"]! == (int)row["k"]! && (int)e["n"]! == (int)row["n"]!);
            if (match == null) continue;
            double ours = (double)row!["gflops"]!;
            foreach (var kind in new[] { "f32", "f32_mkldnn", "bf16" })
            {
                if (match[kind]?["gflops"] is not JsonValue v) continue;
                double theirs = v.GetValue<double>();
                row[$"torch_{kind}_gflops"] = theirs;
                row[$"ratio_vs_torch_{kind}"] = ours / theirs;
            }
        }
    }

    /// <summary>Rounds of the ConvNeXt blocks' comparison with PyTorch, and repetitions a side a round (the blocks take 0.1–1 s).</summary>
    private const int BlockRounds = 3, BlockReps = 5;

    /// <summary>
    /// The ConvNeXt blocks (stage 2's and stage 0's; stage 2's only with --quick) against PyTorch, in
    /// rounds that alternate the two sides (ours, then PyTorch, block by block), so that both meet the
    /// same moments of a shared machine: a row's ratio is the median of its rounds' ratios, each of one
    /// side's median against the other's right after it. PyTorch in float32 runs in the first round only
    /// (seconds a call at 144×144).
    /// </summary>
    private static List<JsonObject> CompareBlocks(BenchOptions o, MachineLimits limits, ConvNextConfig tower, string tempRoot, LayerCache layers, TextWriter log)
    {
        var stages = o.Quick ? new[] { 2 } : new[] { 2, 0 };
        int rounds = o.Quick || !o.Torch ? 1 : BlockRounds, reps = o.Quick ? 2 : Math.Max(o.Reps, BlockReps);
        var ours = stages.ToDictionary(s => s, _ => new List<Timing>());
        var theirs = stages.ToDictionary(s => s, _ => new List<JsonNode?>());
        var blocks = stages.ToDictionary(s => s, s => ConvNextStageBench.StageBlock.Open(tower, s, DType.BF16, tempRoot, layers.Precision));
        try
        {
            for (int round = 0; round < rounds; round++)
            {
                if (rounds > 1) log.WriteLine($"ConvNeXt blocks, round {round + 1} of {rounds}: ours, then PyTorch");
                foreach (int s in stages)
                {
                    int side = ConvNextStageBench.Side(tower, s);
                    var t = blocks[s].Measure(reps);
                    log.WriteLine($"  ConvNeXt stage {s} block {side}x{side}x{tower.Dims[s]} (with its stem): {t.Describe()}");
                    ours[s].Add(t);
                    if (!o.Torch) continue;
                    var torch = TorchRunner.Run("torch_model.py", ["--threads", limits.Threads.ToString(), "--reps", reps.ToString(),
                        "--stage", $"{side},{tower.Dims[s]}", "--precisions", round == 0 ? "f32,bf16" : "bf16"], log);
                    theirs[s].Add(torch?["convnext_blocks"]?[0]);
                }
            }
        }
        finally
        {
            foreach (var b in blocks.Values) b.Dispose();
        }

        var rows = new List<JsonObject>();
        foreach (int s in stages)
        {
            int side = ConvNextStageBench.Side(tower, s), dim = tower.Dims[s];
            var all = ours[s];
            var combined = new Timing(Timing.MedianOf(all.Select(t => t.Median)), all.Min(t => t.Min), all.Max(t => t.Max), all.Sum(t => t.Reps), Timing.MedianOf(all.Select(t => t.CpuMedian)));
            layers.RememberBlock(tower, s, combined);   // the model section's stage estimates reuse it
            var row = new JsonObject
            {
                ["name"] = $"convnext stem + block {side}x{side}x{dim}",
                ["side"] = side, ["dim"] = dim, ["ours"] = combined.ToJson(), ["rounds"] = all.Count,
                ["flops"] = ConvNextStageBench.BlockFlops(tower, s), ["product_flops"] = ConvNextStageBench.ProductFlops(tower, s),
            };
            if (MatMul.Effective(layers.Precision) == MatMulPrecision.BFloat16 && limits.Bf16PeakAll > 0) row["bf16_peak_gflops"] = limits.Bf16PeakAll;
            if (theirs[s].FirstOrDefault() is { } first) AttachTorchTimes(row, first, "f32");   // first round only; bf16 from all rounds below
            var paired = all.Zip(theirs[s]).Where(p => p.Second?["bf16"]?["median_s"] is JsonValue).Select(p => (Ours: p.First.Median, Torch: (double)p.Second!["bf16"]!["median_s"]!,
                Products: p.Second["bf16_products"]?["median_s"] is JsonValue v ? v.GetValue<double>() : double.NaN)).ToList();
            if (paired.Count > 0)
            {
                row["torch_bf16_s"] = Timing.MedianOf(paired.Select(p => p.Torch));
                row["ratio_vs_torch_bf16"] = Timing.MedianOf(paired.Select(p => p.Torch / p.Ours));
                row["ratios_vs_torch_bf16_by_round"] = new JsonArray(paired.Select(p => (JsonNode)JsonValue.Create(p.Torch / p.Ours)).ToArray());
                if (paired.All(p => !double.IsNaN(p.Products))) row["torch_bf16_products_s"] = Timing.MedianOf(paired.Select(p => p.Products));
            }
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>PyTorch's median seconds in each of <paramref name="kinds"/> (its precisions), and our speed against them (PyTorch's time / ours).</summary>
    private static void AttachTorchTimes(JsonObject row, JsonNode? theirs, params string[] kinds)
    {
        if (theirs == null) return;
        if (theirs.Root["glibc_tunables"] is JsonValue tunables) row["torch_glibc_tunables"] = tunables.DeepClone();
        double ours = (double)row["ours"]!["median_s"]!;
        foreach (var kind in kinds)
        {
            if (theirs[kind]?["median_s"] is not JsonValue v) continue;
            double t = v.GetValue<double>();
            row[$"torch_{kind}_s"] = t;
            row[$"ratio_vs_torch_{kind}"] = t / ours;
        }
    }
}
