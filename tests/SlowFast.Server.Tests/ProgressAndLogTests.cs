using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;

namespace SlowFast.Server.Tests;

/// <summary>The vision tower's progress inside a stream (opt-in), and the one structured log event of each request.</summary>
[Collection(ServerCollection.Name)]
public sealed class ProgressAndLogTests(ServerFixture f)
{
    /// <summary>
    /// A streamed question about the fixture's video sampled at <paramref name="fps"/> (10 fps video; each rate
    /// is a cache key of its own, so a test's first request encodes the video).
    /// </summary>
    private static JsonObject StreamedVideoQuestion(string url, double fps, bool progress, int maxTokens = 3)
    {
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", ServerFixture.VideoPart(url))), maxTokens, frames: null);
        request["fps"] = fps;
        request["stream"] = true;
        request["stream_options"] = new JsonObject { ["include_usage"] = true, ["include_progress"] = progress };
        return request;
    }

    /// <summary>The data of every event of a streamed answer, in order.</summary>
    private async Task<List<string>> EventsAsync(JsonObject request)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, f.BaseUrl + "/v1/chat/completions")
        { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.Length > 0) events.Add(line["data: ".Length..]);
        return events;
    }

    [Fact]
    public async Task IncludeProgress_SendsAChunkPerEncodedFrame_BeforeTheAnswer_AndNothingOnACacheHit()
    {
        string url = ServerFixture.FileUrl(f.VideoPath);
        // fps 3.3: every round(10 / 3.3) = 3rd frame of 10: frames 0, 3, 6, 9.
        var events = await EventsAsync(StreamedVideoQuestion(url, 3.3, progress: true));
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!.AsObject()).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());

        var progress = chunks.Where(c => c.ContainsKey("slowfast_progress")).ToList();
        Assert.Equal([0, 1, 2, 3, 4], progress.Select(c => c["slowfast_progress"]!["frames_done"]!.GetValue<int>()));
        Assert.All(progress, c =>
        {
            Assert.Equal(4, c["slowfast_progress"]!["frames"]!.GetValue<int>());
            Assert.Equal("vision", c["slowfast_progress"]!["stage"]!.GetValue<string>());
            Assert.Empty(c["choices"]!.AsArray()); // nothing an OpenAI client would read as text
        });
        // All of it before the first piece of text, right after the role chunk.
        int firstText = chunks.FindIndex(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["delta"]!["content"] is { } t && t.GetValue<string>().Length > 0);
        Assert.Equal(1, chunks.IndexOf(progress[0]));
        Assert.True(chunks.IndexOf(progress[^1]) < firstText);
        string text = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? ""));

        var usage = chunks[^1]["usage"]!["slowfast"]!;
        Assert.Equal(4, usage["frames"]!.GetValue<int>());
        Assert.False(usage["video_from_cache"]!.GetValue<bool>());
        Assert.True(usage["vision_seconds"]!.GetValue<double>() > 0);
        Assert.True(usage["media_decode_seconds"]!.GetValue<double>() > 0);

        // The same question again: the video comes from the cache, so no progress; the same answer.
        var again = (await EventsAsync(StreamedVideoQuestion(url, 3.3, progress: true)))[..^1].Select(e => JsonNode.Parse(e)!.AsObject()).ToList();
        Assert.DoesNotContain(again, c => c.ContainsKey("slowfast_progress"));
        Assert.True(again[^1]["usage"]!["slowfast"]!["video_from_cache"]!.GetValue<bool>());
        Assert.Equal(0, again[^1]["usage"]!["slowfast"]!["vision_seconds"]!.GetValue<double>());
        Assert.Equal(text, string.Concat(again.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? "")));

        // Not asked for: a video that is encoded (another rate, another cache key) sends no progress.
        var plain = await EventsAsync(StreamedVideoQuestion(url, 3.4, progress: false));
        Assert.DoesNotContain(plain, e => e.Contains("slowfast_progress", StringComparison.Ordinal));
        Assert.False(JsonNode.Parse(plain[^2])!["usage"]!["slowfast"]!["video_from_cache"]!.GetValue<bool>());
    }

    /// <summary>
    /// The official OpenAI .NET client reads a stream with progress chunks as any other: its request is
    /// rewritten on the way (the client has no video part nor this extension) to ask about the video with
    /// progress, and the answer it reads is the server's answer to that request.
    /// </summary>
    [Fact]
    public async Task OfficialOpenAiClient_ToleratesProgressChunks()
    {
        string url = ServerFixture.FileUrl(f.VideoPath);
        var rewrite = new AskAboutVideoWithProgress(url, fps: 3.6);
        var client = new ChatClient(ServerFixture.ModelId, new ApiKeyCredential("unused"), new OpenAIClientOptions
        {
            Endpoint = new Uri(f.BaseUrl + "/v1"),
            Transport = new HttpClientPipelineTransport(new HttpClient(rewrite)),
        });
        var text = new StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("What happens?")],
                           new ChatCompletionOptions { MaxOutputTokenCount = 3, Temperature = 0 }))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(5, rewrite.ProgressChunks); // 0..4 of 4 frames went past the client
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, finish);

        // The same request, not streamed (the video now from the cache): the same answer.
        var request = StreamedVideoQuestion(url, 3.6, progress: false);
        request.Remove("stream");
        request.Remove("stream_options");
        var (status, body) = await f.PostAsync(request);
        Assert.Equal(200, status);
        Assert.Equal(body["choices"]![0]!["message"]!["content"]!.GetValue<string>(), text.ToString());
        if (usage != null) Assert.Equal(body["usage"]!["prompt_tokens"]!.GetValue<int>(), usage.InputTokenCount);
    }

    /// <summary>Adds the video, fps and <c>include_progress</c> to the client's request; counts the progress chunks of the answer.</summary>
    private sealed class AskAboutVideoWithProgress(string videoUrl, double fps) : DelegatingHandler(new HttpClientHandler())
    {
        public int ProgressChunks { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = JsonNode.Parse(await request.Content!.ReadAsStringAsync(cancellationToken))!.AsObject();
            var streamOptions = body["stream_options"] as JsonObject ?? new JsonObject();
            streamOptions["include_progress"] = true;
            body["stream_options"] = streamOptions;
            body["fps"] = fps;
            var user = body["messages"]![0]!.AsObject();
            var content = user["content"] is JsonArray parts ? parts
                : new JsonArray(new JsonObject { ["type"] = "text", ["text"] = user["content"]!.GetValue<string>() });
            user["content"] = null;
            content.Add(ServerFixture.VideoPart(videoUrl));
            user["content"] = content;
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");

            var response = await base.SendAsync(request, cancellationToken);
            string events = await response.Content.ReadAsStringAsync(cancellationToken);
            ProgressChunks = events.Split('\n').Count(l => l.Contains("\"slowfast_progress\"", StringComparison.Ordinal));
            response.Content = new StringContent(events, Encoding.UTF8, "text/event-stream");
            return response;
        }
    }

    /// <summary>
    /// One log event per chat completion (answered, refused, streamed), with its fields as structured state:
    /// request id (the response's id), model, status, tokens, cached tokens, frames and the seconds of each stage.
    /// </summary>
    [Fact]
    public async Task EachRequest_LogsOneStructuredEvent()
    {
        var capture = new CapturingLoggerProvider();
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MediaRoot = f.MediaRoot, MaxFrames = 8,
            Precision = Tensors.Kernels.MatMulPrecision.Float32, ConfigureLogging = logging => logging.AddProvider(capture),
        });
        await app.StartAsync();
        string baseUrl = app.Urls.First();
        async Task<(int Status, JsonObject Body)> Post(JsonObject body)
        {
            using var response = await f.Http.PostAsync(baseUrl + "/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
            return ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject());
        }

        var video = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath)))), maxTokens: 2, frames: 3);
        var (s1, answered) = await Post(video);
        Assert.Equal(200, s1);
        var unknownModel = ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), frames: null);
        unknownModel["model"] = "no-such-model";
        Assert.Equal(404, (await Post(unknownModel)).Status);
        var streamed = ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), maxTokens: 2, frames: null);
        streamed["stream"] = true;
        using (var response = await f.Http.PostAsync(baseUrl + "/v1/chat/completions", new StringContent(streamed.ToJsonString(), Encoding.UTF8, "application/json")))
            Assert.EndsWith("data: [DONE]\n\n", await response.Content.ReadAsStringAsync());

        // The event is written once the response has gone out: wait for all three.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        List<CapturedEvent> events;
        while ((events = capture.Of(RequestLog.Category)).Count < 3 && DateTime.UtcNow < deadline) await Task.Delay(20);
        await Task.Delay(200);
        events = capture.Of(RequestLog.Category);
        Assert.Equal(3, events.Count);
        Assert.All(events, e =>
        {
            Assert.Equal(1, e.Id.Id);
            Assert.Equal("ChatCompletion", e.Id.Name);
            Assert.Equal(LogLevel.Information, e.Level);
            Assert.StartsWith("chat completion chatcmpl-", e.Message);
            Assert.Contains("{RequestId}", (string)e.Field("{OriginalFormat}")!); // a message template, not a formatted string
        });

        var usage = answered["usage"]!;
        var ok = events.Single(e => (string)e.Field("RequestId")! == answered["id"]!.GetValue<string>());
        Assert.Equal(ServerFixture.ModelId, ok.Field("Model"));
        Assert.Equal(200, ok.Field("Status"));
        Assert.Equal(false, ok.Field("Stream"));
        Assert.Equal(usage["prompt_tokens"]!.GetValue<int>(), ok.Field("PromptTokens"));
        Assert.Equal(usage["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>(), ok.Field("CachedTokens"));
        Assert.Equal(2, ok.Field("CompletionTokens"));
        Assert.Equal(3, ok.Field("Frames"));
        Assert.Equal(usage["slowfast"]!["vision_seconds"]!.GetValue<double>(), (double)ok.Field("VisionSeconds")!, 3);
        Assert.True((double)ok.Field("VisionSeconds")! > 0);
        Assert.True((double)ok.Field("MediaDecodeSeconds")! > 0);
        Assert.True((double)ok.Field("PrefillSeconds")! > 0);
        Assert.True((double)ok.Field("GenerationSeconds")! >= 0);
        Assert.True((double)ok.Field("TotalSeconds")! >= (double)ok.Field("VisionSeconds")!);

        var refused = events.Single(e => (int)e.Field("Status")! == 404);
        Assert.Equal("no-such-model", refused.Field("Model"));
        Assert.Equal(0, refused.Field("PromptTokens"));
        Assert.Equal(0, refused.Field("Frames"));

        var stream = events.Single(e => (bool)e.Field("Stream")!);
        Assert.Equal(200, stream.Field("Status"));
        Assert.Equal(2, stream.Field("CompletionTokens"));
        Assert.Equal(0, stream.Field("Frames"));
        await app.StopAsync();
    }
}

/// <summary>A log event as a provider receives it: its structured state, field by field.</summary>
public sealed record CapturedEvent(string Category, EventId Id, LogLevel Level, string Message, IReadOnlyList<KeyValuePair<string, object?>> State)
{
    public object? Field(string name) => State.Single(p => p.Key == name).Value;
}

/// <summary>An <see cref="ILoggerProvider"/> that keeps every event.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedEvent> _events = new();

    public List<CapturedEvent> Of(string category) => _events.Where(e => e.Category == category).ToList();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() { }

    private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider._events.Enqueue(new CapturedEvent(category, eventId, logLevel, formatter(state, exception),
                state as IReadOnlyList<KeyValuePair<string, object?>> ?? []));
    }
}
