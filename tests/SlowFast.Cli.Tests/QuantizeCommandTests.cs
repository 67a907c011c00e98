using System.Text.Json.Nodes;

namespace SlowFast.Cli.Tests;

/// <summary>`slowfast quantize` and `--quantize` end to end on the tiny checkpoint, with the real program.</summary>
public class QuantizeCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void Quantize_writes_a_checkpoint_that_ask_answers_from_like_quantizing_at_load()
    {
        string outDir = Path.Combine(tiny.Root, "q4-" + Guid.NewGuid().ToString("N"));
        var q = SlowfastProcess.Run("quantize", "--model", tiny.ModelDir, "--to", "q4", "--out", outDir);
        Assert.Equal(0, q.ExitCode);
        Assert.Contains("matrices", q.Stderr);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!;
        Assert.Equal("q4_0", (string?)config["quantization"]!["format"]);

        string[] question = ["--max-new-tokens", "6", "--json", "What is it?"];
        var stored = SlowfastProcess.Run(["ask", "--model", outDir, .. question]);
        var atLoad = SlowfastProcess.Run(["ask", "--model", tiny.ModelDir, "--quantize", "q4", .. question]);
        Assert.Equal(0, stored.ExitCode);
        Assert.Equal(0, atLoad.ExitCode);
        Assert.Equal(6, (int)JsonNode.Parse(stored.Stdout)!["tokens"]!["generated"]!);
        Assert.Equal((string?)JsonNode.Parse(stored.Stdout)!["answer"], (string?)JsonNode.Parse(atLoad.Stdout)!["answer"]);
    }

    [Fact]
    public void Bad_formats_and_quantized_inputs_are_one_line_errors()
    {
        var r = SlowfastProcess.Run("quantize", "--model", tiny.ModelDir, "--to", "q5", "--out", Path.Combine(tiny.Root, "never"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Single(r.StderrLines);
        Assert.Contains("q5", r.Stderr);
        var ask = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--quantize", "int3", "Hi");
        Assert.NotEqual(0, ask.ExitCode);
        Assert.Contains("int3", ask.Stderr);
    }
}
