using System.Text.Json;
using SlowFast.Benchmarks;

namespace SlowFast.Bench;

/// <summary>
/// `bench kernels [--json] [--reps N] [--no-torch] [--quick] [--only TEXT]`: the kernel part of
/// `slowfast bench` (src/SlowFast.Benchmarks): this machine's FMA peak and read bandwidth, the
/// compute kernels on model-sized shapes (median and spread after a warm-up), one decoder layer and
/// ConvNeXt blocks, each side by side with PyTorch (tools/bench/*.py) in the same run. --only keeps
/// the matrix shapes whose name contains TEXT (and skips the rest).
/// </summary>
public static class KernelBench
{
    public static int Run(string[] args)
    {
        bool json = args.Contains("--json");
        int reps = 5;
        int ri = Array.IndexOf(args, "--reps");
        if (ri >= 0 && ri + 1 < args.Length && int.TryParse(args[ri + 1], out int r) && r > 0) reps = r;
        int oi = Array.IndexOf(args, "--only");
        string? only = oi >= 0 && oi + 1 < args.Length ? args[oi + 1] : null;
        var options = new BenchOptions(Kernels: true, Model: false, Reps: reps, Torch: !args.Contains("--no-torch"), Quick: args.Contains("--quick"), Only: only);

        var doc = BenchRunner.Run(options, json ? Console.Error : Console.Out);
        Console.WriteLine(json ? doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : "\n" + BenchReport.ToMarkdown(doc));
        return 0;
    }
}
