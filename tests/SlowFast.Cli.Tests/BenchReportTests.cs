using System.Text.Json.Nodes;
using SlowFast.Benchmarks;

namespace SlowFast.Cli.Tests;

/// <summary>The report's arithmetic on figures given by hand (the figures themselves are the benchmark's).</summary>
public class BenchReportTests
{
    [Fact]
    public void ConvNextBlocksAreSetAgainstTheBf16PeakAndTheShareNeededForOneAndAHalfTimesTorch()
    {
        var doc = new JsonObject
        {
            ["kernels"] = new JsonObject
            {
                ["matmul"] = new JsonArray(),
                ["layers"] = new JsonArray
                {
                    new JsonObject
                    {
                        ["name"] = "convnext stem + block 36x36x1536", ["side"] = 36, ["dim"] = 1536,
                        ["ours"] = new JsonObject { ["median_s"] = 0.01, ["spread"] = 0.1 },
                        ["flops"] = 1e9, ["product_flops"] = 0.8e9, ["bf16_peak_gflops"] = 200.0,
                        ["torch_bf16_s"] = 0.02, ["ratio_vs_torch_bf16"] = 2.0, ["torch_bf16_products_s"] = 0.016,
                        ["ratios_vs_torch_bf16_by_round"] = new JsonArray(1.9, 2.0, 2.25),
                        ["torch_glibc_tunables"] = "glibc.malloc.trim_threshold=1",
                    },
                    // No products timed alone (an older torch side, or f32 arithmetic): no row in the peak table.
                    new JsonObject
                    {
                        ["name"] = "convnext stem + block 144x144x384", ["side"] = 144, ["dim"] = 384,
                        ["ours"] = new JsonObject { ["median_s"] = 0.05, ["spread"] = 0.1 }, ["flops"] = 2e9, ["torch_bf16_s"] = 0.2,
                    },
                },
            },
        };
        var md = BenchReport.ToMarkdown(doc);
        // 1 GFLOP in 10 ms = 100 GFLOP/s = 50% of 200; torch's block 20 ms = 25%; its products 0.8 GFLOP in 16 ms = 25%;
        // 1.5× torch's block is 13.3 ms: 75 GFLOP/s, 37.5%.
        Assert.Contains("| convnext stem + block 36x36x1536 | 1.90×, 2.00×, 2.25× | 50.0 | 25.0 | 16.0 | 25.0 | 37.5 |", md);
        Assert.Equal(1, md.Split("| convnext stem + block 144x144x384 |").Length - 1);   // in the layers table only
        Assert.Contains("needed for 1.5× torch bf16", md);
        Assert.Contains("PyTorch ran with `GLIBC_TUNABLES=glibc.malloc.trim_threshold=1`", md);
    }

    [Fact]
    public void PyTorchStartsWithMallocKeepingFreedMemoryUnlessTheUserSetTheirOwn()
    {
        string? saved = Environment.GetEnvironmentVariable("GLIBC_TUNABLES");
        try
        {
            Environment.SetEnvironmentVariable("GLIBC_TUNABLES", null);
            var psi = TorchRunner.StartInfo("torch_model.py", ["--threads", "2"]);
            Assert.Equal(TorchRunner.Python, psi.FileName);
            Assert.Equal(["torch_model.py", "--threads", "2"], psi.ArgumentList);
            Assert.Equal(TorchRunner.MallocTunables, psi.Environment["GLIBC_TUNABLES"]);
            Assert.Contains("glibc.malloc.mmap_threshold=", TorchRunner.MallocTunables);
            Assert.Contains("glibc.malloc.trim_threshold=", TorchRunner.MallocTunables);

            Environment.SetEnvironmentVariable("GLIBC_TUNABLES", "glibc.malloc.arena_max=1");
            Assert.Equal("glibc.malloc.arena_max=1", TorchRunner.StartInfo("torch_model.py", []).Environment["GLIBC_TUNABLES"]);
        }
        finally
        {
            Environment.SetEnvironmentVariable("GLIBC_TUNABLES", saved);
        }
    }
}
