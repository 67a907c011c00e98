using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace SlowFast.Benchmarks;

/// <summary>The Markdown form of a <see cref="BenchRunner"/> document: one table per section.</summary>
public static class BenchReport
{
    public static string ToMarkdown(JsonObject doc, string? command = null)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# SlowFast.NET benchmark").AppendLine();
        if (command != null) sb.AppendLine($"Command: `{command}`").AppendLine();
        sb.AppendLine($"Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC. Times are medians over the repetitions after a warm-up; " +
            "\"spread\" is (max − min) / median; \"cpu\" figures divide the work by the process's CPU seconds, which stays meaningful on a busy machine.").AppendLine();
        if (doc["precision"] is JsonValue arithmetic)
            sb.AppendLine($"Layers and model in {((string)arithmetic! == "bf16" ? "bf16 arithmetic (activations rounded to bfloat16 before each product, AVX512-BF16)" : "float32 arithmetic (BF16 weights widened exactly)")}.").AppendLine();

        if (doc["machine"] is JsonObject m)
        {
            sb.AppendLine("## Machine").AppendLine();
            Table(sb, ["threads", "load average", "FMA peak, 1 core (GFLOP/s)", "FMA peak, all threads (GFLOP/s)", "GFLOP per CPU-second", "read bandwidth (GB/s)",
                    "vdpbf16ps peak, all threads (GFLOP/s)", "bf16 tiles", "bf16 peak, all threads (GFLOP/s)"],
                [[S(m["threads"]), S(m["load_average"]), F(m["fma_peak_gflops_one_core"]), F(m["fma_peak_gflops_all"]), F(m["fma_peak_gflop_per_cpu_second"]), F(m["read_bandwidth_gb_s"]),
                    D(m["vdpbf16ps_peak_gflops_all"]) > 0 ? F(m["vdpbf16ps_peak_gflops_all"]) : "none",
                    m["bf16_tiles"] is JsonValue tiles && (string)tiles! != "" ? (string)tiles! : "none",
                    D(m["bf16_peak_gflops_all"]) > 0 ? F(m["bf16_peak_gflops_all"]) : "none"]]);
            sb.AppendLine("The bf16 peak is a loop of the instruction the bfloat16 tiles run here; every \"% bf16 peak\" below is against it.").AppendLine();
        }

        if (doc["baseline_comparison"] is JsonObject comparison) sb.Append(BaselineComparison.ToMarkdown(comparison));
        if (doc["packed_decoder"] is JsonObject packed) sb.Append(PackedDecoderBench.ToMarkdown(packed));
        if (doc["quantized_products"] is JsonObject quantized) sb.Append(QuantizedProductsBench.ToMarkdown(quantized));

        if (doc["kernels"] is JsonObject k)
        {
            sb.AppendLine("## Matrix products (y = x·Wᵀ)").AppendLine();
            var rows = k["matmul"]!.AsArray().Select(r => new[]
            {
                S(r!["name"]), Ms(r["median_s"]), Pct(r["spread"]), F(r["gflops"]), F(r["pct_fma_peak"]), F(r["pct_core_peak_per_cpu_second"]),
                r["pct_bandwidth_bound"] is { } bw ? F(bw) : "", r["pct_of_plain_read"] is { } pr ? F(pr) : "",
                R(r["ratio_vs_torch_f32"]), R(r["ratio_vs_torch_f32_mkldnn"]), R(r["ratio_vs_torch_bf16"]),
            }).ToList();
            Table(sb, ["shape (MxKxN, weights)", "median ms", "spread", "GFLOP/s", "% FMA peak", "% core peak per CPU-s", "% bandwidth bound", "% of a plain read",
                "× torch f32", "× torch f32 oneDNN", "× torch bf16"], rows);
            sb.AppendLine("\"% bandwidth bound\": weight bytes over the machine's best measured read bandwidth; \"% of a plain read\": the")
              .AppendLine("time to just read the same bytes, measured right after the product (this machine's bandwidth drifts with other tenants).").AppendLine();
            sb.AppendLine("Rows named \"bf16 math\" round the activations to bfloat16 and multiply on the CPU's bfloat16 dot-product")
              .AppendLine("instruction (AVX512-BF16 vdpbf16ps, two multiply-adds per lane), as PyTorch's bf16 matmul does: where it runs at")
              .AppendLine("twice the float32 FMA's flops, up to 200% in the \"% FMA peak\" column. Where it runs slower than the FMA, the tiles")
              .AppendLine("use FMAs on the operands widened to float32 instead (the same sums; see the machine table's bf16 tiles).").AppendLine();
            if (k["other"] is JsonArray other)
            {
                sb.AppendLine("## Other kernels").AppendLine();
                Table(sb, ["kernel", "median ms", "spread", "GFLOP/s"], other.Select(r => new[] { S(r!["name"]), Ms(r["median_s"]), Pct(r["spread"]), F(r["gflops"]) }).ToList());
            }
            if (k["layers"] is JsonArray layers)
            {
                sb.AppendLine("## Layers side by side with PyTorch (same shapes, same thread count)").AppendLine();
                sb.AppendLine("PyTorch f32: BF16 weight values in float32, products through oneDNN; bf16: everything in bfloat16. Ratio = our speed / PyTorch's. " +
                    "The ConvNeXt blocks are timed in rounds alternating the two sides; their times are the medians of the rounds' medians, their bf16 ratio the median of the rounds' ratios.").AppendLine();
                if (layers.Select(r => r!["torch_glibc_tunables"]).FirstOrDefault(t => t != null) is { } tunables)
                    sb.AppendLine($"PyTorch ran with `GLIBC_TUNABLES={S(tunables)}`: glibc's malloc keeps freed memory for the next call, as a caching allocator would " +
                        "(with the defaults every call faults in fresh pages for its large tensors; see `TorchRunner.MallocTunables`).").AppendLine();
                Table(sb, ["work", "ours median ms", "spread", "torch f32 ms", "torch bf16 ms", "× torch f32", "× torch bf16"],
                    layers.Select(r => new[]
                    {
                        S(r!["name"]), Ms(r["ours"]!["median_s"]), Pct(r["ours"]!["spread"]),
                        r["torch_f32_s"] is { } a ? Ms(a) : "", r["torch_bf16_s"] is { } b ? Ms(b) : "", R(r["ratio_vs_torch_f32"]), R(r["ratio_vs_torch_bf16"]),
                    }).ToList());
                var blocks = layers.Where(r => r!["bf16_peak_gflops"] != null && r["torch_bf16_products_s"] != null).ToList();
                if (blocks.Count > 0)
                {
                    sb.AppendLine("ConvNeXt blocks against the bf16 peak measured in this run: the share of it each side's time reaches on the block's work " +
                        "(stem, depthwise conv, two products), PyTorch's two products timed alone, and the share our whole block would need to run " +
                        "1.5× PyTorch's block (above what a bare product reaches, the ratio is out of reach).").AppendLine();
                    Table(sb, ["block", "× torch bf16 by round", "ours, % bf16 peak", "torch bf16 block, % bf16 peak", "torch products alone ms", "torch products alone, % bf16 peak", "needed for 1.5× torch bf16, % bf16 peak"],
                        blocks.Select(r =>
                        {
                            double peak = D(r!["bf16_peak_gflops"]) * 1e9, flops = D(r["flops"]), products = D(r["torch_bf16_products_s"]), torch = D(r["torch_bf16_s"]);
                            return new[]
                            {
                                S(r["name"]), r["ratios_vs_torch_bf16_by_round"] is JsonArray byRound ? string.Join(", ", byRound.Select(R)) : "",
                                $"{100 * flops / D(r["ours"]!["median_s"]) / peak:F1}", $"{100 * flops / torch / peak:F1}",
                                Ms(r["torch_bf16_products_s"]), $"{100 * D(r["product_flops"]) / products / peak:F1}", $"{100 * flops / (torch / 1.5) / peak:F1}",
                            };
                        }).ToList());
                }
            }
        }

        if (doc["vision_profile"] is JsonObject vp) VisionProfile(sb, vp);

        if (doc["model"] is JsonObject model)
        {
            sb.AppendLine($"## Model: {S(model["source"])}, {S(model["frames"])} frames").AppendLine();
            var p = model["prompt"]!;
            sb.AppendLine($"Prompt: {S(p["positions"])} positions ({S(p["text_tokens"])} text + {S(p["fast_tokens"])} fast visual tokens), {S(p["slow_tokens"])} slow tokens cross-attended." +
                (model["mode"]?.ToString() == "sampled-layers" ? " Whole-model figures are sums of the per-layer / per-stage measurements (estimated)." : "")).AppendLine();
            var v = model["vision"]!; var pf = model["prefill"]!; var d = model["decode"]!;
            Table(sb, ["part", "median", "spread", "throughput", "per CPU-second", "note"],
            [
                ["vision tower + projector", Sec(v["median_s"]) + $" / {S(v["frames_per_call"])} frame(s)", Pct(v["spread"]), F(v["frames_per_s"], "F3") + " frames/s", F(v["frames_per_cpu_s"], "F3") + " frames",
                    $"{S(model["frames"])} frames: {F(v["seconds_for_frames"], "F1")} s"],
                ["prefill", Sec(pf["median_s"]), Pct(pf["spread"]), F(pf["tokens_per_s"]) + " tokens/s", F(pf["tokens_per_cpu_s"]) + " tokens", $"{S(pf["positions"])} positions"],
                ["decode", Ms(d["median_s"]) + " ms / token", Pct(d["spread"]), F(d["tokens_per_s"], "F2") + " tokens/s", F(d["tokens_per_cpu_s"], "F2") + " tokens",
                    $"{F(d["pct_bandwidth_bound"])}% of the bandwidth bound ({D(d["weight_bytes_per_token"]) / 1e9:F2} GB of weights a token, bound {F(d["bandwidth_bound_tokens_per_s"], "F2")} tokens/s)"],
            ]);
            if (model["layers"] is JsonArray ls)
                Table(sb, ["layer", "count", "prefill median", "decode median ms"], ls.Select(l => new[] { S(l!["name"]), S(l["count"]), Sec(l["prefill"]!["median_s"]), Ms(l["decode"]!["median_s"]) }).ToList());
            if (model["convnext_stages"] is JsonArray st)
                Table(sb, ["stage", "map", "depth", "block (with stem) median", "downsample median", "stage total"],
                    st.Select(s => new[] { S(s!["stage"]), $"{S(s["side"])}x{S(s["side"])}x{S(s["dim"])}", S(s["depth"]), Sec(s["block"]!["median_s"]),
                        s["downsample"] is { } ds ? Sec(ds["median_s"]) : "", Sec(s["stage_s"]) }).ToList());
            if (model["peak_working_set_bytes"] is { } peak) sb.AppendLine($"Peak working set of the benchmark process: {D(peak) / 1e9:F2} GB.").AppendLine();
        }
        if (doc["engine"] is JsonObject engine)
        {
            sb.AppendLine($"## Engine: {S(engine["source"])}, {S(engine["precision"])} arithmetic" + (engine["decoder"] is { } d ? $", decoder {S(d)}" : "")).AppendLine();
            sb.AppendLine("Aggregate decoding speed with several sequences decoding together (steps with no prompt chunk in the batch):").AppendLine();
            Table(sb, ["sequences", "tokens/s together", "× one sequence", "ms a step", "steps timed"],
                (engine["decoding"] as JsonArray ?? []).Select(r => new[]
                {
                    S(r!["sequences"]), F(r["tokens_per_s"], "F2"), R(r["speedup_vs_one"]),
                    F(D(r["decode_s"]) * 1e3 / D(r["decode_steps"]), "F0"), S(r["decode_steps"]),
                }).ToList());
            sb.AppendLine($"Peak working set after decoding with up to 8 sequences: {D(engine["peak_working_set_bytes_after_decoding"]) / 1e9:F2} GB " +
                (S(engine["decoder"]) == "packed at load" ? "(the decoder's packed matrices included)." : "(the memory-mapped weights count as they are touched).")).AppendLine();
            if (engine["follow_up"] is JsonObject f)
                sb.AppendLine($"Follow-up question about {S(f["frames"])} frames: the first question's prefill took {Sec(f["first_prefill_s"])} " +
                    $"({S(f["first_prompt_positions"])} positions); the follow-up ({S(f["follow_up_prompt_positions"])} positions, " +
                    $"{S(f["follow_up_reused_positions"])} reused) had its first token after {Sec(f["follow_up_first_token_s"])}, " +
                    $"{100 * D(f["ratio"]):F1}% of that prefill.").AppendLine();
            if (engine["video_cache"] is JsonObject c)
                sb.AppendLine($"A question about a {S(c["frames"])}-frame video file spent {Sec(c["first_decode_s"])} decoding and {Sec(c["first_vision_s"])} in the vision tower " +
                    $"({Sec(c["first_total_s"])} before prefill); a second question about the same file found its tokens in the video cache ({S(c["second_source"])}): " +
                    $"vision 0 s, {Sec(c["second_total_s"])} before prefill.").AppendLine();
        }
        return sb.ToString();
    }

    private static void VisionProfile(StringBuilder sb, JsonObject vp)
    {
        sb.AppendLine($"## Vision tower profile: {S(vp["source"])}, {S(vp["precision"])} arithmetic, {S(vp["frames"])} frame(s) in each setting").AppendLine();
        sb.AppendLine($"bf16 peak (a loop of the bfloat16 tiles' instruction on all threads) measured before and after: {F(vp["bf16_peak_gflops_before"])} and {F(vp["bf16_peak_gflops_after"])} GFLOP/s " +
            $"(shares use the higher); per process CPU-second (one core's peak, whatever share of the machine this process got): {F(vp["bf16_peak_gflop_per_cpu_second"])} GFLOP. " +
            "Times are per frame. On a shared machine the wall figures say how much of the machine the run got; the CPU-second figures how well it used it.").AppendLine();
        if (vp["defaults"] is JsonObject d0 && vp["baseline"] is JsonObject b0)
            sb.AppendLine($"Defaults against the baseline, alternating in this run: {R(JsonValue.Create(D(b0["seconds_per_frame"]) / D(d0["seconds_per_frame"])))} the frames per second, " +
                $"{R(JsonValue.Create(D(b0["cpu_seconds_per_frame"]) / D(d0["cpu_seconds_per_frame"])))} the frames per CPU-second.").AppendLine();
        foreach (var kind in new[] { "defaults", "baseline" })
        {
            if (vp[kind] is not JsonObject p) continue;
            sb.AppendLine($"### {(kind == "defaults" ? $"Defaults: row work fused into the products, the last stage on {S(vp["last_stage_frames"])} frames at once, MLP products of whole maps up to 16 Mi hidden floats (512+ rows), the matrices packed once" : "Baseline: separate row passes, one frame at a time, MLP chunks of 2 Mi floats however few rows, the matrices packed by every product")}").AppendLine();
            sb.AppendLine($"Whole tower + projector: {Sec(p["seconds_per_frame"])} a frame ({Sec(p["cpu_seconds_per_frame"])} CPU), {F(p["gflop_per_frame"])} GFLOP: " +
                $"{F(p["gflops"])} GFLOP/s, **{F(p["pct_bf16_peak"])}% of the bf16 peak**; {F(p["gflop_per_cpu_second"])} GFLOP per CPU-second, " +
                $"**{F(p["pct_bf16_peak_per_cpu_second"])}% of the bf16 peak per CPU-second**.").AppendLine();
            Table(sb, ["stage", "op", "ms / frame", "share", "CPU ms / frame", "CPU share", "GFLOP/s", "% bf16 peak", "GFLOP / CPU-s", "% bf16 peak per CPU-s"],
                (p["ops"] as JsonArray ?? []).Select(r => new[]
                {
                    S(r!["stage"]), S(r["op"]), Ms(r["seconds_per_frame"]), Pct(r["share"]), Ms(r["cpu_seconds_per_frame"]), Pct(r["cpu_share"]),
                    F(r["gflops"]), F(r["pct_bf16_peak"]), F(r["gflop_per_cpu_second"]), F(r["pct_bf16_peak_per_cpu_second"]),
                }).ToList());
        }
        if (vp["projector"] is JsonObject pr)
        {
            string batched = $"frames_{VisionProfileBench.ProjectorBatchFrames}";
            sb.AppendLine($"Projector ({S(pr["layers"])} layers, {S(pr["input"])}→{S(pr["hidden"])}): " +
                $"one frame a call ({S(pr["frames_1"]?["rows"])} rows) {F(pr["frames_1"]?["gflops"])} GFLOP/s, {F(pr["frames_1"]?["gflop_per_cpu_second"])} GFLOP per CPU-second; " +
                $"{VisionProfileBench.ProjectorBatchFrames} frames a call ({S(pr[batched]?["rows"])} rows) " +
                $"{F(pr[batched]?["gflops"])} GFLOP/s, {F(pr[batched]?["gflop_per_cpu_second"])} GFLOP per CPU-second.").AppendLine();
        }
        if (vp["quantized"] is JsonArray q && q.Count > 0)
        {
            sb.AppendLine("Quantized tower (optional, off by default: `slowfast quantize --vision` for q8_0/q4_0; `ConvNextTower.MlpInt8` for int8 with one scale per row and per channel): " +
                "the blocks' MLP matrices in integers through the VNNI kernels, against the same BF16 weights on the same frames, in turn; error of the tower's output (what the projector receives):").AppendLine();
            Table(sb, ["MLP weights", "ms / frame", "bf16 ms / frame", "× bf16", "relative error", "max abs error"],
                q.Select(r => new[] { S(r!["format"]), Ms(r["seconds_per_frame"]), Ms(r["bf16_seconds_per_frame"]), R(r["speedup"]), F(r["relative_error"], "G3"), F(r["max_abs_error"], "G3") }).ToList());
        }
        if (vp["int8_products"] is JsonArray i8 && i8.Count > 0)
        {
            sb.AppendLine("The MLP products alone in int8 with one scale per input row and per output channel (`MatMul.LinearInt8`, VNNI, as `ConvNextTower.MlpInt8` runs them), " +
                "one frame's rows, against bf16 arithmetic on the same BF16 weights (packed, as the tower runs them), in turn; error of the int8 output against bf16's:").AppendLine();
            Table(sb, ["stage", "product", "MxKxN", "bf16 ms", "int8 ms", "× bf16", "bf16 GFLOP/s", "int8 GOP/s", "relative error"],
                i8.Select(r => new[] { S(r!["stage"]), S(r["product"]), $"{S(r["m"])}x{S(r["k"])}x{S(r["n"])}", Ms(r["bf16_seconds"]), Ms(r["int8_seconds"]),
                    R(r["speedup"]), F(r["bf16_gflops"]), F(r["int8_gops"]), F(r["relative_error"], "G3") }).ToList());
        }
    }

    private static string F(double d, string format) => double.IsNaN(d) || double.IsInfinity(d) ? "" : d.ToString(format, CultureInfo.InvariantCulture);

    private static void Table(StringBuilder sb, string[] header, IReadOnlyList<string[]> rows)
    {
        sb.AppendLine("| " + string.Join(" | ", header) + " |");
        sb.AppendLine("|" + string.Concat(header.Select(_ => "---|")));
        foreach (var r in rows) sb.AppendLine("| " + string.Join(" | ", r) + " |");
        sb.AppendLine();
    }

    private static string S(JsonNode? n) => n?.ToString() ?? "";
    /// <summary>A JSON number of any stored type (int, long, double) as a double; NaN when absent.</summary>
    private static double D(JsonNode? n) => n is JsonValue v && double.TryParse(v.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : double.NaN;
    private static string F(JsonNode? n, string format = "F1") => D(n) is var d && !double.IsNaN(d) ? d.ToString(format, CultureInfo.InvariantCulture) : "";
    private static string Ms(JsonNode? n) => D(n) is var d && !double.IsNaN(d) ? (d * 1e3).ToString(d < 0.01 ? "F3" : "F1", CultureInfo.InvariantCulture) : "";
    private static string Sec(JsonNode? n) => D(n) is var d && !double.IsNaN(d) ? (d >= 1 ? d.ToString("F2", CultureInfo.InvariantCulture) + " s" : (d * 1e3).ToString("F1", CultureInfo.InvariantCulture) + " ms") : "";
    private static string Pct(JsonNode? n) => D(n) is var d && !double.IsNaN(d) ? (100 * d).ToString("F0", CultureInfo.InvariantCulture) + "%" : "";
    private static string R(JsonNode? n) => D(n) is var d && !double.IsNaN(d) ? d.ToString("F2", CultureInfo.InvariantCulture) + "×" : "";
}
