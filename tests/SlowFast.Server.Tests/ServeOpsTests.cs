using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Server.Tests;

/// <summary>Operating the server, continued: vision metrics, the time limit, over-long prompts, graceful shutdown.</summary>
[Collection(ServerCollection.Name)]
public sealed class ServeOpsTests(ServerFixture f)
{
    private static StringContent Json(JsonObject body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private static async Task<double> MetricAsync(HttpClient http, string baseUrl, string series)
    {
        string text = await http.GetStringAsync(baseUrl + "/metrics");
        foreach (var line in text.Split('\n'))
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
                return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        return double.NaN;
    }

    private static async Task WaitIdle(ChatBackend backend)
    {
        var sw = Stopwatch.StartNew();
        while (backend.Model.Engine.Stats.Running != 0 || backend.Model.Engine.Stats.Waiting != 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), "the engine did not go idle");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task VisionSecondsPerFrame_IsObservedWhenAVideoIsEncoded_NotOnACacheHit()
    {
        // A server of its own: its cache is empty, whatever the other tests sent.
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MediaRoot = f.MediaRoot, MaxFrames = 8, Precision = MatMulPrecision.Float32,
        });
        await app.StartAsync();
        string url = app.Urls.First();
        using var http = new HttpClient();
        Assert.Equal(0, await MetricAsync(http, url, "slowfast_vision_seconds_per_frame_count"));

        var body = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens? (vision metric)", ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath)))), maxTokens: 2);
        using (var r = await http.PostAsync(url + "/v1/chat/completions", Json(body))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal(1, await MetricAsync(http, url, "slowfast_vision_seconds_per_frame_count"));
        Assert.True(await MetricAsync(http, url, "slowfast_vision_seconds_per_frame_sum") > 0);

        using (var r = await http.PostAsync(url + "/v1/chat/completions", Json(body))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal(1, await MetricAsync(http, url, "slowfast_video_cache_hits_total"));
        Assert.Equal(1, await MetricAsync(http, url, "slowfast_vision_seconds_per_frame_count"));
        await app.StopAsync();
    }

    [Fact]
    public async Task RequestTimeLimit_Is504WithAnErrorObject_AndTheEngineGoesIdle()
    {
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", RequestTimeLimit = TimeSpan.FromMilliseconds(300),
        });
        await app.StartAsync();
        var backend = app.Services.GetRequiredService<ChatBackend>();
        using var http = new HttpClient();
        var body = ServerFixture.Request(new JsonArray(ServerFixture.User("Talk for a long time.")), maxTokens: 100_000, frames: null);
        using var r = await http.PostAsync(app.Urls.First() + "/v1/chat/completions", Json(body));
        Assert.Equal(HttpStatusCode.GatewayTimeout, r.StatusCode);
        var error = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("timeout", error["code"]!.GetValue<string>());
        Assert.Equal("timeout_error", error["type"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        await WaitIdle(backend);
        await app.StopAsync();
    }

    // Several limits, so the limit falls at different points of the chunks' writes: the time limit must not
    // cancel a write in flight, which Kestrel answers by resetting the connection (no timeout event).
    [Theory]
    [InlineData(1.5)]
    [InlineData(2.0)]
    [InlineData(2.5)]
    public async Task RequestTimeLimit_DuringAStream_SendsAnErrorEventAndEndsTheStream(double limitSeconds)
    {
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", RequestTimeLimit = TimeSpan.FromSeconds(limitSeconds),
        });
        await app.StartAsync();
        var backend = app.Services.GetRequiredService<ChatBackend>();
        using var http = new HttpClient();
        var body = ServerFixture.Request(new JsonArray(ServerFixture.User("Talk for a long time, streaming.")), maxTokens: 100_000, frames: null);
        body["stream"] = true;
        using var r = await http.PostAsync(app.Urls.First() + "/v1/chat/completions", Json(body));
        // The tiny model's first tokens come well within the limit, so the stream has started.
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.StartsWith("text/event-stream", r.Content.Headers.ContentType!.MediaType);
        var events = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Trim()).Where(e => e.StartsWith("data: ", StringComparison.Ordinal)).Select(e => e["data: ".Length..]).ToList();
        Assert.True(events.Count >= 2);
        Assert.DoesNotContain("[DONE]", events);
        var last = JsonNode.Parse(events[^1])!;
        Assert.Equal("timeout", last["error"]!["code"]!.GetValue<string>());
        Assert.Equal("chat.completion.chunk", JsonNode.Parse(events[0])!["object"]!.GetValue<string>());
        await WaitIdle(backend);
        await app.StopAsync();
    }

    [Fact]
    public async Task PromptLongerThanTheContext_Is400()
    {
        string huge = string.Concat(Enumerable.Repeat("hello world ", 40_000));
        var (status, body) = await f.PostAsync(ServerFixture.Request(new JsonArray(ServerFixture.User(huge)), maxTokens: 1, frames: null));
        Assert.Equal(400, status);
        var error = body["error"]!;
        Assert.Equal("context_length_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        await WaitIdle(f.Backend);
    }

    [Fact]
    public async Task Stopping_LetsARequestInFlightFinish()
    {
        // Long enough that the answer is still being generated when the server is told to stop, even on a quiet
        // machine (the tiny model decodes a token in well under a millisecond there).
        const int Tokens = 1024;
        var expected = f.DirectAnswer("Tell a story before the shutdown.", Tokens);
        var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", Precision = MatMulPrecision.Float32,
        });
        await app.StartAsync();
        var backend = app.Services.GetRequiredService<ChatBackend>();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        var body = ServerFixture.Request(new JsonArray(ServerFixture.User("Tell a story before the shutdown.")), maxTokens: Tokens, frames: null);
        var request = http.PostAsync(app.Urls.First() + "/v1/chat/completions", Json(body));

        // Once the engine has it, stop the server while it is generating.
        var sw = Stopwatch.StartNew();
        while (backend.Model.Engine.Stats.Running == 0 && !request.IsCompleted)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30));
            await Task.Delay(1);
        }
        Assert.False(request.IsCompleted, "the request finished before the server was stopped");
        var stopping = app.StopAsync();

        using var response = await request;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(expected.Text, answer["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(Tokens, answer["usage"]!["completion_tokens"]!.GetValue<int>());
        await stopping;
        await app.DisposeAsync();
    }
}
