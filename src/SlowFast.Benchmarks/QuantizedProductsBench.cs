using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Kernels.Jit;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Benchmarks;

/// <summary>
/// The weight products of one decoder layer (q, k, v, o, gate, up, down) and lm_head, with the same
/// random weights stored as BF16, Q8_0 and Q4_0: one input row (a decoding step) and many (a prefill
/// chunk). Decoding reads every weight once per token, so these products are most of a decoding
/// step; the estimates below are 1 / (layers · layer + lm_head) and rows / (layers · layer), weight
/// products only (attention, norms and the rest add the same time to every format).
/// </summary>
/// <remarks>
/// The formats are measured in turn, round after round, and each product keeps its best round, so a
/// burst of other work on a shared machine touches them alike. Every matrix is far larger than the
/// caches, so each one-row product reads its weights from memory.
/// </remarks>
public static class QuantizedProductsBench
{
    private static readonly string[] FormatNames = ["bf16", "q8_0", "q4_0"];

    public static JsonObject Run(SlowFastConfig c, MachineLimits limits, int rounds, int prefillRows, MatMulPrecision precision, TextWriter log)
    {
        int h = c.HiddenSize, kv = c.NumKeyValueHeads * c.HeadDim, q = c.NumAttentionHeads * c.HeadDim;
        var shapes = new (string Name, int N, int K)[]
        {
            ("q", q, h), ("k", kv, h), ("v", kv, h), ("o", h, q), ("gate", c.IntermediateSize, h), ("up", c.IntermediateSize, h),
            ("down", h, c.IntermediateSize), ("lm_head", c.VocabSize, h),
        };
        log.WriteLine($"weight products: one layer ({string.Join(", ", shapes.SkipLast(1).Select(s => $"{s.Name} {s.N}x{s.K}"))}) and lm_head {c.VocabSize}x{h}, as bf16, q8_0 and q4_0");
        var matrices = new Dictionary<string, WeightMatrix[]>();
        ulong seed = 1;
        foreach (var (name, n, k) in shapes)
        {
            var bf16 = RandomData.Matrix(n, k, DType.BF16, seed++);
            matrices[name] = [bf16, QuantizedWeights.Quantize(bf16, BlockFormat.Q8_0), QuantizedWeights.Quantize(bf16, BlockFormat.Q4_0)];
        }
        int maxK = shapes.Max(s => s.K);
        var x = RandomData.Floats((long)prefillRows * maxK, 1f, 99);
        var y = new float[Math.Max((long)prefillRows * shapes.Where(s => s.Name != "lm_head").Max(s => s.N), c.VocabSize)];

        var best = new Dictionary<(string Name, int Rows, int Format), double>();
        // Variants 0–2: bf16, q8_0 and q4_0 (format indexes) as the library runs them; then each quantized
        // format's one-row products again with every prefetch choice forced.
        var variants = new List<(int Format, QuantPrefetch? Prefetch)> { (0, null), (1, null), (2, null) };
        foreach (int f in new[] { 1, 2 })
            foreach (var p in Enum.GetValues<QuantPrefetch>()) variants.Add((f, p));
        void Time(string name, int rows, int v)
        {
            var w = matrices[name][variants[v].Format];
            QuantRowsKernel.PrefetchOverride = variants[v].Prefetch;
            try
            {
                var sw = Stopwatch.StartNew();
                MatMul.Linear(x.AsSpan(0, rows * w.Cols), rows, w, default, y, precision);
                double t = sw.Elapsed.TotalSeconds;
                best[(name, rows, v)] = best.TryGetValue((name, rows, v), out var b) ? Math.Min(b, t) : t;
            }
            finally { QuantRowsKernel.PrefetchOverride = null; }
        }
        foreach (var (name, _, _) in shapes)   // warm-up: code generation, page faults of the scratch
            for (int v = 0; v < variants.Count; v++) Time(name, 1, v);
        best.Clear();
        for (int round = 0; round < rounds; round++)
        {
            log.Write($"\r  round {round + 1} of {rounds}");
            // The one-row products in a pass of their own: a prefill product just before one would leave its
            // output's dirty lines to be written back while the next streams its weights.
            for (int v = 0; v < variants.Count; v++)
                foreach (var (name, _, _) in shapes) Time(name, 1, v);
            for (int f = 0; f < 3; f++)
                foreach (var (name, _, _) in shapes)
                    if (name != "lm_head") Time(name, prefillRows, f);
        }
        log.WriteLine();

        int layers = c.NumHiddenLayers;
        var rows = new JsonArray();
        double bf16Decode = 0, bf16Prefill = 0;
        for (int f = 0; f < 3; f++)
        {
            double layer1 = shapes.Where(s => s.Name != "lm_head").Sum(s => best[(s.Name, 1, f)]);
            double head = best[("lm_head", 1, f)];
            double layerP = shapes.Where(s => s.Name != "lm_head").Sum(s => best[(s.Name, prefillRows, f)]);
            double bytesPerToken = layers * shapes.Where(s => s.Name != "lm_head").Sum(s => (double)matrices[s.Name][f].ByteLength)
                + matrices["lm_head"][f].ByteLength;
            double decode = 1 / (layers * layer1 + head), prefill = prefillRows / (layers * layerP);
            if (f == 0) { bf16Decode = decode; bf16Prefill = prefill; }
            double gbs = bytesPerToken * decode / 1e9;
            rows.Add(new JsonObject
            {
                ["format"] = FormatNames[f],
                ["layer_one_row_ms"] = layer1 * 1e3,
                ["lm_head_one_row_ms"] = head * 1e3,
                ["decode_tokens_s"] = decode,
                ["decode_vs_bf16"] = decode / bf16Decode,
                ["gb_per_token"] = bytesPerToken / 1e9,
                ["read_gb_s"] = gbs,
                ["pct_read_bandwidth"] = limits.ReadBandwidthGBs > 0 ? 100 * gbs / limits.ReadBandwidthGBs : null,
                ["layer_prefill_ms"] = layerP * 1e3,
                ["prefill_tokens_s"] = prefill,
                ["prefill_vs_bf16"] = prefill / bf16Prefill,
            });
        }
        var byPrefetch = new JsonArray();
        for (int v = 3; v < variants.Count; v++)
        {
            double layer1 = shapes.Where(s => s.Name != "lm_head").Sum(s => best[(s.Name, 1, v)]);
            double decode = 1 / (layers * layer1 + best[("lm_head", 1, v)]);
            var (f, prefetch) = variants[v];
            var format = matrices["q"][f].Format!.Value;
            byPrefetch.Add(new JsonObject
            {
                ["format"] = FormatNames[f],
                ["prefetch"] = prefetch!.Value.ToString(),
                ["is_default"] = prefetch == QuantRowsKernel.DefaultPrefetch(format),
                ["layer_one_row_ms"] = layer1 * 1e3,
                ["lm_head_one_row_ms"] = best[("lm_head", 1, v)] * 1e3,
                ["decode_tokens_s"] = decode,
                ["decode_vs_bf16"] = decode / bf16Decode,
            });
        }
        return new JsonObject
        {
            ["layers"] = layers, ["prefill_rows"] = prefillRows, ["rounds"] = rounds, ["precision"] = MatMul.EffectiveName(precision),
            ["formats"] = rows,
            ["decode_by_prefetch"] = byPrefetch,
            ["crossover"] = Crossover(matrices["gate"], x, y, rounds, log),
        };
    }

    /// <summary>Row counts at which the row kernel and the GEMM are compared (around both formats' thresholds).</summary>
    public static readonly int[] CrossoverRows = [8, 16, 20, 24, 32, 36, 40, 48];

    /// <summary>
    /// Where the GEMM should take over from the row kernel: one matrix (gate) in q8_0 and q4_0, each row
    /// count through both paths in turn (forced with the per-thread override), best of the rounds; with
    /// the threshold the library uses for that format.
    /// </summary>
    private static JsonArray Crossover(WeightMatrix[] gate, float[] x, float[] y, int rounds, TextWriter log)
    {
        var result = new JsonArray();
        foreach (int f in new[] { 1, 2 })
        {
            var w = gate[f];
            var format = w.Format!.Value;
            var entries = new JsonArray();
            foreach (int m in CrossoverRows)
            {
                double row = double.MaxValue, gemm = double.MaxValue;
                try
                {
                    for (int round = 0; round < Math.Max(rounds, 3); round++)
                        foreach (bool viaGemm in new[] { false, true })
                        {
                            MatMul.Quantized.GemmMinRowsOverride = viaGemm ? 1 : int.MaxValue;
                            var sw = Stopwatch.StartNew();
                            MatMul.Linear(x.AsSpan(0, m * w.Cols), m, w, default, y);
                            double t = sw.Elapsed.TotalSeconds;
                            if (viaGemm) gemm = Math.Min(gemm, t); else row = Math.Min(row, t);
                        }
                }
                finally { MatMul.Quantized.GemmMinRowsOverride = null; }
                entries.Add(new JsonObject { ["rows"] = m, ["row_kernel_ms"] = row * 1e3, ["gemm_ms"] = gemm * 1e3, ["gemm_over_row_kernel"] = gemm / row });
            }
            log.WriteLine($"  crossover {format.Name()}: GEMM/row kernel " + string.Join(", ", entries.Select(e => $"{e!["rows"]} rows {D(e["gemm_over_row_kernel"]):F2}")));
            result.Add(new JsonObject
            {
                ["format"] = format.Name(), ["matrix"] = $"{w.Rows}x{w.Cols}",
                ["gemm_min_rows"] = MatMul.Quantized.GemmMinRows(format), ["rows"] = entries,
            });
        }
        return result;
    }

    public static string ToMarkdown(JsonObject r)
    {
        var sb = new StringBuilder();
        int rowsP = (int)r["prefill_rows"]!;
        sb.AppendLine($"## Weight products: bf16, q8_0 and q4_0 ({(int)r["layers"]!} layers, best of {(int)r["rounds"]!} rounds)").AppendLine();
        sb.AppendLine($"One decoder layer's seven products and lm_head, same random weights in each format, {r["precision"]} arithmetic for the {rowsP}-row products. " +
            "Decode estimate = 1 / (layers · layer + lm_head), one input row; prefill estimate = rows / (layers · layer); weight products only. " +
            "Read GB/s: the weights' bytes per token times the decode estimate, against the read bandwidth measured in the same run.").AppendLine();
        sb.AppendLine($"| weights | layer, 1 row (ms) | lm_head, 1 row (ms) | decode (tokens/s) | × bf16 | GB per token | read GB/s | % of read bandwidth | layer, {rowsP} rows (ms) | prefill (tokens/s) | × bf16 |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var f in r["formats"]!.AsArray())
            sb.AppendLine($"| {f!["format"]} | {D(f["layer_one_row_ms"]):F2} | {D(f["lm_head_one_row_ms"]):F2} | {D(f["decode_tokens_s"]):F2} | {D(f["decode_vs_bf16"]):F2} | " +
                $"{D(f["gb_per_token"]):F2} | {D(f["read_gb_s"]):F1} | {(f["pct_read_bandwidth"] is { } p ? $"{D(p):F0}%" : "")} | {D(f["layer_prefill_ms"]):F1} | " +
                $"{D(f["prefill_tokens_s"]):F1} | {D(f["prefill_vs_bf16"]):F2} |");
        sb.AppendLine();
        if (r["decode_by_prefetch"] is JsonArray byPrefetch && byPrefetch.Count > 0)
        {
            sb.AppendLine("The quantized formats' decoding again in the same rounds with each choice of the row kernel's software prefetch: " +
                "None (the hardware prefetchers alone), Row (each weight row's next kilobyte into L1), RowAndGroups (that, and the " +
                "weight groups ahead into L2). The library's choice for each format is marked.").AppendLine();
            sb.AppendLine("| weights | prefetch | layer, 1 row (ms) | lm_head, 1 row (ms) | decode (tokens/s) | × bf16 |");
            sb.AppendLine("|---|---|---|---|---|---|");
            foreach (var f in byPrefetch)
                sb.AppendLine($"| {f!["format"]} | {f["prefetch"]}{((bool)f["is_default"]! ? " (default)" : "")} | {D(f["layer_one_row_ms"]):F2} | " +
                    $"{D(f["lm_head_one_row_ms"]):F2} | {D(f["decode_tokens_s"]):F2} | {D(f["decode_vs_bf16"]):F2} |");
            sb.AppendLine();
        }
        if (r["crossover"] is JsonArray crossover && crossover.Count > 0)
        {
            sb.AppendLine("Where the GEMM takes over from the row kernel: time of the GEMM over the row kernel's on the gate matrix, " +
                "the two paths in turn, best of the rounds; below 1 the GEMM is faster. The library's threshold is in the last column.").AppendLine();
            sb.AppendLine("| weights | matrix | " + string.Join(" | ", CrossoverRows.Select(m => $"{m} rows")) + " | GEMM from |");
            sb.AppendLine("|---|---|" + string.Concat(CrossoverRows.Select(_ => "---|")) + "---|");
            foreach (var c in crossover)
                sb.AppendLine($"| {c!["format"]} | {c["matrix"]} | " + string.Join(" | ", c["rows"]!.AsArray().Select(e => $"{D(e!["gemm_over_row_kernel"]):F2}")) + $" | {c["gemm_min_rows"]} rows |");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    private static double D(JsonNode? n) => (double)n!;
}
