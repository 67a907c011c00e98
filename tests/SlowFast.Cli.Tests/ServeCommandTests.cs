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
