using System.Diagnostics;

namespace SlowFast.Model.Vision;

/// <summary>
/// Where a <see cref="ConvNextTower"/>'s time goes: wall time and floating-point operations per
/// (stage, op kind), summed over the frames encoded while it was attached
/// (<see cref="ConvNextTower.Profile"/>). Every op is a whole parallel kernel call, so its wall time
/// is its cost; an op fused into a neighbour's call (e.g. LayerNorm into the next product's input
/// rounding) has no entry of its own and its time counts in that call's. Each cell also sums the
/// process's CPU seconds (all threads): on a shared machine the wall time says how many cycles the
/// op was given, the CPU seconds how many it used.
/// </summary>
public sealed class TowerProfile
{
    // Op kinds, in the order a frame meets them.
    public const string Stem = "stem (patchify, conv, norm)";
    public const string Downsample = "downsample (norm, patchify, conv)";
    public const string Depthwise = "depthwise conv";
    public const string Norm = "layernorm";
    /// <summary>The depthwise conv with the block's LayerNorm done in its tasks.</summary>
    public const string DepthwiseNorm = "depthwise conv + norm (fused)";
    public const string Fc1 = "fc1 C→4C";
    /// <summary>fc1 with the block's LayerNorm as it rounds its input rows and GELU on its output tiles, handed to fc2 as bfloat16 rows.</summary>
    public const string Fc1GeluBf16 = "norm + fc1 C→4C + gelu → bf16 (fused)";
    /// <summary>fc2 with the layer scale and residual add fused into its output tiles.</summary>
    public const string Fc2Fused = "fc2 4C→C + scale + residual (fused)";
    public const string Gelu = "gelu";
    public const string Fc2 = "fc2 4C→C";
    /// <summary>fc1 in int8, one scale per row and per channel (<see cref="ConvNextTower.MlpInt8"/>).</summary>
    public const string Fc1Int8 = "fc1 C→4C (int8)";
    /// <summary>fc2 in int8, one scale per row and per channel (<see cref="ConvNextTower.MlpInt8"/>).</summary>
    public const string Fc2Int8 = "fc2 4C→C (int8)";
    /// <summary>fc1 in int8 with GELU on its output tiles (<see cref="ConvNextTower.MlpInt8"/> with <see cref="ConvNextTower.FuseRowWork"/>).</summary>
    public const string Fc1GeluInt8 = "fc1 C→4C + gelu (int8, fused)";
    /// <summary>fc2 in int8 with the layer scale and residual add on its output tiles, which are never written out.</summary>
    public const string Fc2FusedInt8 = "fc2 4C→C + scale + residual (int8, fused)";
    public const string ScaleResidual = "layer scale + residual";
    public const string CopyOut = "copy out";
    public const string Projector = "projector";

    /// <summary>One (stage, op) cell: wall seconds, process CPU seconds and flops summed over calls.</summary>
    public sealed record Entry(int Stage, string Op, double Seconds, double CpuSeconds, double Flops, long Calls);

    /// <summary>A point in time on both clocks.</summary>
    public struct Clock
    {
        public long Wall;
        public TimeSpan Cpu;
        public static Clock Now() => new() { Wall = Stopwatch.GetTimestamp(), Cpu = Environment.CpuUsage.TotalTime };
    }

    private readonly List<Entry> _entries = [];
    private readonly Dictionary<(int, string), int> _index = [];

    /// <summary>Frames encoded while attached.</summary>
    public int Frames { get; internal set; }

    /// <summary>The cells in first-recorded order.</summary>
    public IReadOnlyList<Entry> Entries => _entries;

    /// <summary>Adds the time since <paramref name="since"/> to (stage, op) and moves <paramref name="since"/> to now.</summary>
    public void Add(int stage, string op, ref Clock since, double flops)
    {
        var now = Clock.Now();
        Add(stage, op, (now.Wall - since.Wall) / (double)Stopwatch.Frequency, (now.Cpu - since.Cpu).TotalSeconds, flops);
        since = now;
    }

    /// <summary>Adds wall and CPU seconds and flops to (stage, op).</summary>
    public void Add(int stage, string op, double seconds, double cpuSeconds, double flops, long calls = 1)
    {
        if (_index.TryGetValue((stage, op), out int i))
        {
            var e = _entries[i];
            _entries[i] = e with { Seconds = e.Seconds + seconds, CpuSeconds = e.CpuSeconds + cpuSeconds, Flops = e.Flops + flops, Calls = e.Calls + calls };
        }
        else
        {
            _index[(stage, op)] = _entries.Count;
            _entries.Add(new Entry(stage, op, seconds, cpuSeconds, flops, calls));
        }
    }

    /// <summary>Sum of all cells' seconds.</summary>
    public double TotalSeconds => _entries.Sum(e => e.Seconds);
    /// <summary>Sum of all cells' flops.</summary>
    public double TotalFlops => _entries.Sum(e => e.Flops);

    public void Clear()
    {
        _entries.Clear();
        _index.Clear();
        Frames = 0;
    }
}
