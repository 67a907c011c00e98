using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace SlowFast.Cli.Tests;

/// <summary><c>slowfast serve --log-format</c>: the request log as the real program writes it.</summary>
public class ServeCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void UnknownLogFormat_IsAOneLineError()
    {
        var r = SlowfastProcess.Run("serve", "--model", tiny.ModelDir, "--urls", "http://127.0.0.1:0", "--log-format", "xml");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--log-format must be text or json (got 'xml')", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    /// <summary>
    /// A BF16 checkpoint's vision tower is packed for bf16 arithmetic before the server listens (its first
    /// video question does not wait for it), and the log says how long that took; not with --no-packed-vision.
    /// </summary>
    [Fact]
    public async Task Bf16Tower_IsPackedBeforeTheServerListens()
    {
        string dir = Path.Combine(tiny.Root, "tiny-bf16-serve");
        var made = SlowfastProcess.Run("create-model", "--preset", "tiny", "--dtype", "bf16", "--out", dir, "--seed", "7", "--tokenizer", SlowfastProcess.TokenizerJson());
        Assert.True(made.ExitCode == 0, made.Stderr);
        const string packed = "vision: the tower's matrices packed at start-up in ";
        await using (var server = await ServeProcess.StartAsync("--model", dir, "--no-cache", "--precision", "bf16"))
            Assert.Equal(SlowFast.Tensors.Kernels.MatMul.BFloat16Supported, server.StartupMessages.Any(m => m.StartsWith(packed, StringComparison.Ordinal)));
        await using (var lean = await ServeProcess.StartAsync("--model", dir, "--no-cache", "--precision", "bf16", "--no-packed-vision"))
            Assert.DoesNotContain(lean.StartupMessages, m => m.StartsWith(packed, StringComparison.Ordinal));
    }

    /// <summary>The server packs a BF16 decoder at load for bf16 arithmetic and says so; not with --no-packed-decoder, nor in float32.</summary>
    [Fact]
    public async Task Bf16Decoder_IsPackedAtLoadUnlessAskedNotTo()
    {
        string dir = Path.Combine(tiny.Root, "tiny-bf16-serve-decoder");
        var made = SlowfastProcess.Run("create-model", "--preset", "tiny", "--dtype", "bf16", "--out", dir, "--seed", "7", "--tokenizer", SlowfastProcess.TokenizerJson());
        Assert.True(made.ExitCode == 0, made.Stderr);
        bool gemm = SlowFast.Tensors.Kernels.MatMul.BFloat16Supported;
        await using (var server = await ServeProcess.StartAsync("--model", dir, "--no-cache", "--precision", "bf16"))
            Assert.Contains(server.StartupMessages, m => m.StartsWith(gemm ? "decoder matrices packed for the bf16 GEMM in " : "decoder matrices not packed: this CPU has no", StringComparison.Ordinal));
        await using (var stored = await ServeProcess.StartAsync("--model", dir, "--no-cache", "--precision", "bf16", "--no-packed-decoder"))
            Assert.Contains("decoder matrices as stored", stored.StartupMessages);
        await using (var f32 = await ServeProcess.StartAsync("--model", dir, "--no-cache", "--precision", "f32"))
            Assert.Contains("decoder matrices as stored", f32.StartupMessages);
    }

    /// <summary>
    /// With <c>--log-format json</c> every line on standard error is a JSON object (the built-in JSON console
    /// formatter): the server's own lines, and one event per chat completion with its fields under "State".
    /// </summary>
    [Fact]
    public async Task JsonLogFormat_WritesOneJsonEventPerRequest()
    {
        await using var server = await ServeProcess.StartAsync("--model", tiny.ModelDir, "--no-cache");
        using var http = new HttpClient();
        var body = new JsonObject
        {
            ["model"] = "tiny", ["max_tokens"] = 2, ["temperature"] = 0,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
        };
        using var response = await http.PostAsJsonAsync(server.Url + "/v1/chat/completions", body);
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(200, (int)response.StatusCode);

        JsonObject e;
        do e = await server.NextLineAsync(); while (e["EventId"]!.GetValue<int>() != 1);
        Assert.Equal("SlowFast.Server.Requests", e["Category"]!.GetValue<string>());
        Assert.Equal("Information", e["LogLevel"]!.GetValue<string>());
        var state = e["State"]!;
        Assert.Equal(answer["id"]!.GetValue<string>(), state["RequestId"]!.GetValue<string>());
        Assert.Equal("tiny", state["Model"]!.GetValue<string>());
        Assert.Equal(200, state["Status"]!.GetValue<int>());
        Assert.Equal(answer["usage"]!["prompt_tokens"]!.GetValue<int>(), state["PromptTokens"]!.GetValue<int>());
        Assert.Equal(2, state["CompletionTokens"]!.GetValue<int>());
        Assert.Equal(0, state["Frames"]!.GetValue<int>());
        Assert.True(state["PrefillSeconds"]!.GetValue<double>() > 0);
    }
}
