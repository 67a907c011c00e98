using System.Text;
using System.Text.Json.Nodes;

namespace SlowFast.Server.Tests;

/// <summary><c>stop</c> strings, and the frame count given vLLM's and SGLang's ways.</summary>
[Collection(ServerCollection.Name)]
public sealed class StopAndFramesTests(ServerFixture f)
{
    private const string Question = "Describe the scene.";
    private const int Tokens = 8;

    /// <summary>A stop string from the middle of the greedy answer, and the answer cut just before its first occurrence.</summary>
    private (string Stop, string Cut) StopInAnswer()
    {
        string full = f.DirectAnswer(Question, Tokens).Text;
        Assert.True(full.Length >= 4, $"greedy answer too short: '{full}'");
        string stop = full.Substring(full.Length / 2, 2);
        return (stop, full[..full.IndexOf(stop, StringComparison.Ordinal)]);
    }

    private static JsonObject Ask(JsonNode? stop)
    {
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User(Question)), maxTokens: Tokens, frames: null);
        request["stop"] = stop;
        return request;
    }

    [Fact]
    public async Task Stop_CutsTheAnswer()
    {
        var (stop, cut) = StopInAnswer();
        foreach (var form in new JsonNode[] { JsonValue.Create(stop), new JsonArray("\u0001never\u0002", stop) })
        {
            var (status, body) = await f.PostAsync(Ask(form));
            Assert.Equal(200, status);
            var choice = body["choices"]![0]!;
            Assert.Equal(cut, choice["message"]!["content"]!.GetValue<string>());
            Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
            Assert.True(body["usage"]!["prompt_tokens"]!.GetValue<int>() > 0);
        }
    }

    [Fact]
    public async Task Stop_Streaming_NeverSendsTextPastIt()
    {
        var (stop, cut) = StopInAnswer();
        var request = Ask(new JsonArray(stop));
        request["stream"] = true;
        using var message = new HttpRequestMessage(HttpMethod.Post, f.BaseUrl + "/v1/chat/completions")
        { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        var events = new List<string>();
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            string? line;
            while ((line = await reader.ReadLineAsync()) != null)
                if (line.Length > 0) events.Add(line["data: ".Length..]);
        }
        Assert.Equal("[DONE]", events[^1]);
        var choices = events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
        var text = new StringBuilder();
        foreach (var c in choices)
        {
            if (c["delta"]!["content"] is { } content) text.Append(content.GetValue<string>());
            Assert.StartsWith(text.ToString(), cut); // what was sent is always a prefix of the cut answer
        }
        Assert.Equal(cut, text.ToString());
        Assert.Equal("stop", choices[^1]["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task BadStop_Is400()
    {
        foreach (var bad in new JsonNode[] { JsonValue.Create(3), new JsonArray("a", "b", "c", "d", "e"), new JsonArray("a", 1) })
        {
            var (status, body) = await f.PostAsync(Ask(bad));
            Assert.Equal(400, status);
            Assert.Equal("stop", body["error"]!["param"]!.GetValue<string>());
        }
    }

    private async Task<(int Status, JsonObject Body)> AskAboutVideo(int? frames, int? numFrames = null, int? maxFrames = null)
    {
        var part = ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath));
        if (maxFrames is { } m) part["video_url"]!["max_frames"] = m;
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", part)), maxTokens: 1, frames: frames);
        if (numFrames is { } n) request["media_io_kwargs"] = new JsonObject { ["video"] = new JsonObject { ["num_frames"] = n } };
        return await f.PostAsync(request);
    }

    private static int PromptTokens((int Status, JsonObject Body) r)
    {
        Assert.Equal(200, r.Status);
        return r.Body["usage"]!["prompt_tokens"]!.GetValue<int>();
    }

    [Fact]
    public async Task VllmNumFrames_AndSglangMaxFrames_AreFrames()
    {
        int eight = PromptTokens(await AskAboutVideo(8));
        // (The tiny model's prompt length does not change with the frame count; the 400s below show the count is read.)
        Assert.Equal(eight, PromptTokens(await AskAboutVideo(null, numFrames: 8)));
        Assert.Equal(eight, PromptTokens(await AskAboutVideo(null, maxFrames: 8)));
        // Beyond the server's --max-frames (8 in the fixture): 400.
        Assert.Equal(400, (await AskAboutVideo(null, numFrames: 9)).Status);
        Assert.Equal(400, (await AskAboutVideo(null, maxFrames: 9)).Status);
    }
}
