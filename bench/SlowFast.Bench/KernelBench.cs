using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Bench;

/// <summary>
/// `bench kernels [--json] [--reps N] [--no-torch] [--quick] [--only TEXT]`: measures this machine's float32 FMA
/// peak (register-only loop, one core then all kernel threads) and read bandwidth, then the
/// throughput of the compute kernels on model-sized shapes (median and spread over repetitions
/// after a warm-up), and runs tools/bench/torch_kernels.py on the same matrix shapes for a
/// side-by-side with PyTorch (FP32 and BF16, same thread count). --quick drops the slowest shapes;
/// --only keeps the matrix shapes whose name contains TEXT (and skips the other kernels).
/// </summary>
public static unsafe class KernelBench
{
    /// <summary>Wall-clock seconds per call (median, min, max) and the median process CPU seconds per call.</summary>
    private sealed record Timing(double Median, double Min, double Max, int Reps, double CpuMedian);

    private sealed record MatShape(string Name, int M, int K, int N, DType WeightType);

    public static int Run(string[] args)
    {
        bool json = args.Contains("--json");
        bool noTorch = args.Contains("--no-torch");
        bool quick = args.Contains("--quick");
        int reps = 5;
        int ri = Array.IndexOf(args, "--reps");
        if (ri >= 0 && ri + 1 < args.Length && int.TryParse(args[ri + 1], out int r) && r > 0) reps = r;
        var log = json ? Console.Error : Console.Out;

        int threads = KernelThreads.Count;
        log.WriteLine($"kernel bench: {threads} threads, Vector512 accelerated: {Vector512.IsHardwareAccelerated}, load average {LoadAverage()}");
        double peak1 = MeasureFmaPeak(1, out double peakPerCpuSecond);
        double peakAll = MeasureFmaPeak(threads);
        double bandwidth = MeasureBandwidth();
        log.WriteLine($"FMA peak: {peak1:F1} GFLOP/s on one core, {peakAll:F1} GFLOP/s on {threads} threads (wall clock); " +
            $"{peakPerCpuSecond:F1} GFLOP per CPU-second; read bandwidth {bandwidth:F1} GB/s");
        log.WriteLine("columns: wall-clock median (min, max); GFLOP/s from the median and from the fastest rep; compute-bound shapes: " +
            "% of the all-threads FMA peak (wall) and GFLOP per CPU-second as % of one core's peak (cpu, load-independent)");

        var shapes = new List<MatShape>
        {
            new("gemm 2048x3584x3584 bf16", 2048, 3584, 3584, DType.BF16),
            new("gemm 2048x3584x3584 f32", 2048, 3584, 3584, DType.F32),
            new("gemm 256x3584x3584 bf16", 256, 3584, 3584, DType.BF16),
            new("gemm 64x3584x3584 bf16", 64, 3584, 3584, DType.BF16),
            new("gemm 17x3584x3584 bf16", 17, 3584, 3584, DType.BF16),
            new("gemv 1x3584x18944 bf16", 1, 3584, 18944, DType.BF16),
            new("gemv 1x18944x3584 bf16", 1, 18944, 3584, DType.BF16),
            new("gemv 1x3584x152064 bf16", 1, 3584, 152064, DType.BF16),
            new("gemv 4x3584x18944 bf16", 4, 3584, 18944, DType.BF16),
        };
        if (quick) shapes.RemoveAll(s => s.N == 152064 || (s.M == 2048 && s.WeightType == DType.F32));
        int oi = Array.IndexOf(args, "--only");
        string? only = oi >= 0 && oi + 1 < args.Length ? args[oi + 1] : null;
        if (only != null) shapes.RemoveAll(s => !s.Name.Contains(only, StringComparison.OrdinalIgnoreCase));

        var rows = new JsonArray();
        foreach (var shape in shapes)
        {
            var t = TimeLinear(shape, reps);
            double flops = 2.0 * shape.M * shape.K * shape.N;
            double gflops = flops / t.Median / 1e9;
            double weightBytes = (double)shape.K * shape.N * shape.WeightType.SizeOf();
            bool memoryBound = shape.M <= 8;
            double boundSeconds = weightBytes / (bandwidth * 1e9);
            var row = new JsonObject
            {
                ["name"] = shape.Name, ["m"] = shape.M, ["k"] = shape.K, ["n"] = shape.N, ["weights"] = shape.WeightType.ToString(),
                ["median_s"] = t.Median, ["min_s"] = t.Min, ["max_s"] = t.Max, ["reps"] = t.Reps,
                ["gflops"] = gflops, ["gflops_best"] = flops / t.Min / 1e9, ["pct_fma_peak"] = 100 * gflops / peakAll,
                ["pct_fma_peak_best"] = 100 * flops / t.Min / 1e9 / peakAll,
                ["cpu_s"] = t.CpuMedian, ["pct_core_peak_per_cpu_second"] = 100 * flops / t.CpuMedian / 1e9 / peakPerCpuSecond,
            };
            string extra;
            if (memoryBound)
            {
                row["pct_bandwidth_bound"] = 100 * boundSeconds / t.Median;
                row["effective_gb_s"] = weightBytes / t.Median / 1e9;
                row["pct_bandwidth_bound_best"] = 100 * boundSeconds / t.Min;
                extra = $"{weightBytes / t.Median / 1e9,6:F1} GB/s = {100 * boundSeconds / t.Median,5:F1}% of bandwidth bound (best rep {100 * boundSeconds / t.Min:F1}%)";
            }
            else extra = $"wall {100 * gflops / peakAll,5:F1}% (best {100 * flops / t.Min / 1e9 / peakAll:F1}%) of FMA peak, cpu {100 * flops / t.CpuMedian / 1e9 / peakPerCpuSecond:F1}% of core peak";
            log.WriteLine($"{shape.Name,-28} {t.Median * 1e3,9:F2} ms (min {t.Min * 1e3:F2}, max {t.Max * 1e3:F2})  {gflops,7:F1} GFLOP/s (best {flops / t.Min / 1e9:F1})  {extra}");
            rows.Add(row);
        }

        var other = only == null ? OtherKernels(reps, log) : new JsonArray();

        JsonNode? torch = null;
        if (!noTorch)
        {
            torch = RunTorch(shapes, reps, threads, log);
            if (torch?["results"] is JsonArray tr)
            {
                log.WriteLine("vs PyTorch (same shapes, same thread count): ratio = our GFLOP/s / torch GFLOP/s");
                foreach (var row in rows)
                {
                    var match = tr.FirstOrDefault(e => (int)e!["m"]! == (int)row!["m"]! && (int)e!["k"]! == (int)row["k"]! && (int)e!["n"]! == (int)row["n"]!);
                    if (match == null) continue;
                    double ours = (double)row!["gflops"]!;
                    foreach (var kind in new[] { "f32", "f32_mkldnn", "bf16" })
                    {
                        double theirs = (double)match[kind]!["gflops"]!;
                        row[$"torch_{kind}_gflops"] = theirs;
                        row[$"ratio_vs_torch_{kind}"] = ours / theirs;
                    }
                    log.WriteLine($"{(string)row["name"]!,-28} torch f32 {(double)row["torch_f32_gflops"]!,7:F1}  f32(oneDNN) {(double)row["torch_f32_mkldnn_gflops"]!,7:F1}  bf16 {(double)row["torch_bf16_gflops"]!,7:F1} GFLOP/s" +
                        $"  ratios {(double)row["ratio_vs_torch_f32"]!,6:F2}x / {(double)row["ratio_vs_torch_f32_mkldnn"]!,5:F2}x / {(double)row["ratio_vs_torch_bf16"]!,5:F2}x");
                }
            }
        }

        if (json)
        {
            var doc = new JsonObject
            {
                ["threads"] = threads,
                ["load_average"] = LoadAverage(),
                ["fma_peak_gflops_one_core"] = peak1,
                ["fma_peak_gflops_all"] = peakAll,
                ["fma_peak_gflop_per_cpu_second"] = peakPerCpuSecond,
                ["read_bandwidth_gb_s"] = bandwidth,
                ["matmul"] = rows,
                ["other"] = other,
                ["torch"] = torch,
            };
            Console.WriteLine(doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        return 0;
    }

    // ---------------------------------------------------------------- machine limits

    private struct PeakJob { public long Iterations; public double Sink; }

    /// <summary>Register-only FMA loop (16 independent accumulators) on <paramref name="threads"/> threads at once; GFLOP/s.</summary>
    private static double MeasureFmaPeak(int threads) => MeasureFmaPeak(threads, out _);

    /// <summary>Also returns the best GFLOP per CPU-second (one core's peak, independent of machine load).</summary>
    private static double MeasureFmaPeak(int threads, out double perCpuSecond)
    {
        perCpuSecond = 0;
        // Short runs, best of many: on a shared machine the best slot is the closest to the hardware.
        var job = new PeakJob { Iterations = 2_000_000 };
        KernelThreads.For(threads, &job, &FmaLoop); // warm-up / JIT
        double best = 0;
        for (int rep = 0; rep < 30; rep++)
        {
            double cpu0 = CpuSeconds();
            long start = Stopwatch.GetTimestamp();
            KernelThreads.For(threads, &job, &FmaLoop);
            double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
            double cpu = CpuSeconds() - cpu0;
            double flops = threads * job.Iterations * 16.0 * 16 * 2;
            best = Math.Max(best, flops / s / 1e9);
            if (cpu > 0) perCpuSecond = Math.Max(perCpuSecond, flops / cpu / 1e9);
        }
        return best;
    }

    private static void FmaLoop(void* context, int index)
    {
        ref PeakJob job = ref *(PeakJob*)context;
        var m = Vector512.Create(0.999999f);
        var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
        Vector512<float> c8 = c0, c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
        for (long i = 0; i < job.Iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a);
            c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
            c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
            c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
            c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a);
            c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
            c12 = Vector512.FusedMultiplyAdd(c12, m, a); c13 = Vector512.FusedMultiplyAdd(c13, m, a);
            c14 = Vector512.FusedMultiplyAdd(c14, m, a); c15 = Vector512.FusedMultiplyAdd(c15, m, a);
        }
        var sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + c12 + c13 + c14 + c15;
        if (Vector512.Sum(sum) == 12345f) job.Sink += 1; // keep the loop alive
    }

    private struct ReadJob { public float* Data; public long PerTask; public float Sink; }

    /// <summary>Read bandwidth over a 1 GiB buffer with all kernel threads; best of several passes, GB/s.</summary>
    private static double MeasureBandwidth()
    {
        long count = 256L << 20; // 1 GiB of floats
        var buffer = GC.AllocateUninitializedArray<float>((int)count, pinned: true);
        new Span<float>(buffer).Fill(1f); // touch every page
        fixed (float* p = buffer)
        {
            int tasks = KernelThreads.Count * 4;
            var job = new ReadJob { Data = p, PerTask = count / tasks };
            double best = 0;
            for (int rep = 0; rep < 8; rep++)
            {
                long start = Stopwatch.GetTimestamp();
                KernelThreads.For(tasks, &job, &ReadLoop);
                double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
                best = Math.Max(best, count * 4.0 / s / 1e9);
            }
            return best;
        }
    }

    private static void ReadLoop(void* context, int task)
    {
        ref ReadJob job = ref *(ReadJob*)context;
        float* p = job.Data + task * job.PerTask;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (long i = 0; i < job.PerTask; i += 64)
        {
            a0 += Vector512.Load(p + i); a1 += Vector512.Load(p + i + 16);
            a2 += Vector512.Load(p + i + 32); a3 += Vector512.Load(p + i + 48);
        }
        job.Sink += Vector512.Sum(a0 + a1 + a2 + a3);
    }

    // ---------------------------------------------------------------- kernels

    private static Timing TimeLinear(MatShape shape, int reps)
    {
        var rng = new Random(42);
        var x = new float[(long)shape.M * shape.K];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var y = new float[(long)shape.M * shape.N];
        WeightMatrix w;
        long count = (long)shape.N * shape.K;
        if (shape.WeightType == DType.F32)
        {
            var wf = GC.AllocateUninitializedArray<float>(checked((int)count), pinned: true);
            for (long i = 0; i < count; i++) wf[i] = (float)(rng.NextDouble() - 0.5) * 0.04f;
            w = WeightMatrix.FromFloats(wf, shape.N, shape.K);
        }
        else
        {
            var bits = GC.AllocateUninitializedArray<ushort>(checked((int)count), pinned: true);
            for (long i = 0; i < count; i++) bits[i] = DTypes.FloatToBF16((float)(rng.NextDouble() - 0.5) * 0.04f);
            w = WeightMatrix.FromHalfBits(bits, shape.WeightType, shape.N, shape.K);
        }
        var result = Time(() => MatMul.Linear(x, shape.M, w, ReadOnlySpan<float>.Empty, y), reps);
        GC.KeepAlive(w);
        return result;
    }

    private static JsonArray OtherKernels(int reps, TextWriter log)
    {
        var rows = new JsonArray();
        void Report(string name, Timing t, double flops)
        {
            log.WriteLine($"{name,-28} {t.Median * 1e3,9:F2} ms (min {t.Min * 1e3:F2}, max {t.Max * 1e3:F2})  {flops / t.Median / 1e9,7:F1} GFLOP/s");
            rows.Add(new JsonObject { ["name"] = name, ["median_s"] = t.Median, ["min_s"] = t.Min, ["max_s"] = t.Max, ["gflops"] = flops / t.Median / 1e9 });
        }
        var rng = new Random(7);
        float[] Rand(long n) { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1); return a; }

        {
            int t = 2048, hq = 28, hkv = 4, d = 128;
            var q = Rand((long)t * hq * d); var k = Rand((long)t * hkv * d); var v = Rand((long)t * hkv * d);
            var o = new float[q.Length];
            var pos = Enumerable.Range(0, t).ToArray();
            Report("attention causal T=S=2048", Time(() => Attention.Causal(q, pos, k, v, hq, hkv, d, o), reps), 2.0 * 2 * hq * d * (double)t * (t + 1) / 2);
            var q1 = Rand(hq * d); var o1 = new float[q1.Length];
            int[] last = { t - 1 };
            Report("attention decode S=2048", Time(() => Attention.Causal(q1, last, k, v, hq, hkv, d, o1), reps * 4), 2.0 * 2 * hq * d * t);
        }
        {
            int h = 96, w = 96, c = 128;
            var x = Rand((long)h * w * c); var wt = Rand(c * 49); var b = Rand(c); var y = new float[x.Length];
            Report("depthwise 7x7 96x96x128", Time(() => Conv.DepthwiseHwc(x, h, w, c, wt, b, 7, y), reps), 2.0 * h * w * c * 49);
        }
        {
            var x = Rand(2048L * 3584); var wn = Rand(3584); var y = new float[x.Length];
            Report("rmsnorm 2048x3584", Time(() => Norms.RmsNorm(x, wn, 1e-6f, y), reps), 3.0 * x.Length);
            var g = Rand(2048L * 2048);
            Report("gelu 4M", Time(() => Activations.Gelu(g), reps), 20.0 * g.Length);
        }
        return rows;
    }

    private static Timing Time(Action action, int reps)
    {
        action(); // warm-up: JIT, page faults, scratch buffers
        var times = new double[reps];
        var cpu = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            double cpu0 = CpuSeconds();
            long start = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            cpu[i] = CpuSeconds() - cpu0;
        }
        Array.Sort(times);
        Array.Sort(cpu);
        return new Timing(times[reps / 2], times[0], times[^1], reps, cpu[reps / 2]);
    }

    /// <summary>
    /// CPU seconds used by this process so far. On a shared machine, work / CPU time measures how
    /// well the code uses the cycles it actually got, independent of how many it was given.
    /// </summary>
    private static double CpuSeconds() => Environment.CpuUsage.TotalTime.TotalSeconds;

    // ---------------------------------------------------------------- PyTorch side

    private static JsonNode? RunTorch(List<MatShape> shapes, int reps, int threads, TextWriter log)
    {
        string? root = FindRepoRoot();
        if (root == null) { log.WriteLine("torch: repository root not found; skipped"); return null; }
        string script = Path.Combine(root, "tools", "bench", "torch_kernels.py");
        var distinct = shapes.Select(s => $"{s.M}x{s.K}x{s.N}").Distinct();
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { script, "--threads", threads.ToString(), "--reps", reps.ToString(), "--shapes", string.Join(",", distinct) })
            psi.ArgumentList.Add(a);
        log.WriteLine($"running {psi.FileName} {string.Join(' ', psi.ArgumentList)}");
        try
        {
            using var process = Process.Start(psi)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0) { log.WriteLine($"torch: exit {process.ExitCode}: {stderr.Result.Trim()}"); return null; }
            return JsonNode.Parse(stdout);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or JsonException)
        {
            log.WriteLine($"torch: {e.Message}");
            return null;
        }
    }

    private static string? FindRepoRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            var dir = new DirectoryInfo(start);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "SlowFast.sln"))) dir = dir.Parent;
            if (dir != null) return dir.FullName;
        }
        return null;
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; } catch (IOException) { return "?"; }
    }
}
