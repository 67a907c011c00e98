using System.Text.Json;
using SlowFast.Benchmarks;
using SlowFast.Model;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast bench</c>: kernel, layer and model throughput on this machine, side by side with PyTorch.</summary>
public static class BenchCommand
{
    public static readonly CommandSpec Spec = new("bench",
        "Measure this machine's FMA peak and bandwidth, kernel throughput, and vision/prefill/decode speed; compare with PyTorch.",
        [
            new("model", "DIR|ID", ModelArgument.Description + "; without it, --preset's shapes"),
            new("preset", "NAME", "shapes without --model: tiny or small (a temporary checkpoint) or 7b (one plain and one hybrid layer, lm_head and ConvNeXt stage blocks)", "small"),
            new("frames", "N", "video frames for the vision figures and the prompt's visual tokens", "64"),
            new("kernels-only", null, "only the machine limits, kernels and layers"),
            new("model-only", null, "only the machine limits, the model and the engine"),
            new("engine-only", null, "only the machine limits and the engine: aggregate decoding with 1-8 sequences, a follow-up question's first token"),
            new("vision-profile", null, "only the machine limits and the vision tower's per-op profile (stage by stage, fused and unfused row work, % of the bf16 peak measured in the same run), then the tower with q8_0/q4_0 MLPs against BF16: time and the error of its output; with --kernels-only, the kernels and layers first, in the same run"),
            new("json", null, "print one JSON object on stdout instead of the table"),
            new("markdown", "FILE", "also write the results as Markdown here", "bench-results.md"),
            new("reps", "N", "timed repetitions after a warm-up", "5"),
            PrecisionOption.Spec with { Description = "arithmetic of the layers and the model figures: auto (bf16 where the CPU has AVX512-BF16, else f32), f32 or bf16 (see `ask --precision`); the matrix-product table always has both" },
            new("no-torch", null, "skip the PyTorch side (tools/bench/*.py with /usr/bin/python3)"),
            new("compare-baseline", null, "only the LLM prefill of the self-attention-only baseline at 16 frames against slow-fast at 16-128 frames with the released strides (s1t4, s1t6, s2t4): FLOPs and measured time as ratios"),
            DesignOption.Spec with { Description = "the model figures' prompt: slowfast (fast tokens in the sequence, slow tokens cross-attended) or baseline (every frame's tokens in the sequence, no cross-attention)" },
            new("quantized-products", null, "only the machine limits and the weight products of one decoder layer and lm_head as bf16, q8_0 and q4_0 (one row: decoding; 512 rows: prefill), with decode and prefill estimates, the read bandwidth they reach, decoding with each software-prefetch choice, and where the GEMM takes over from the row kernel"),
            new("compare-packed-decoder", null, "only the machine limits and the decoder as stored against packed at load (serve's default), in rounds alternating the two loads: a video question's prefill, a follow-up's, decoding with 1 and 8 sequences (bf16 arithmetic; --model, or a tiny/small preset's temporary checkpoint)"),
            new("quick", null, "smaller shapes and fewer repetitions: a smoke run, not figures to quote"),
            new("quality", null, "instead: compare the decoder quantized at load (--quantize) with the original on fixed prompts: per-layer relative error, KL divergence, greedy agreement (QualityBench)"),
            new("quantize", "q8,q4", "block formats --quality compares", "q8,q4"),
            new("steps", "N", "greedy steps per prompt for --quality", "32"),
        ],
        Run,
        Details: "Times are medians over --reps repetitions after a warm-up, with the spread and CPU-second figures (the machine may be shared). Progress goes to stderr.");

    private static int Run(ParsedArgs a)
    {
        bool kernelsOnly = a.Flag("kernels-only"), modelOnly = a.Flag("model-only"), engineOnly = a.Flag("engine-only");
        if ((kernelsOnly ? 1 : 0) + (modelOnly ? 1 : 0) + (engineOnly ? 1 : 0) > 1)
            throw new UsageError("bench: --kernels-only, --model-only and --engine-only exclude each other");
        bool profile = a.Flag("vision-profile");
        if (profile && (modelOnly || engineOnly))
            throw new UsageError("bench: --vision-profile runs alone or after --kernels-only, not with --model-only or --engine-only");
        string preset = a.Required("preset").ToLowerInvariant();
        if (!Presets.Names.Contains(preset)) throw new UsageError($"bench: --preset must be one of {string.Join(", ", Presets.Names)}, got '{preset}'");
        string? model = a.Has("model") && (!kernelsOnly || profile) ? ModelArgument.Resolve(a.Required("model")) : null;
        if (a.Flag("quality")) return QualityCommand.Run(a, model, preset);
        var options = new BenchOptions(
            ModelDir: model,
            Preset: preset,
            Frames: a.Int("frames", 1, 10_000),
            Kernels: profile ? kernelsOnly : !modelOnly && !engineOnly,
            Model: !kernelsOnly && !engineOnly,
            Engine: !kernelsOnly,
            Reps: a.Int("reps", 1, 1000),
            Torch: !a.Flag("no-torch"),
            Quick: a.Flag("quick"),
            Precision: PrecisionOption.Parse(a),
            CompareBaseline: a.Flag("compare-baseline"),
            Design: DesignOption.Parse(a),
            VisionProfile: profile,
            QuantizedProducts: a.Flag("quantized-products"),
            ComparePackedDecoder: a.Flag("compare-packed-decoder"));

        var doc = BenchRunner.Run(options, Console.Error);
        string markdown = BenchReport.ToMarkdown(doc, "slowfast bench " + string.Join(' ', Environment.GetCommandLineArgs().Skip(2)));
        string mdPath = a.Required("markdown");
        File.WriteAllText(mdPath, markdown);
        Console.Error.WriteLine($"wrote {mdPath}");
        Console.Out.Write(a.Flag("json") ? doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n" : markdown);
        return 0;
    }
}
