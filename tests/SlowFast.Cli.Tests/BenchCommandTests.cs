using System.Text.Json.Nodes;

namespace SlowFast.Cli.Tests;

/// <summary>
/// `slowfast bench` as a smoke run: every section is present and every figure is a positive number,
/// and the Markdown report is written. No timing thresholds: speed is for the benchmark to report.
/// </summary>
public class BenchCommandTests
{
    [Fact]
    public void CompareBaselineCountsAndTimesEveryReleasedStride()
    {
        string dir = Directory.CreateTempSubdirectory("sf-bench-").FullName;
        try
        {
            string md = Path.Combine(dir, "compare.md");
            var r = SlowfastProcess.Run("bench", "--preset", "tiny", "--compare-baseline", "--quick", "--json", "--markdown", md);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var comparison = JsonNode.Parse(r.Stdout)!["baseline_comparison"]!;
            var rows = comparison["rows"]!.AsArray();
            Assert.Equal(["baseline 16", "slow-fast 16 s1t4", "slow-fast 32 s1t4", "slow-fast 64 s1t4", "slow-fast 96 s1t6", "slow-fast 128 s2t4"],
                rows.Select(x => (string)x!["name"]!));
            Assert.Equal(1.0, (double)rows[0]!["flops_ratio"]!);
            Assert.Equal(1.0, (double)rows[0]!["time_ratio"]!);
            // The tiny tower gives 4 tokens a pooled frame: the baseline holds all 16 x 4 in the sequence and cross-attends to none.
            Assert.Equal(26 + 64, (int)rows[0]!["positions"]!);
            Assert.Equal(0, (int)rows[0]!["cross_attended_tokens"]!);
            Assert.Equal(128 * 4, (int)rows[5]!["cross_attended_tokens"]!);
            foreach (var row in rows) Assert.True((double)row!["prefill_s"]! > 0);
            Assert.Contains("× baseline 16", File.ReadAllText(md));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ComparePackedDecoderTimesBothLoads()
    {
        string dir = Directory.CreateTempSubdirectory("sf-bench-").FullName;
        try
        {
            string md = Path.Combine(dir, "packed.md");
            string[] args = ["bench", "--preset", "tiny", "--compare-packed-decoder", "--quick", "--json", "--markdown", md];
            if (!SlowFast.Tensors.Kernels.MatMul.BFloat16Supported)
            {
                // Nothing to compare without the bfloat16 GEMM: a one-line error, not a crash.
                var refused = SlowfastProcess.Run([.. args, "--precision", "bf16"]);
                Assert.NotEqual(0, refused.ExitCode);
                Assert.Contains("packing is for bfloat16 arithmetic", refused.Stderr);
                return;
            }
            var r = SlowfastProcess.Run([.. args, "--precision", "bf16"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var result = JsonNode.Parse(r.Stdout)!["packed_decoder"]!;
            foreach (var side in new[] { "stored", "packed" })
            {
                var s = result[side]!;
                foreach (var figure in new[] { "video_prefill_s", "follow_up_prefill_s", "one_sequence_tokens_per_s", "eight_sequences_tokens_per_s", "working_set_bytes" })
                    Assert.True((double)s[figure]! > 0, $"{side} {figure}");
                Assert.True((int)s["follow_up_new_positions"]! < (int)s["video_prompt_positions"]!);   // the follow-up's start came from the prefix cache
            }
            Assert.Equal(0.0, (double)result["stored"]!["packing_s"]!);
            Assert.True((double)result["packed"]!["packing_s"]! > 0);
            Assert.Contains("| packed / stored |", File.ReadAllText(md));

            var f32 = SlowfastProcess.Run([.. args, "--precision", "f32"]);
            Assert.NotEqual(0, f32.ExitCode);
            Assert.Contains("packing is for bfloat16 arithmetic", f32.Stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void QuantizedProductsReportEachFormatsBytesAndSpeed()
    {
        string dir = Directory.CreateTempSubdirectory("sf-bench-").FullName;
        try
        {
            string md = Path.Combine(dir, "quant.md");
            var r = SlowfastProcess.Run("bench", "--preset", "tiny", "--quantized-products", "--quick", "--json", "--markdown", md);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var formats = JsonNode.Parse(r.Stdout)!["quantized_products"]!["formats"]!.AsArray();
            Assert.Equal(["bf16", "q8_0", "q4_0"], formats.Select(f => (string)f!["format"]!));
            // Bytes a weight: 2 (bf16), 34/32 (q8_0: 32 int8 + a float16 scale a block), 18/32 (q4_0).
            double bf16 = (double)formats[0]!["gb_per_token"]!;
            Assert.Equal(34.0 / 64, (double)formats[1]!["gb_per_token"]! / bf16, 6);
            Assert.Equal(18.0 / 64, (double)formats[2]!["gb_per_token"]! / bf16, 6);
            foreach (var f in formats)
            {
                Assert.True((double)f!["decode_tokens_s"]! > 0);
                Assert.True((double)f["prefill_tokens_s"]! > 0);
            }
            Assert.Equal(1.0, (double)formats[0]!["decode_vs_bf16"]!);
            Assert.Contains("Weight products: bf16, q8_0 and q4_0", File.ReadAllText(md));
            // The quantized formats' decoding again with each prefetch choice, the library's own marked once a format.
            var byPrefetch = JsonNode.Parse(r.Stdout)!["quantized_products"]!["decode_by_prefetch"]!.AsArray();
            Assert.Equal(["q8_0/None", "q8_0/Row", "q8_0/RowAndGroups", "q4_0/None", "q4_0/Row", "q4_0/RowAndGroups"],
                byPrefetch.Select(f => $"{f!["format"]}/{f["prefetch"]}"));
            Assert.All(byPrefetch, f => Assert.True((double)f!["decode_tokens_s"]! > 0));
            foreach (var format in new[] { "q8_0", "q4_0" })
                Assert.Single(byPrefetch, f => (string)f!["format"]! == format && (bool)f["is_default"]!);
            Assert.Contains("RowAndGroups", File.ReadAllText(md));
            // The row kernel against the GEMM at each row count, for both quantized formats, with their thresholds.
            var crossover = JsonNode.Parse(r.Stdout)!["quantized_products"]!["crossover"]!.AsArray();
            Assert.Equal(["q8_0", "q4_0"], crossover.Select(c => (string)c!["format"]!));
            foreach (var c in crossover)
            {
                var rows = c!["rows"]!.AsArray();
                Assert.Equal([8, 16, 20, 24, 32, 36, 40, 48], rows.Select(e => (int)e!["rows"]!));
                Assert.All(rows, e => Assert.True((double)e!["row_kernel_ms"]! > 0 && (double)e["gemm_ms"]! > 0));
            }
            Assert.True((int)crossover[0]!["gemm_min_rows"]! < (int)crossover[1]!["gemm_min_rows"]!);   // q4's row kernel reads half the bytes
            Assert.Contains("Where the GEMM takes over", File.ReadAllText(md));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void QuickTinyBenchPrintsEverySectionAndWritesMarkdown()
    {
        string dir = Directory.CreateTempSubdirectory("sf-bench-").FullName;
        try
        {
            string md = Path.Combine(dir, "results.md");
            var r = SlowfastProcess.Run("bench", "--preset", "tiny", "--quick", "--no-torch", "--json", "--reps", "1", "--frames", "9", "--markdown", md);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var doc = JsonNode.Parse(r.Stdout)!.AsObject();

            var machine = doc["machine"]!;
            foreach (var key in new[] { "fma_peak_gflops_one_core", "fma_peak_gflops_all", "fma_peak_gflop_per_cpu_second", "read_bandwidth_gb_s" })
                Positive(machine[key], key);

            var kernels = doc["kernels"]!;
            var matmul = kernels["matmul"]!.AsArray();
            Assert.NotEmpty(matmul);
            foreach (var row in matmul)
            {
                Positive(row!["gflops"], "gflops");
                Positive(row["median_s"], "median_s");
                Positive(row["pct_fma_peak"], "pct_fma_peak");
                Assert.True((double)row["min_s"]! <= (double)row["median_s"]! && (double)row["median_s"]! <= (double)row["max_s"]!);
            }
            Assert.Contains(matmul, row => row!["pct_bandwidth_bound"] != null); // the decoding GEMV
            var bf16Math = matmul.Single(row => ((string)row!["name"]!).EndsWith("bf16 math", StringComparison.Ordinal))!;
            Assert.Equal(SlowFast.Tensors.Kernels.MatMul.BFloat16Supported ? "BFloat16" : "Float32 (no AVX512-BF16 here)", (string)bf16Math["precision"]!);
            foreach (var row in kernels["other"]!.AsArray()) Positive(row!["gflops"], (string)row["name"]!);
            var layers = kernels["layers"]!.AsArray();
            Assert.Contains(layers, l => ((string)l!["name"]!).StartsWith("decoder layer", StringComparison.Ordinal));
            Assert.Contains(layers, l => ((string)l!["name"]!).StartsWith("convnext", StringComparison.Ordinal));
            foreach (var l in layers) Positive(l!["ours"]!["median_s"], (string)l["name"]!);
            Assert.Null(kernels["torch"]); // --no-torch

            var model = doc["model"]!;
            Assert.Equal(9, (int)model["frames"]!);
            Positive(model["vision"]!["frames_per_s"], "vision frames/s");
            Positive(model["prefill"]!["tokens_per_s"], "prefill tokens/s");
            // The prompt of the released layout: the tiny preset's fast tokens for 9 frames inside ~60 text tokens.
            Assert.Equal(60 + (int)model["prompt"]!["fast_tokens"]!, (int)model["prompt"]!["positions"]!);
            Positive(model["prompt"]!["slow_tokens"], "slow tokens");
            var decode = model["decode"]!;
            Positive(decode["tokens_per_s"], "decode tokens/s");
            Positive(decode["weight_bytes_per_token"], "weight bytes per token");
            Positive(decode["pct_bandwidth_bound"], "% of the bandwidth bound");

            string markdown = File.ReadAllText(md);
            Assert.Contains("## Matrix products", markdown);
            Assert.Contains("## Model: preset tiny", markdown);
            Assert.Contains("| decode |", markdown);
            Assert.Contains("--preset tiny", markdown);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void VisionProfileReportsEveryStageAndTheBf16Peak()
    {
        string dir = Directory.CreateTempSubdirectory("sf-bench-").FullName;
        try
        {
            string md = Path.Combine(dir, "profile.md");
            var r = SlowfastProcess.Run("bench", "--vision-profile", "--preset", "tiny", "--quick", "--json", "--precision", "bf16", "--markdown", md);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var doc = JsonNode.Parse(r.Stdout)!.AsObject();
            Assert.Null(doc["kernels"]);   // the profile alone
            var vp = doc["vision_profile"]!;
            bool bf16 = SlowFast.Tensors.Kernels.MatMul.BFloat16Supported;
            if (bf16) Positive(vp["bf16_peak_gflops"], "bf16 peak");
            foreach (var kind in new[] { "defaults", "baseline" })
            {
                var ops = vp[kind]!["ops"]!.AsArray();
                // The tiny tower: a stem, 4 stages (3 downsamples), the projector.
                foreach (var stage in new[] { "0", "1", "2", "3" })
                    Assert.Contains(ops, o => (string)o!["stage"]! == stage && ((string)o["op"]!).StartsWith("depthwise", StringComparison.Ordinal));
                Assert.Equal(3, ops.Count(o => ((string)o!["op"]!).StartsWith("downsample", StringComparison.Ordinal)));
                Assert.Single(ops, o => (string)o!["stage"]! == "projector");
                double shares = ops.Sum(o => (double)o!["share"]!);
                Assert.InRange(shares, 0.999, 1.001);
                Positive(vp[kind]!["gflops"], kind + " gflops");
                if (bf16) Positive(vp[kind]!["pct_bf16_peak"], kind + " % of the bf16 peak");
            }
            // Defaults: stage 0's 1024 rows take the fused bf16 products; the baseline never fuses.
            Assert.Equal(bf16, vp["defaults"]!["ops"]!.AsArray().Any(o => ((string)o!["op"]!).StartsWith("fc2", StringComparison.Ordinal) && ((string)o["op"]!).Contains("(fused)", StringComparison.Ordinal)));
            // The block's LayerNorm: in bf16 as fc1 rounds its rows (which hands fc2 bf16 rows), else in the depthwise conv's call.
            Assert.Contains(vp["defaults"]!["ops"]!.AsArray(), o => (string)o!["op"]! == (bf16 ? "norm + fc1 C→4C + gelu → bf16 (fused)" : "depthwise conv + norm (fused)"));
            Assert.DoesNotContain(vp["baseline"]!["ops"]!.AsArray(), o => ((string)o!["op"]!).Contains("(fused)", StringComparison.Ordinal));
            // The quantized tower against the BF16 one: both formats timed, q4 further from BF16 than q8, both close.
            var q = vp["quantized"]!.AsArray();
            Assert.Equal(SlowFast.Tensors.Kernels.MatMul.Int8ChannelsSupported
                    ? new[] { "q8_0", "q4_0", "int8 per channel", SlowFast.Benchmarks.VisionProfileBench.Int8SeparatePasses } : new[] { "q8_0", "q4_0" },
                q.Select(e => (string)e!["format"]!).ToArray());
            if (q.Count == 4)
            {
                Assert.InRange((double)q[2]!["relative_error"]!, 1e-6, 0.2);
                // GELU and the residual fused into the int8 tiles or as passes of their own: the same output.
                Assert.Equal((double)q[2]!["relative_error"]!, (double)q[3]!["relative_error"]!);
            }
            foreach (var e in q) Positive(e!["speedup"], "quantized tower speed-up");
            double e8 = (double)q[0]!["relative_error"]!, e4 = (double)q[1]!["relative_error"]!;
            Assert.True(e8 > 0 && e8 < e4 && e4 < 0.2, $"relative errors q8 {e8}, q4 {e4}");
            // int8 products (one scale per row and per channel) against bf16, two per stage, close to bf16.
            var i8 = vp["int8_products"]!.AsArray();
            if (SlowFast.Tensors.Kernels.MatMul.Int8ChannelsSupported && bf16)
            {
                Assert.Equal(8, i8.Count);
                foreach (var e in i8)
                {
                    Positive(e!["speedup"], "int8 speed-up");
                    double err = (double)e["relative_error"]!;
                    Assert.True(err > 0 && err < 0.05, $"int8 relative error {err}");
                }
                Assert.Contains("The MLP products alone in int8", File.ReadAllText(md));
            }
            Assert.Contains("Quantized tower", File.ReadAllText(md));
            Assert.Contains("## Vision tower profile", File.ReadAllText(md));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void VisionProfileAfterKernelsOnlyRunsBothInOneRun()
    {
        string dir = Directory.CreateTempSubdirectory("sf-bench-").FullName;
        try
        {
            var r = SlowfastProcess.Run("bench", "--vision-profile", "--kernels-only", "--preset", "tiny", "--quick", "--no-torch", "--json",
                "--precision", "bf16", "--markdown", Path.Combine(dir, "both.md"));
            Assert.True(r.ExitCode == 0, r.Stderr);
            var doc = JsonNode.Parse(r.Stdout)!.AsObject();
            Assert.NotEmpty(doc["kernels"]!["layers"]!.AsArray());
            Assert.Contains(doc["kernels"]!["layers"]!.AsArray(), row => ((string)row!["name"]!).StartsWith("convnext", StringComparison.Ordinal));
            Assert.NotNull(doc["vision_profile"]!["defaults"]);
            Assert.Null(doc["model"]);
            Assert.Null(doc["engine"]);
            // The kernels come first, then the profile.
            Assert.True(r.Stderr.IndexOf("other kernels", StringComparison.Ordinal) < r.Stderr.IndexOf("vision profile:", StringComparison.Ordinal), r.Stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("--model-only")]
    [InlineData("--engine-only")]
    public void VisionProfileWithModelOrEngineOnlyIsAUsageError(string only)
    {
        var r = SlowfastProcess.Run("bench", "--vision-profile", only);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--vision-profile runs alone or after --kernels-only", r.Stderr);
    }

    [Fact]
    public void KernelsOnlyAndModelOnlyTogetherIsAUsageError()
    {
        var r = SlowfastProcess.Run("bench", "--kernels-only", "--model-only");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("exclude each other", r.Stderr);
    }

    private static void Positive(JsonNode? n, string what)
    {
        Assert.True(n != null, $"{what} missing");
        double v = double.Parse(n!.ToString(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(v > 0 && double.IsFinite(v), $"{what} = {v}");
    }
}
