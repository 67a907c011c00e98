using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Text.Json.Nodes;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Benchmarks;

/// <summary>
/// What this machine can do at best, measured here and now: the float32 FMA peak (a register-only
/// loop of independent fused multiply-adds, on one core and on every kernel thread at once) and
/// the memory read bandwidth (all kernel threads streaming a buffer far larger than the caches) and,
/// where the CPU has AVX512-BF16, the bfloat16 peak: a register-only loop, on every kernel thread, of
/// the instruction the bfloat16 GEMM's tiles use here (vdpbf16ps, or the FMA where
/// <see cref="Bf16TileKernel.Tiles"/> widens the operands instead). Kernel throughput is reported as a
/// share of these.
/// </summary>
public sealed unsafe record MachineLimits(int Threads, bool HasVector512, double FmaPeakOneCore, double FmaPeakAll,
    double FmaPerCpuSecond, double ReadBandwidthGBs, string LoadAverage)
{
    /// <summary>
    /// GFLOP/s of the bfloat16 tiles' instruction in a loop on all kernel threads (<see cref="MeasureBf16Peak(long, int)"/>);
    /// 0 where the CPU has no AVX512-BF16.
    /// </summary>
    public double Bf16PeakAll { get; init; }

    /// <summary>GFLOP/s of the vdpbf16ps loop on all kernel threads (the same as <see cref="Bf16PeakAll"/> where the tiles use it).</summary>
    public double DotPeakAll { get; init; }

    /// <summary>What the bfloat16 tiles run on this machine, in words ("" without AVX512-BF16).</summary>
    public static string Bf16TilesDescription => !Bf16PeakKernel.IsSupported ? ""
        : Bf16TileKernel.Tiles == Bf16TileKernel.Arithmetic.WidenedFma
            ? $"FMA on operands widened to float32 (a vdpbf16ps loop measured {1 / Bf16TileKernel.MeasuredFmaToDotRatio:F2}× the FMA loop's flops)"
            : "vdpbf16ps";

    /// <param name="quick">Fewer repetitions and a smaller (still cache-busting) bandwidth buffer.</param>
    public static MachineLimits Measure(bool quick = false)
    {
        int threads = KernelThreads.Count;
        int reps = quick ? 5 : 30;
        long iterations = quick ? 500_000 : 2_000_000;
        // One core and all threads in turn, best of each: a burst of other work (the runtime compiling
        // in the background just after start, another tenant) then spoils a few samples of each, not
        // every sample of one of them.
        double* seconds = stackalloc double[threads];
        var job = new PeakJob { Iterations = iterations, Seconds = seconds };
        KernelThreads.For(threads, &job, &FmaLoop); // warm-up / JIT
        double one = 0, all = 0, perCpu = 0;
        for (int rep = 0; rep < reps; rep++)
        {
            one = Math.Max(one, FmaRate(&job, 1, out double cpuRate));
            perCpu = Math.Max(perCpu, cpuRate);
            all = Math.Max(all, FmaRate(&job, threads, out _));
        }
        double bandwidth = MeasureBandwidth(quick ? 256L << 20 : 1L << 30, quick ? 4 : 16);
        return new MachineLimits(threads, System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, one, all, perCpu, bandwidth, ReadLoadAverage())
        {
            Bf16PeakAll = MeasureBf16Peak(iterations, reps),
            DotPeakAll = MeasureBf16Peak(iterations, reps, out _, dotProduct: true),
        };
    }

    /// <summary>
    /// The bfloat16 peak now: best of <paramref name="reps"/> runs, on all kernel threads, of a loop of the
    /// instruction the bfloat16 tiles use here (vdpbf16ps, or the FMA where they widen their operands; 0
    /// without AVX512-BF16). Measured again next to a kernel, it is the ceiling that kernel is judged
    /// against in the same minute of a shared machine.
    /// </summary>
    public static double MeasureBf16Peak(long trips, int reps) => MeasureBf16Peak(trips, reps, out _);

    /// <summary>
    /// Also gives the best GFLOP per process CPU-second of those runs: one core's peak, whatever share
    /// of the machine this process got (the ceiling for figures per CPU-second). <paramref name="dotProduct"/>
    /// measures the vdpbf16ps loop whatever the tiles use.
    /// </summary>
    public static double MeasureBf16Peak(long trips, int reps, out double perCpuSecond, bool dotProduct = false)
    {
        perCpuSecond = 0;
        if (!Bf16PeakKernel.IsSupported) return 0;
        bool fma = !dotProduct && Bf16TileKernel.Tiles == Bf16TileKernel.Arithmetic.WidenedFma;
        double flopsPerTrip = fma ? Bf16PeakKernel.FlopsPerTrip / 2.0 : Bf16PeakKernel.FlopsPerTrip;
        int threads = KernelThreads.Count;
        double* seconds = stackalloc double[threads];
        var job = new PeakJob { Iterations = trips, Seconds = seconds };
        delegate*<void*, int, void> loop = fma ? &FmaTilesLoop : &Bf16Loop;
        KernelThreads.For(threads, &job, loop); // generates the code
        double best = 0;
        for (int rep = 0; rep < reps; rep++)
        {
            double cpu0 = Timing.CpuSeconds();
            KernelThreads.For(threads, &job, loop);
            double cpu = Timing.CpuSeconds() - cpu0;
            double rate = 0;
            for (int t = 0; t < threads; t++) rate += trips * flopsPerTrip / seconds[t] / 1e9;
            best = Math.Max(best, rate);
            if (cpu > 0) perCpuSecond = Math.Max(perCpuSecond, threads * trips * flopsPerTrip / cpu / 1e9);
        }
        return best;
    }

    private static void Bf16Loop(void* context, int index)
    {
        ref PeakJob job = ref *(PeakJob*)context;
        long start = Stopwatch.GetTimestamp();
        Bf16PeakKernel.Run(job.Iterations);
        job.Seconds[index] = Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static void FmaTilesLoop(void* context, int index)
    {
        ref PeakJob job = ref *(PeakJob*)context;
        long start = Stopwatch.GetTimestamp();
        Bf16PeakKernel.RunFma(job.Iterations);
        job.Seconds[index] = Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public JsonObject ToJson() => new()
    {
        ["threads"] = Threads,
        ["vector512"] = HasVector512,
        ["load_average"] = LoadAverage,
        ["fma_peak_gflops_one_core"] = FmaPeakOneCore,
        ["fma_peak_gflops_all"] = FmaPeakAll,
        ["fma_peak_gflop_per_cpu_second"] = FmaPerCpuSecond,
        ["read_bandwidth_gb_s"] = ReadBandwidthGBs,
        ["bf16_peak_gflops_all"] = Bf16PeakAll,
        ["vdpbf16ps_peak_gflops_all"] = DotPeakAll,
        ["bf16_tiles"] = Bf16TilesDescription,
    };

    public string Describe() =>
        $"{Threads} threads (Vector512 {(HasVector512 ? "yes" : "no")}, load average {LoadAverage}): FMA peak {FmaPeakOneCore:F1} GFLOP/s on one core, " +
        $"{FmaPeakAll:F1} GFLOP/s on {Threads} threads, {FmaPerCpuSecond:F1} GFLOP per CPU-second; read bandwidth {ReadBandwidthGBs:F1} GB/s" +
        (Bf16PeakAll > 0 ? $"; bf16 peak {Bf16PeakAll:F1} GFLOP/s on {Threads} threads" : "") +
        (Bf16PeakAll > 0 && Bf16TileKernel.Tiles == Bf16TileKernel.Arithmetic.WidenedFma
            ? $" (the bfloat16 tiles run {Bf16TilesDescription}: the FMA loop's rate; vdpbf16ps loop {DotPeakAll:F1})" : "");

    public static string ReadLoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return "?"; }
    }

    // ------------------------------------------------------------------ FMA peak

    private struct PeakJob { public long Iterations; public double Sink; public double* Seconds; }

    /// <summary>
    /// GFLOP/s of one short run of <paramref name="job"/> on <paramref name="threads"/> threads, and its
    /// GFLOP per CPU-second. Each thread times its own loop and the rates add up: a thread that starts
    /// a little late (woken from sleep) would otherwise count as a slower machine.
    /// </summary>
    private static double FmaRate(PeakJob* job, int threads, out double perCpuSecond)
    {
        double flopsPerThread = job->Iterations * 16.0 * Vector512<float>.Count * 2;
        double cpu0 = Timing.CpuSeconds();
        KernelThreads.For(threads, job, &FmaLoop);
        double cpu = Timing.CpuSeconds() - cpu0;
        perCpuSecond = cpu > 0 ? threads * flopsPerThread / cpu / 1e9 : 0;
        double rate = 0;
        for (int t = 0; t < threads; t++) rate += flopsPerThread / job->Seconds[t] / 1e9;
        return rate;
    }

    private static void FmaLoop(void* context, int index)
    {
        ref PeakJob job = ref *(PeakJob*)context;
        long start = Stopwatch.GetTimestamp();
        var m = Vector512.Create(0.999999f);
        var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
        Vector512<float> c8 = c0, c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
        for (long i = 0; i < job.Iterations; i++)
        {
            // 16 independent chains: enough to cover the FMA latency on two ports.
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
        if (Vector512.Sum(sum) == 12345f) job.Sink += 1; // keeps the loop from being optimized away
        job.Seconds[index] = Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    // ------------------------------------------------------------------ bandwidth

    private struct ReadJob { public float* Data; public long PerTask; public float Sink; }

    /// <summary>Read bandwidth over a <paramref name="bytes"/> buffer with all kernel threads; best of several passes, GB/s.</summary>
    private static double MeasureBandwidth(long bytes, int passes)
    {
        long count = bytes / sizeof(float);
        var buffer = GC.AllocateUninitializedArray<float>(checked((int)count), pinned: true);
        new Span<float>(buffer).Fill(1f); // touch every page before timing
        fixed (float* p = buffer)
        {
            nint at = (nint)p;
            var t = Timing.Measure(() => ReadPass((float*)at, count), passes, warmups: 0);
            return count * 4.0 / t.Min / 1e9;
        }
    }

    /// <summary>
    /// Times plain reads of a fresh <paramref name="bytes"/> buffer (random contents) with all kernel
    /// threads: what streaming that many bytes costs right now. The machine's bandwidth drifts (other
    /// tenants: 30 to 53 GB/s within one minute here), so a memory-bound kernel is best judged against
    /// this, measured next to it, rather than against the best pass of <see cref="Measure"/>.
    /// </summary>
    public static Timing TimeRead(long bytes, int reps)
    {
        long count = bytes / sizeof(float);
        var buffer = RandomData.Floats(count, 1f, 77);
        fixed (float* p = buffer)
        {
            nint at = (nint)p;
            return Timing.Measure(() => ReadPass((float*)at, count), reps);
        }
    }

    /// <summary>One read of <paramref name="count"/> floats, split over the kernel threads (a tail under 64 floats a task is left out).</summary>
    private static void ReadPass(float* p, long count)
    {
        int tasks = KernelThreads.Count * 4;
        var job = new ReadJob { Data = p, PerTask = count / tasks / 64 * 64 };
        KernelThreads.For(tasks, &job, &ReadLoop);
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
}
