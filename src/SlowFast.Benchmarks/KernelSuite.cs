using System.Text.Json.Nodes;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>
/// Throughput of the compute kernels on model-sized shapes: every matrix product of
/// <see cref="KernelShapes"/> (GFLOP/s, % of the FMA peak, and for the GEMVs % of the bandwidth
/// bound), then attention, the depthwise convolution, RMSNorm and GELU.
/// </summary>
public static class KernelSuite
{
    /// <summary>One JSON row per matrix product.</summary>
    public static JsonArray RunMatMuls(IEnumerable<MatShape> shapes, MachineLimits limits, int reps, TextWriter log)
    {
        var rows = new JsonArray();
        foreach (var shape in shapes)
        {
            var t = TimeLinear(shape, reps);
            var row = MatMulRow(shape, t, limits);
            if (shape.MemoryBound) AddPlainRead(row, shape, t, reps);
            rows.Add(row);
            string extra = shape.MemoryBound
                ? $"{(double)row["effective_gb_s"]!,6:F1} GB/s = {(double)row["pct_bandwidth_bound"]!,5:F1}% of the bandwidth bound, " +
                  $"{(double)row["pct_of_plain_read"]!,5:F1}% of a plain read of the same bytes just after ({(double)row["plain_read_gb_s"]!:F1} GB/s)"
                : $"{(double)row["pct_fma_peak"]!,5:F1}% of the FMA peak (wall), {(double)row["pct_core_peak_per_cpu_second"]!,5:F1}% of a core's peak per CPU-second";
            log.WriteLine($"  {shape.Name,-26} {t.Describe()}  {(double)row["gflops"]!,7:F1} GFLOP/s  {extra}");
        }
        return rows;
    }

    public static JsonObject MatMulRow(MatShape shape, Timing t, MachineLimits limits)
    {
        double gflops = shape.Flops / t.Median / 1e9;
        var row = new JsonObject
        {
            ["name"] = shape.Name, ["m"] = shape.M, ["k"] = shape.K, ["n"] = shape.N, ["weights"] = shape.WeightType.ToString(),
            ["precision"] = MatMul.Effective(shape.Precision) != shape.Precision
                ? "Float32 (no AVX512-BF16 here)" : shape.Precision.ToString(),
            ["gflops"] = gflops,
            ["gflops_best"] = shape.Flops / t.Min / 1e9,
            ["pct_fma_peak"] = 100 * gflops / limits.FmaPeakAll,
            ["gflop_per_cpu_second"] = shape.Flops / t.CpuMedian / 1e9,
            ["pct_core_peak_per_cpu_second"] = 100 * shape.Flops / t.CpuMedian / 1e9 / limits.FmaPerCpuSecond,
        };
        if (shape.MemoryBound)
        {
            double boundSeconds = shape.WeightBytes / (limits.ReadBandwidthGBs * 1e9);
            row["effective_gb_s"] = shape.WeightBytes / t.Median / 1e9;
            row["pct_bandwidth_bound"] = 100 * boundSeconds / t.Median;
        }
        foreach (var (k, v) in t.ToJson()) row[k] = v!.DeepClone();
        return row;
    }

    /// <summary>
    /// Adds the time of simply reading the product's weight bytes, measured right after it: the
    /// bandwidth bound of that moment on a machine whose bandwidth drifts.
    /// </summary>
    public static void AddPlainRead(JsonObject row, MatShape shape, Timing t, int reps)
    {
        var read = MachineLimits.TimeRead((long)shape.WeightBytes, Math.Max(reps, 3));
        row["plain_read_gb_s"] = shape.WeightBytes / read.Median / 1e9;
        row["pct_of_plain_read"] = 100 * read.Median / t.Median;
    }

    public static Timing TimeLinear(MatShape shape, int reps)
    {
        var x = RandomData.Floats((long)shape.M * shape.K, 1f, 42);
        var y = new float[(long)shape.M * shape.N];
        var w = RandomData.Matrix(shape.N, shape.K, shape.WeightType, 43);
        var result = Timing.Measure(() => MatMul.Linear(x, shape.M, w, ReadOnlySpan<float>.Empty, y, shape.Precision), reps);
        GC.KeepAlive(w);
        return result;
    }

    /// <summary>Attention, depthwise convolution, RMSNorm and GELU at 7B / ConvNeXt-XXL sizes (smaller with <paramref name="quick"/>).</summary>
    public static JsonArray RunOthers(int reps, bool quick, TextWriter log)
    {
        var rows = new JsonArray();
        void Report(string name, Timing t, double flops)
        {
            log.WriteLine($"  {name,-26} {t.Describe()}  {flops / t.Median / 1e9,7:F1} GFLOP/s");
            var row = new JsonObject { ["name"] = name, ["gflops"] = flops / t.Median / 1e9 };
            foreach (var (k, v) in t.ToJson()) row[k] = v!.DeepClone();
            rows.Add(row);
        }

        {
            int t = quick ? 512 : 2048, hq = 28, hkv = 4, d = 128;
            var q = RandomData.Floats((long)t * hq * d, 1f, 1);
            var k = RandomData.Floats((long)t * hkv * d, 1f, 2);
            var v = RandomData.Floats((long)t * hkv * d, 1f, 3);
            var o = new float[q.Length];
            var pos = Enumerable.Range(0, t).ToArray();
            Report($"attention causal T=S={t}", Timing.Measure(() => Attention.Causal(q, pos, k, v, hq, hkv, d, o), reps), 2.0 * 2 * hq * d * (double)t * (t + 1) / 2);
            var q1 = RandomData.Floats(hq * d, 1f, 4);
            var o1 = new float[q1.Length];
            int[] last = [t - 1];
            Report($"attention decode S={t}", Timing.Measure(() => Attention.Causal(q1, last, k, v, hq, hkv, d, o1), reps * 4), 2.0 * 2 * hq * d * t);
        }
        {
            // ConvNeXt-XXL stage 2 at 576 px: 36×36 pixels of 1536 channels.
            int h = quick ? 18 : 36, w = h, c = 1536;
            var x = RandomData.Floats((long)h * w * c, 1f, 5);
            var wt = RandomData.Floats(c * 49, 0.1f, 6);
            var b = RandomData.Floats(c, 0.1f, 7);
            var y = new float[x.Length];
            Report($"depthwise 7x7 {h}x{w}x{c}", Timing.Measure(() => Conv.DepthwiseHwc(x, h, w, c, wt, b, 7, y), reps), 2.0 * h * w * c * 49);
        }
        {
            int rows_ = quick ? 256 : 2048;
            var x = RandomData.Floats(rows_ * 3584L, 1f, 8);
            var wn = RandomData.Floats(3584, 1f, 9);
            var y = new float[x.Length];
            Report($"rmsnorm {rows_}x3584", Timing.Measure(() => Norms.RmsNorm(x, wn, 1e-6f, y), reps), 3.0 * x.Length);
            var g = RandomData.Floats(quick ? 1L << 20 : 4L << 20, 1f, 10);
            Report($"gelu {g.Length >> 20}M", Timing.Measure(() => Activations.Gelu(g), reps), 20.0 * g.Length);
        }
        return rows;
    }
}
