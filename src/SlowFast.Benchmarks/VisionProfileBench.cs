using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Quantization;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Benchmarks;

/// <summary>
/// Where the vision tower's time goes, op kind by op kind and stage by stage (<see cref="TowerProfile"/>),
/// with the projector, as GFLOP/s and as a share of the bfloat16 peak measured in the same run just
/// before and after. Without a checkpoint the tower is the preset's at its real resolution and widths
/// with one block per stage (a temporary checkpoint with random BF16 weights); the blocks' figures are
/// then multiplied by the stage depths, which is exact up to noise since every block of a stage has
/// the same shapes. Two settings alternate in one process: the defaults (row work fused into the
/// products, the last stage on <see cref="ConvNextTower.LastStageFrames"/> frames at once, MLP
/// products of at least <see cref="ConvNextTower.MinMlpRows"/> rows, the matrices packed once) and a baseline with the earlier settings (separate row passes, one frame at a time,
/// MLP chunks of <see cref="BaselineMlpHiddenFloats"/> floats, the matrices packed by every product), so their ratio is measured in the same minute. The projector runs on random weights of the preset's shapes, one frame's tokens
/// per call and several frames' at once.
/// </summary>
public static class VisionProfileBench
{
    /// <summary>The quantized-tower row of the int8 tower with GELU and the scaled residual as passes of their own.</summary>
    public const string Int8SeparatePasses = "int8 per channel, row work in separate passes";

    /// <summary>Frames per projector call in the batched measurement.</summary>
    public const int ProjectorBatchFrames = 8;

    /// <summary>The MLP chunk budget of the baseline (the default before the products took whole stages).</summary>
    public const int BaselineMlpHiddenFloats = 1 << 21;

    /// <param name="rounds">Rounds of <see cref="ConvNextTower.LastStageFrames"/> frames in each setting.</param>
    public static JsonObject Run(SlowFastConfig config, string? modelDir, int rounds, MatMulPrecision precision, string tempRoot, TextWriter log)
    {
        var tower = config.Vision;
        bool sampled = modelDir == null;
        string dir = modelDir ?? Path.Combine(tempRoot, "vision-profile");
        int[] sampledDepths = tower.Depths.Select(_ => 1).ToArray();
        if (sampled && !File.Exists(Path.Combine(dir, "config.json")))
        {
            log.WriteLine($"vision profile: writing a temporary checkpoint of the tower ({string.Join("/", tower.Dims)}, one block a stage, {tower.ImageSize} px)");
            var one = Presets.Tiny();
            one.MmVisionTower = "convnext-profile";
            one.Vision = new ConvNextConfig
            {
                Depths = sampledDepths, Dims = tower.Dims, ImageSize = tower.ImageSize, PatchSize = tower.PatchSize,
                KernelSize = tower.KernelSize, NormEps = tower.NormEps, NumClasses = 0,
            };
            one.MmHiddenSize = tower.HiddenSize;
            ModelCreator.Create(one, new ModelCreator.Options(dir, DType.BF16, 5, ConvNextStageBench.PlaceholderTokenizer(tempRoot)));
        }
        using var model = ModelDirectory.Open(dir);
        var t = new ConvNextTower(model) { Precision = precision };
        var tokens = new float[t.TokensPerFrame * t.Channels];
        int[] depthScale = sampled ? tower.Depths : tower.Depths.Select(_ => 1).ToArray();

        double peakBefore = MachineLimits.MeasureBf16Peak(2_000_000, 10, out double perCpuBefore);
        int group = t.LastStageFrames;
        var frameBatch = RandomData.Floats((long)group * t.FrameFloats, 1f, 41);
        var groupTokens = new float[group * tokens.Length];
        log.WriteLine($"vision profile: bf16 peak now {peakBefore:F1} GFLOP/s; {rounds} round(s) of {group} frames through the tower, " +
            "the defaults and the baseline settings alternately");
        // Baseline: the settings before the row work was fused and the last stage took several frames:
        // separate row passes, one frame at a time, MLP chunks of 2 Mi floats however few rows that is,
        // every product packing its weights. A tower of its own over the same checkpoint, so that neither
        // setting re-makes the other's buffers (first touches of fresh pages are slow on these VMs).
        var baseline = new ConvNextTower(model)
        {
            Precision = precision, FuseRowWork = false, MlpHiddenFloats = BaselineMlpHiddenFloats, MinMlpRows = 1, PackWeights = false,
        };
        void Defaults() => t.EncodeFrames(frameBatch, group, groupTokens);
        void OldWay() { for (int f = 0; f < group; f++) baseline.EncodeFrame(frameBatch.AsSpan(f * t.FrameFloats, t.FrameFloats), tokens); }
        Defaults();   // warm-up: code, buffers, the checkpoint's pages
        OldWay();
        var fused = new TowerProfile();
        var unfused = new TowerProfile();
        t.Profile = fused;
        baseline.Profile = unfused;
        for (int r = 0; r < rounds; r++)
        {
            Defaults();
            OldWay();
        }
        t.Profile = null;
        baseline.Profile = null;
        baseline.ReleaseBuffers();

        var projector = ProjectorProfile(config, t.TokensPerFrame, precision, Math.Max(2, rounds), log);
        var quantized = QuantizedTowers(t, dir, frameBatch, group, Math.Max(2, rounds), precision, tempRoot, log);
        var int8 = Int8Products(tower, Math.Max(3, 2 * rounds), log);
        double peakAfter = MachineLimits.MeasureBf16Peak(2_000_000, 10, out double perCpuAfter);
        double peak = Math.Max(peakBefore, peakAfter), peakPerCpu = Math.Max(perCpuBefore, perCpuAfter);
        log.WriteLine($"vision profile: bf16 peak after {peakAfter:F1} GFLOP/s");

        return new JsonObject
        {
            ["source"] = sampled ? $"tower of {tower.Dims.Length} stages {string.Join("/", tower.Dims)} at {tower.ImageSize} px, one block a stage (times × depth {string.Join("/", tower.Depths)}), random BF16 weights" : dir,
            ["precision"] = MatMul.EffectiveName(precision),
            ["frames"] = fused.Frames,
            ["last_stage_frames"] = group,
            ["bf16_peak_gflops_before"] = peakBefore,
            ["bf16_peak_gflops_after"] = peakAfter,
            ["bf16_peak_gflops"] = peak,
            ["bf16_peak_gflop_per_cpu_second"] = peakPerCpu,
            ["defaults"] = Cells(fused, depthScale, t.Config, projector, peak, peakPerCpu),
            ["baseline"] = Cells(unfused, depthScale, t.Config, projector, peak, peakPerCpu),
            ["projector"] = projector.Json,
            ["quantized"] = quantized,
            ["int8_products"] = int8,
        };
    }

    /// <summary>
    /// The tower with its blocks' MLP matrices quantized (<c>slowfast quantize --vision</c>, q8_0 and q4_0,
    /// the integer GEMM) against the same tower's BF16 weights on the same frames, in turn: time per
    /// frame and the relative error of the tower's output (what the projector receives). Off by default
    /// in the model: quantizing the tower changes its numbers, so only the user decides.
    /// </summary>
    private static JsonArray QuantizedTowers(ConvNextTower bf16, string dir, float[] frames, int group, int reps, MatMulPrecision precision, string tempRoot, TextWriter log)
    {
        var reference = new float[group * bf16.TokensPerFrame * bf16.Channels];
        var output = new float[reference.Length];
        bf16.EncodeFrames(frames, group, reference);
        var results = new JsonArray();
        void Compare(string name, ConvNextTower other)
        {
            other.EncodeFrames(frames, group, output);
            double diff = 0, norm = 0, maxAbs = 0;
            for (int i = 0; i < output.Length; i++)
            {
                double d = output[i] - reference[i];
                diff += d * d;
                norm += (double)reference[i] * reference[i];
                maxAbs = Math.Max(maxAbs, Math.Abs(d));
            }
            // In turn, so drift on a shared machine touches both alike.
            var bf16Times = new List<double>();
            var otherTimes = new List<double>();
            for (int r = 0; r < reps; r++)
            {
                bf16Times.Add(Timing.Measure(() => bf16.EncodeFrames(frames, group, reference), 1, warmups: 0).Median);
                otherTimes.Add(Timing.Measure(() => other.EncodeFrames(frames, group, output), 1, warmups: 0).Median);
            }
            double tb = Timing.MedianOf(bf16Times) / group, to = Timing.MedianOf(otherTimes) / group;
            log.WriteLine($"  tower with {name} MLPs: {to * 1e3:F1} ms a frame against {tb * 1e3:F1} (bf16), relative error of its output {Math.Sqrt(diff / norm):G3}");
            results.Add(new JsonObject
            {
                ["format"] = name,
                ["seconds_per_frame"] = to,
                ["bf16_seconds_per_frame"] = tb,
                ["speedup"] = tb / to,
                ["relative_error"] = Math.Sqrt(diff / norm),
                ["max_abs_error"] = maxAbs,
            });
        }
        foreach (var format in new[] { BlockFormat.Q8_0, BlockFormat.Q4_0 })
        {
            string qdir = Path.Combine(tempRoot, $"vision-profile-{format.Name()}");
            if (!File.Exists(Path.Combine(qdir, "config.json"))) CheckpointQuantizer.Run(dir, qdir, format, includeVision: true);
            using var qmodel = ModelDirectory.Open(qdir);
            Compare(format.Name(), new ConvNextTower(qmodel) { Precision = precision });
        }
        if (MatMul.Int8ChannelsSupported)
        {
            // The same checkpoint, its MLP matrices quantized per channel when the tower starts (ConvNextTower.MlpInt8).
            using var model = ModelDirectory.Open(dir);
            var int8 = new ConvNextTower(model) { Precision = precision, MlpInt8 = true };
            Compare("int8 per channel", int8);
            int8.ReleaseBuffers();
            // The same, GELU and the scaled residual as passes of their own: what fusing them into the int8 tiles buys.
            var separate = new ConvNextTower(model) { Precision = precision, MlpInt8 = true, FuseRowWork = false };
            Compare(Int8SeparatePasses, separate);
            separate.ReleaseBuffers();
        }
        return results;
    }

    /// <summary>
    /// Each stage's two MLP products at one frame's rows, with the same random BF16 weights, in bf16
    /// arithmetic (packed, as the tower runs them) and in int8 with one scale per input row and per
    /// output channel (<see cref="MatMul.LinearInt8"/>), in turn: what int8 would buy the tower's
    /// products, and the relative error of its output against bf16's. Empty without AVX512-VNNI.
    /// </summary>
    private static JsonArray Int8Products(ConvNextConfig tower, int reps, TextWriter log)
    {
        var results = new JsonArray();
        if (!MatMul.Int8ChannelsSupported || !MatMul.BFloat16Supported)
        {
            log.WriteLine("  int8 products: skipped (needs AVX512-VNNI and AVX512-BF16)");
            return results;
        }
        for (int s = 0; s < tower.Dims.Length; s++)
        {
            int side = tower.ImageSize / tower.PatchSize >> s, rows = side * side, dim = tower.Dims[s];
            foreach (var (name, k, n) in new[] { ("fc1", dim, 4 * dim), ("fc2", 4 * dim, dim) })
            {
                var w = RandomData.Matrix(n, k, DType.BF16, (ulong)(80 + 2 * s + (name == "fc2" ? 1 : 0)));
                var packed = MatMul.PackForBFloat16(w);
                var q = Int8ChannelWeights.Quantize(w);
                var x = RandomData.Floats((long)rows * k, 1f, (ulong)(90 + s));
                var bias = RandomData.Floats(n, 0.1f, 95);
                var yBf16 = new float[(long)rows * n];
                var yInt8 = new float[yBf16.Length];
                MatMul.Linear(x, rows, packed, bias, yBf16, MatMulPrecision.BFloat16);   // warm-up: code, pages
                MatMul.LinearInt8(x, rows, q, bias, yInt8);
                var bf16Times = new List<double>();
                var int8Times = new List<double>();
                for (int r = 0; r < reps; r++)   // in turn, so drift on a shared machine touches both alike
                {
                    bf16Times.Add(Timing.Measure(() => MatMul.Linear(x, rows, packed, bias, yBf16, MatMulPrecision.BFloat16), 1, warmups: 0).Median);
                    int8Times.Add(Timing.Measure(() => MatMul.LinearInt8(x, rows, q, bias, yInt8), 1, warmups: 0).Median);
                }
                double diff = 0, norm = 0;
                for (long i = 0; i < yBf16.Length; i++) { double d = yInt8[i] - yBf16[i]; diff += d * d; norm += (double)yBf16[i] * yBf16[i]; }
                double tb = Timing.MedianOf(bf16Times), ti = Timing.MedianOf(int8Times), ops = 2.0 * rows * k * n;
                log.WriteLine($"  stage {s} {name} {rows}x{k}x{n}: int8 {ti * 1e3:F1} ms ({ops / ti / 1e9:F0} GOP/s) against bf16 {tb * 1e3:F1} ms: {tb / ti:F2}x, relative error {Math.Sqrt(diff / norm):G3}");
                results.Add(new JsonObject
                {
                    ["stage"] = s, ["product"] = name, ["m"] = rows, ["k"] = k, ["n"] = n,
                    ["bf16_seconds"] = tb, ["int8_seconds"] = ti, ["speedup"] = tb / ti,
                    ["bf16_gflops"] = ops / tb / 1e9, ["int8_gops"] = ops / ti / 1e9,
                    ["relative_error"] = Math.Sqrt(diff / norm),
                });
                GC.KeepAlive(packed);
            }
        }
        return results;
    }

    /// <summary>Per-frame cells (times scaled by depth for block ops), the projector's row, and totals; shares of the peak on both clocks.</summary>
    private static JsonObject Cells(TowerProfile p, int[] depthScale, ConvNextConfig tower, (double Seconds, double CpuSeconds, double Flops, JsonObject Json) projector,
        double peak, double peakPerCpu)
    {
        var rows = new JsonArray();
        double seconds = 0, cpu = 0, flops = 0;
        bool IsBlockOp(string op) => op is not (TowerProfile.Stem or TowerProfile.Downsample or TowerProfile.CopyOut);
        var cells = p.Entries.Select(e =>
        {
            double scale = (IsBlockOp(e.Op) ? depthScale[e.Stage] : 1) / (double)p.Frames;
            return (e.Stage, e.Op, Seconds: e.Seconds * scale, CpuSeconds: e.CpuSeconds * scale, Flops: e.Flops * scale);
        }).Append((Stage: tower.Dims.Length, Op: TowerProfile.Projector, projector.Seconds, projector.CpuSeconds, projector.Flops)).ToList();
        foreach (var c in cells) { seconds += c.Seconds; cpu += c.CpuSeconds; flops += c.Flops; }
        foreach (var c in cells)
        {
            double gflops = c.Flops / c.Seconds / 1e9, perCpu = c.Flops / c.CpuSeconds / 1e9;
            rows.Add(new JsonObject
            {
                ["stage"] = c.Stage < tower.Dims.Length ? c.Stage.ToString() : "projector",
                ["op"] = c.Op,
                ["seconds_per_frame"] = c.Seconds,
                ["cpu_seconds_per_frame"] = c.CpuSeconds,
                ["share"] = c.Seconds / seconds,
                ["cpu_share"] = c.CpuSeconds / cpu,
                ["gflops"] = c.Flops > 0 ? gflops : null,
                ["pct_bf16_peak"] = c.Flops > 0 && peak > 0 ? 100 * gflops / peak : null,
                ["gflop_per_cpu_second"] = c.Flops > 0 && c.CpuSeconds > 0 ? perCpu : null,
                ["pct_bf16_peak_per_cpu_second"] = c.Flops > 0 && c.CpuSeconds > 0 && peakPerCpu > 0 ? 100 * perCpu / peakPerCpu : null,
            });
        }
        double total = flops / seconds / 1e9, totalPerCpu = flops / cpu / 1e9;
        return new JsonObject
        {
            ["ops"] = rows,
            ["seconds_per_frame"] = seconds,
            ["cpu_seconds_per_frame"] = cpu,
            ["gflop_per_frame"] = flops / 1e9,
            ["gflops"] = total,
            ["pct_bf16_peak"] = peak > 0 ? 100 * total / peak : null,
            ["gflop_per_cpu_second"] = totalPerCpu,
            ["pct_bf16_peak_per_cpu_second"] = peakPerCpu > 0 ? 100 * totalPerCpu / peakPerCpu : null,
        };
    }

    /// <summary>
    /// The projector (Linear, then GELU + Linear per further layer) on random weights of the config's
    /// shapes: one frame's tokens per call, then <see cref="ProjectorBatchFrames"/> frames' at once.
    /// Returns the per-frame cost of one frame a call, the form the vision encoder runs (frames stream
    /// through it one at a time).
    /// </summary>
    private static (double Seconds, double CpuSeconds, double Flops, JsonObject Json) ProjectorProfile(SlowFastConfig config, int tokensPerFrame, MatMulPrecision precision, int reps, TextWriter log)
    {
        int input = config.MmHiddenSize ?? config.Vision.HiddenSize, hidden = config.HiddenSize;
        int depth = config.MmProjectorType == "linear" ? 1 : config.ProjectorDepth;
        var layers = Enumerable.Range(0, depth).Select(i => (W: RandomData.Matrix(hidden, i == 0 ? input : hidden, DType.BF16, (ulong)(50 + i)), B: RandomData.Floats(hidden, 0.1f, (ulong)(60 + i)))).ToArray();
        double flopsPerToken = layers.Sum(l => 2.0 * l.W.Rows * l.W.Cols);
        var json = new JsonObject { ["layers"] = depth, ["input"] = input, ["hidden"] = hidden };
        double perFrame = 0, cpuPerFrame = 0;
        foreach (int framesPerCall in new[] { 1, ProjectorBatchFrames })
        {
            int rows = tokensPerFrame * framesPerCall;
            var x = RandomData.Floats((long)rows * input, 1f, 70);
            var a = new float[rows * hidden];
            var b = new float[rows * hidden];
            var timing = Timing.Measure(() =>
            {
                MatMul.Linear(x, rows, layers[0].W, layers[0].B, a, precision);
                for (int i = 1; i < layers.Length; i++)
                {
                    Activations.Gelu(a);
                    MatMul.Linear(a, rows, layers[i].W, layers[i].B, b, precision);
                    (a, b) = (b, a);
                }
            }, reps);
            double gflops = flopsPerToken * rows / timing.Median / 1e9;
            log.WriteLine($"  projector, {framesPerCall} frame(s) a call ({rows} rows): {timing.Median * 1e3:F1} ms, {gflops:F1} GFLOP/s");
            json[$"frames_{framesPerCall}"] = new JsonObject
            {
                ["rows"] = rows, ["timing"] = timing.ToJson(), ["gflops"] = gflops,
                ["gflop_per_cpu_second"] = flopsPerToken * rows / timing.CpuMedian / 1e9,
            };
            if (framesPerCall == 1) (perFrame, cpuPerFrame) = (timing.Median, timing.CpuMedian);
        }
        return (perFrame, cpuPerFrame, flopsPerToken * tokensPerFrame, json);
    }
}
