using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using SlowFast.Extensions.AI;
using SlowFast.Model.Generation;

namespace SlowFast.Server.Tests;

/// <summary>
/// <see cref="OpenAIVideoChatClient"/> (SlowFast.Extensions.AI's IChatClient for OpenAI-compatible servers)
/// against the real server: its answers must be the model's own, with video sent as video_url parts.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class RemoteChatClientTests(ServerFixture f)
{
    private OpenAIVideoChatClient Client(HttpClient? http = null) => new(new Uri(f.BaseUrl + "/v1"), ServerFixture.ModelId, httpClient: http);

    private static ChatOptions Greedy(int tokens, int? frames = ServerFixture.Frames)
    {
        var options = new ChatOptions { MaxOutputTokens = tokens, Temperature = 0 };
        if (frames is { } n) options.AdditionalProperties = new() { ["frames"] = n };
        return options;
    }

    [Fact]
    public async Task TextOnly_AnswersAsTheModelDoes()
    {
        var expected = f.DirectAnswer("What is in a video?", 4);
        using var client = Client();
        var response = await client.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, "What is in a video?")], Greedy(4, frames: null));
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(expected.PromptPositions, response.Usage!.InputTokenCount);
        Assert.Equal(4, response.Usage.OutputTokenCount);
        Assert.Equal(expected.PromptPositions + 4, response.Usage.TotalTokenCount);
        Assert.StartsWith("chatcmpl-", response.ResponseId);
        Assert.Equal(ServerFixture.ModelId, response.ModelId);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
    }

    [Fact]
    public async Task VideoAsDataContent_AnswersAsTheModelDoes_AndAFollowUpReusesThePrefix()
    {
        var expected = f.DirectAnswer("What happens?", 4, f.VideoPath);
        using var client = Client();
        var history = new List<Microsoft.Extensions.AI.ChatMessage>
        {
            new(ChatRole.User, [new DataContent(File.ReadAllBytes(f.VideoPath), "video/mp4"), new TextContent("What happens?")]),
        };
        var first = await client.GetResponseAsync(history, Greedy(4));
        Assert.Equal(expected.Text, first.Text);
        Assert.Equal(expected.PromptPositions, first.Usage!.InputTokenCount);
        Assert.Equal(ServerFixture.Frames, first.Usage.AdditionalCounts!["frames"]);
        Assert.True(first.Usage.AdditionalCounts["fast_visual_tokens"] > 0);

        history.AddRange(first.Messages);
        history.Add(new(ChatRole.User, "And then?"));
        var second = await client.GetResponseAsync(history, Greedy(4));
        Assert.True(second.Usage!.CachedInputTokenCount >= first.Usage.InputTokenCount - 1,
            $"cached {second.Usage.CachedInputTokenCount} of the first prompt's {first.Usage.InputTokenCount}");
    }

    [Fact]
    public async Task Streaming_VideoAsUriContent_UpdatesAddUpToTheAnswer_WithUsageLast()
    {
        var expected = f.DirectAnswer("What happens?", 5, f.VideoPath);
        using var client = Client();
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(
                           [new(ChatRole.User, [new UriContent(new Uri(f.VideoPath), "video/mp4"), new TextContent("What happens?")])], Greedy(5)))
            updates.Add(update);
        Assert.Equal(expected.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.True(updates.Count(u => u.Text.Length > 0) >= 3, $"{updates.Count} updates");
        Assert.All(updates, u => Assert.StartsWith("chatcmpl-", u.ResponseId));
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Length, updates.Single(u => u.FinishReason != null).FinishReason);
        var usage = Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>());
        Assert.Same(usage, updates[^1].Contents.Single());
        Assert.Equal(5, usage.Details.OutputTokenCount);
        Assert.Equal(expected.PromptPositions, usage.Details.InputTokenCount);
        // The updates make one response, as any IChatClient's do.
        var response = updates.ToChatResponse();
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(5, response.Usage!.OutputTokenCount);
    }

    /// <summary>Every option reaches the request body under the names the servers read, and acts there.</summary>
    [Fact]
    public async Task Options_AreMapped()
    {
        var seen = new RecordingHandler();
        using var client = Client(new HttpClient(seen));
        var options = new ChatOptions
        {
            Temperature = 0.8f, TopP = 0.9f, TopK = 20, Seed = 1234, MaxOutputTokens = 6, StopSequences = ["\u0001never"],
            AdditionalProperties = new() { ["frames"] = 3, ["fps"] = 5.0, ["repetition_penalty"] = 1.1 },
        };
        var response = await client.GetResponseAsync(
            [new(ChatRole.User, [new UriContent(new Uri(f.VideoPath), "video/mp4"), new TextContent("What happens?")])], options);
        var body = seen.Bodies.Single();
        Assert.Equal(0.8, body["temperature"]!.GetValue<double>(), 5);
        Assert.Equal(0.9, body["top_p"]!.GetValue<double>(), 5);
        Assert.Equal(20, body["top_k"]!.GetValue<int>());
        Assert.Equal(1234, body["seed"]!.GetValue<long>());
        Assert.Equal(6, body["max_tokens"]!.GetValue<int>());
        Assert.Equal("\u0001never", body["stop"]![0]!.GetValue<string>());
        Assert.Equal(1.1, body["repetition_penalty"]!.GetValue<double>(), 5);
        Assert.Equal(3, body["media_io_kwargs"]!["video"]!["num_frames"]!.GetValue<int>());
        Assert.Equal(5.0, body["mm_processor_kwargs"]!["fps"]!.GetValue<double>());
        var video = body["messages"]![0]!["content"]![0]!;
        Assert.Equal("video_url", video["type"]!.GetValue<string>());
        Assert.Equal(new Uri(f.VideoPath).AbsoluteUri, video["video_url"]!["url"]!.GetValue<string>());
        Assert.Equal(3, video["video_url"]!["max_frames"]!.GetValue<int>());
        Assert.Equal(5.0, video["video_url"]!["fps"]!.GetValue<double>());

        // What the server made of them: fps 5 of the 10-fps video gives 5 frames, capped at 3; and the answer is
        // the engine's with the same sampling options and seed.
        Assert.Equal(3, response.Usage!.AdditionalCounts!["frames"]);
        var processor = new SlowFast.Model.SlowFastProcessor(f.Direct.Config);
        var pixels = processor.Load(processor.Video(f.VideoPath, options: processor.VideoOptionsFor(3) with { Sampling = Media.SamplingMode.Fps, TargetFps = 5 }));
        var direct = f.Direct.Generate(f.Direct.QuestionPrompt("What happens?", true), f.Direct.EncodeVideo(pixels.PixelValues, pixels.FrameCount),
            new GenerationOptions { Temperature = 0.8, TopP = 0.9, TopK = 20, Seed = 1234, MaxNewTokens = 6, RepetitionPenalty = 1.1 });
        Assert.Equal(direct.Text, response.Text);

        // A stop sequence from the middle of that answer cuts it.
        Assert.True(direct.Text.Length >= 4, $"answer too short: '{direct.Text}'");
        string stop = direct.Text.Substring(direct.Text.Length / 2, 2);
        options.StopSequences = [stop];
        var cut = await client.GetResponseAsync(
            [new(ChatRole.User, [new UriContent(new Uri(f.VideoPath), "video/mp4"), new TextContent("What happens?")])], options);
        Assert.Equal(direct.Text[..direct.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Stop, cut.FinishReason);
    }

    [Fact]
    public async Task ServerErrors_AreExceptionsWithTheServersMessage()
    {
        using var wrongModel = new OpenAIVideoChatClient(new Uri(f.BaseUrl + "/v1"), "no-such-model");
        var e = await Assert.ThrowsAsync<OpenAIServerException>(() => wrongModel.GetResponseAsync([new(ChatRole.User, "Hi")]));
        Assert.Equal(HttpStatusCode.NotFound, e.StatusCode);
        Assert.Contains("'no-such-model' does not exist", e.Message);
        Assert.Equal("model_not_found", e.Code);
        Assert.Equal("model", e.Param);

        using var client = Client();
        var broken = new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, [new DataContent("not a video"u8.ToArray(), "video/mp4"), new TextContent("What happens?")]);
        var streamed = await Assert.ThrowsAsync<OpenAIServerException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync([broken], Greedy(3))) { }
        });
        Assert.Equal(HttpStatusCode.BadRequest, streamed.StatusCode);
        Assert.Contains("could not be decoded", streamed.Message);
        Assert.Equal("invalid_media", streamed.Code);

        var badFps = await Assert.ThrowsAsync<OpenAIServerException>(() => client.GetResponseAsync(
            [new(ChatRole.User, [new UriContent(new Uri(f.VideoPath), "video/mp4"), new TextContent("What happens?")])],
            new ChatOptions { AdditionalProperties = new() { ["fps"] = -1 } }));
        Assert.Equal(HttpStatusCode.BadRequest, badFps.StatusCode);
        // The fps went into the video part too (SGLang's place), which the server reads first.
        Assert.Equal("messages[0].content[0].video_url.fps", badFps.Param);
        Assert.Contains("positive", badFps.Message);
    }

    /// <summary>An error the server sends inside a stream that has started (its time limit) ends the enumeration with the exception.</summary>
    [Fact]
    public async Task ErrorInsideAStream_IsAnException()
    {
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", RequestTimeLimit = TimeSpan.FromSeconds(1.5),
        });
        await app.StartAsync();
        using var client = new OpenAIVideoChatClient(new Uri(app.Urls.First() + "/v1"), ServerFixture.ModelId);
        var text = new StringBuilder();
        var e = await Assert.ThrowsAsync<OpenAIServerException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync([new(ChatRole.User, "Talk for a long time.")], Greedy(100_000, frames: null)))
                text.Append(update.Text);
        });
        Assert.True(text.Length > 0, "the stream had started");
        Assert.Null(e.StatusCode);
        Assert.Equal("timeout", e.Code);
        Assert.Contains("took longer", e.Message);
        await app.StopAsync();
    }

    /// <summary>
    /// Cancelling the enumeration closes the connection and the server drops the request: a reference request
    /// with the same prompt, run in the same engine, is still decoding when the streamed one has left it.
    /// </summary>
    /// <remarks>
    /// In about one test process in five this used to fail, on the first cancel in the process: the server's
    /// handler left and disposed the engine request's token source before the client's cancel had reached
    /// it, so the request decoded on to its max tokens (<see cref="ChatCompletionsTests.AbortedSocket_MidStream_TheEngineDropsTheRequest_EveryTime"/>
    /// drives the same path over a bare socket).
    /// </remarks>
    [Fact]
    public async Task Cancelling_AStream_EndsTheRequestOnTheServer()
    {
        var engine = f.Backend.Model.Engine;
        int[] ids = f.Backend.Model.QuestionPrompt("Tell a long story.", withVisual: false);
        using var stopReference = new CancellationTokenSource();
        // The reference must outlast the streamed request: it does not stop at an end token, and its text
        // callback (on the engine's thread) holds every step about a millisecond, so its 3000 tokens take
        // seconds (the tiny model's steps alone take a fraction of a millisecond).
        var reference = engine.Submit(ids, null, ServerFixture.Greedy(3000) with { Precision = Tensors.Kernels.MatMulPrecision.Float32, StopAtEndTokens = false },
            onText: _ => Thread.Sleep(1), cancellation: stopReference.Token);
        try
        {
            using var client = Client();
            using var cancel = new CancellationTokenSource();
            int pieces = 0, runningAtCancel = 0;
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var update in client.GetStreamingResponseAsync([new(ChatRole.User, "Tell a long story.")], Greedy(3000, frames: null), cancel.Token))
                {
                    if (update.Text.Length == 0 || ++pieces < 3) continue;
                    var started = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                    while (engine.Stats.Running < 2 && DateTime.UtcNow < started) await Task.Delay(10);
                    runningAtCancel = engine.Stats.Running;
                    cancel.Cancel();
                }
            });
            Assert.Equal(3, pieces);
            Assert.Equal(2, runningAtCancel);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (engine.Stats.Running > 1 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.True(engine.Stats.Running == 1, $"{engine.Stats.Running} request(s) still running 30 s after the cancel, not 1");
            if (reference.Completion.IsCompleted)
            {
                string tokens = reference.Completion.IsCompletedSuccessfully ? $", {(await reference.Completion).TokenIds.Length} tokens" : "";
                Assert.Fail($"the reference finished first ({reference.Completion.Status}{tokens}): the streamed request stayed in the engine");
            }
        }
        finally
        {
            stopReference.Cancel();
            try { await reference.Completion; } catch (OperationCanceledException) { }
        }
    }

    [Fact]
    public async Task Registration_GivesAnIChatClientForTheServer()
    {
        var services = new ServiceCollection();
        services.AddOpenAIVideoChatClient(new Uri(f.BaseUrl + "/v1"), ServerFixture.ModelId);
        await using var provider = services.BuildServiceProvider();
        var chat = provider.GetRequiredService<IChatClient>();
        Assert.Same(provider.GetRequiredService<OpenAIVideoChatClient>(), chat);
        var metadata = chat.GetService<ChatClientMetadata>()!;
        Assert.Equal(OpenAIVideoChatClient.ProviderName, metadata.ProviderName);
        Assert.Equal(ServerFixture.ModelId, metadata.DefaultModelId);
        var expected = f.DirectAnswer("Hello?", 3);
        Assert.Equal(expected.Text, (await chat.GetResponseAsync("Hello?", Greedy(3, frames: null))).Text);
    }

    /// <summary>Keeps the JSON body of each request it passes on.</summary>
    private sealed class RecordingHandler() : DelegatingHandler(new HttpClientHandler())
    {
        public List<JsonNode> Bodies { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Bodies.Add(JsonNode.Parse(await request.Content!.ReadAsStringAsync(cancellationToken))!);
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
