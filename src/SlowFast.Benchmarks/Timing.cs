using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SlowFast.Benchmarks;

/// <summary>
/// Seconds per call over several repetitions after a warm-up: the median (the figure every report
/// uses), the fastest and slowest repetition (the spread), and the median process CPU seconds per
/// call. On a shared, noisy machine the CPU seconds say how well the code used the cycles it was
/// actually given, independent of how many it was given.
/// </summary>
public sealed record Timing(double Median, double Min, double Max, int Reps, double CpuMedian)
{
    /// <summary>(max − min) / median: how noisy the repetitions were.</summary>
    public double Spread => Median > 0 ? (Max - Min) / Median : 0;

    /// <summary>
    /// Warm-up goes on for at least this long (up to <see cref="MaxWarmups"/> calls). The runtime first
    /// runs new code unoptimized and swaps in optimized code in the background once a method has been
    /// called often: a single warm-up call left 2048×3584×3584 bf16 products 5–20% slower on the next
    /// few calls (130–146 ms, then 122 ms), which moved the median of 5 repetitions.
    /// </summary>
    public static readonly TimeSpan MinWarmup = TimeSpan.FromSeconds(0.5);
    public const int MaxWarmups = 8;

    /// <summary>
    /// Runs <paramref name="action"/> untimed at least <paramref name="warmups"/> times and, unless
    /// that is 0, until <see cref="MinWarmup"/> has passed (JIT tiering, page faults, scratch
    /// buffers), then <paramref name="reps"/> times timed.
    /// </summary>
    public static Timing Measure(Action action, int reps, int warmups = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(reps, 1);
        WarmUp(action, warmups);
        var wall = new double[reps];
        var cpu = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            double cpu0 = CpuSeconds();
            long start = Stopwatch.GetTimestamp();
            action();
            wall[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            cpu[i] = CpuSeconds() - cpu0;
        }
        return FromSamples(wall, cpu);
    }

    /// <summary>Like <see cref="Measure"/> for work that needs fresh state per call: <paramref name="setup"/> runs untimed before each call.</summary>
    public static Timing Measure<T>(Func<T> setup, Action<T> action, int reps, int warmups = 1)
    {
        WarmUp(() => action(setup()), warmups);
        var wall = new double[reps];
        var cpu = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var state = setup();
            double cpu0 = CpuSeconds();
            long start = Stopwatch.GetTimestamp();
            action(state);
            wall[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            cpu[i] = CpuSeconds() - cpu0;
        }
        return FromSamples(wall, cpu);
    }

    private static void WarmUp(Action call, int warmups)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < warmups || (warmups > 0 && i < MaxWarmups && Stopwatch.GetElapsedTime(start) < MinWarmup); i++) call();
    }

    private static Timing FromSamples(double[] wall, double[] cpu)
    {
        var w = wall.Order().ToArray();
        var c = cpu.Order().ToArray();
        return new Timing(MedianOfSorted(w), w[0], w[^1], w.Length, MedianOfSorted(c));
    }

    /// <summary>The median of <paramref name="values"/> (the mean of the middle two for an even count).</summary>
    public static double MedianOf(IEnumerable<double> values) => MedianOfSorted(values.Order().ToArray());

    private static double MedianOfSorted(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : 0.5 * (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]);

    /// <summary>CPU seconds used by this process so far (all threads).</summary>
    public static double CpuSeconds() => Environment.CpuUsage.TotalTime.TotalSeconds;

    /// <summary>The timing's fields as JSON (seconds).</summary>
    public JsonObject ToJson() => new()
    {
        ["median_s"] = Median, ["min_s"] = Min, ["max_s"] = Max, ["spread"] = Spread, ["reps"] = Reps, ["cpu_s"] = CpuMedian,
    };

    /// <summary>"12.34 ms (min 12.00, max 13.10)".</summary>
    public string Describe()
    {
        (double scale, string unit) = Median >= 1 ? (1.0, "s") : (1e3, "ms");
        return $"{Median * scale:F2} {unit} (min {Min * scale:F2}, max {Max * scale:F2}, cpu {CpuMedian * scale:F2})";
    }
}
