using System.Net.Http.Json;
using System.Text;
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

    /// <summary>
    /// <c>serve --quantize q4</c> answers a greedy chat completion with the tokens <c>ask --quantize q4</c>
    /// gives for the same prompt (same template: same prompt token count), and a malformed request is a 400.
    /// </summary>
    [Fact]
    public async Task Serve_with_quantize_answers_as_ask_with_quantize()
    {
        var ask = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--quantize", "q4", "--max-new-tokens", "4", "--temperature", "0", "--json", "Hi");
        Assert.Equal(0, ask.ExitCode);
        var asked = JsonNode.Parse(ask.Stdout)!;

        await using var server = await ServeProcess.StartAsync("--model", tiny.ModelDir, "--quantize", "q4", "--no-cache");
        using var http = new HttpClient();
        var body = new JsonObject
        {
            ["model"] = "tiny", ["max_tokens"] = 4, ["temperature"] = 0,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
        };
        using var response = await http.PostAsJsonAsync(server.Url + "/v1/chat/completions", body);
        Assert.Equal(200, (int)response.StatusCode);
        var served = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal((int)asked["tokens"]!["text"]!, (int)served["usage"]!["prompt_tokens"]!);
        Assert.Equal((string?)asked["answer"], (string?)served["choices"]![0]!["message"]!["content"]);

        using var malformed = await http.PostAsync(server.Url + "/v1/chat/completions", new StringContent("{\"messages\": [", Encoding.UTF8, "application/json"));
        Assert.Equal(400, (int)malformed.StatusCode);
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
        var serve = SlowfastProcess.Run("serve", "--model", tiny.ModelDir, "--quantize", "int3", "--urls", "http://127.0.0.1:0");
        Assert.NotEqual(0, serve.ExitCode);
        Assert.Contains("int3", serve.Stderr);
        Assert.DoesNotContain("   at ", serve.Stderr);
    }
}
