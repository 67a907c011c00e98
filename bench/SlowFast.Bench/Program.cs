// SlowFast.NET benchmarks: each prints figures (and, where it says so, the same work done by
// PyTorch / PyAV in the same run). Run in Release: dotnet run -c Release --project bench/SlowFast.Bench -- <name> [options]
using SlowFast.Bench;

var benches = new Dictionary<string, (string Summary, Func<string[], int> Run)>
{
    ["kernels"] = ("FMA peak, bandwidth, matmul/GEMV/attention/conv kernels, a decoder layer and ConvNeXt blocks; ratio to PyTorch FP32/BF16 (--json, --reps N, --no-torch, --quick, --only TEXT)", KernelBench.Run),
    ["media"] = ("decode, sample and preprocess 64 frames of a 10-minute 1280x720 H.264 video; ratio to PyAV", MediaBench.Run),
    ["serve-load"] = ("the server in process on 127.0.0.1: tokens/s with 1 and N clients, time to first token of a follow-up (--model DIR|--preset tiny|small, --clients N, --queue N, --tokens N)", ServeLoadBench.Run),
};

if (args.Length == 0 || !benches.TryGetValue(args[0], out var bench))
{
    Console.Error.WriteLine("usage: dotnet run -c Release --project bench/SlowFast.Bench -- <benchmark> [options]");
    foreach (var (name, b) in benches) Console.Error.WriteLine($"  {name,-12} {b.Summary}");
    return args.Length == 0 ? 2 : 1;
}
return bench.Run(args[1..]);
