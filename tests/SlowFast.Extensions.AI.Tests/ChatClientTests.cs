using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using SlowFast.Model;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;

namespace SlowFast.Extensions.AI.Tests;

[Collection(TinyModelCollection.Name)]
public class ChatClientTests(TinyModelFixture fixture)
{
    private const int Frames = 3;
    private SlowFastModel Model => fixture.Model;
    private SlowFastChatClient Client() => new(Model, new SlowFastChatClientOptions { DefaultFrames = Frames });

    private static ChatOptions Options(int maxTokens, params (string, object?)[] extra)
    {
        var options = new ChatOptions { MaxOutputTokens = maxTokens };
        if (extra.Length > 0) options.AdditionalProperties = new AdditionalPropertiesDictionary(extra.ToDictionary(e => e.Item1, e => e.Item2));
        return options;
    }

    [Fact]
    public async Task Text_chat_equals_the_greedy_answer_of_the_model()
    {
        using var client = Client();
        var response = await client.GetResponseAsync("Tell me a story.", Options(8));
        var expected = Model.Generate(Model.QuestionPrompt("Tell me a story.", false), null, new GenerationOptions { MaxNewTokens = 8 });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.Equal(expected.TokenIds.Length, response.Usage!.OutputTokenCount);
        Assert.Equal(expected.PromptPositions, response.Usage.InputTokenCount);
        Assert.Equal(expected.PromptPositions + expected.TokenIds.Length, response.Usage.TotalTokenCount);
        Assert.Equal(expected.FinishReason == FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(Path.GetFileName(fixture.ModelDir), response.ModelId);
    }

    [Fact]
    public async Task System_and_earlier_turns_make_the_chat_template()
    {
        using var client = Client();
        var messages = new List<ChatMessage>
        {
            new(ChatRole.System, "Be brief."),
            new(ChatRole.User, "Hi"),
            new(ChatRole.Assistant, "Hello!"),
            new(ChatRole.User, "Why?"),
        };
        var response = await client.GetResponseAsync(messages, Options(5));
        var ids = new SlowFast.Model.Chat.ChatConversation("Be brief.").AddUser("Hi").AddAssistant("Hello!").AddUser("Why?")
            .AddAssistantPrompt().Tokenize(Model.Tokenizer);
        var expected = Model.Generate(ids, null, new GenerationOptions { MaxNewTokens = 5 });
        Assert.Equal(expected.Text, response.Text);
    }

    [Fact]
    public async Task Video_as_data_content_equals_a_conversation_about_the_encoded_video()
    {
        using var client = Client();
        var message = new ChatMessage(ChatRole.User, [new DataContent(File.ReadAllBytes(fixture.VideoPath), "video/mp4"), new TextContent("What happens?")]);
        var response = await client.GetResponseAsync([message], Options(6));

        var processor = new SlowFastProcessor(Model.Config);
        var video = processor.LoadVideo(fixture.VideoPath, Frames);
        var tokens = Model.EncodeVideo(video.PixelValues, video.FrameCount);
        var expected = Model.StartConversation(tokens).Ask("What happens?", new GenerationOptions { MaxNewTokens = 6 });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(expected.PromptPositions, response.Usage!.InputTokenCount);
    }

    [Fact]
    public async Task Image_as_file_uri_equals_the_encoded_image()
    {
        using var client = Client();
        var message = new ChatMessage(ChatRole.User, [new TextContent("Describe it."), new UriContent(new Uri(fixture.ImagePath), "image/png")]);
        var response = await client.GetResponseAsync([message], Options(5));

        var image = new SlowFastProcessor(Model.Config).LoadImage(fixture.ImagePath);
        var tokens = Model.EncodeVideo(image.PixelValues, image.FrameCount);
        var expected = Model.StartConversation(tokens).Ask("Describe it.", new GenerationOptions { MaxNewTokens = 5 });
        Assert.Equal(expected.Text, response.Text);
    }

    [Fact]
    public async Task A_second_turn_about_the_same_video_reuses_the_first_turns_prompt()
    {
        using var client = Client();
        var messages = new List<ChatMessage>
        {
            new(ChatRole.User, [new DataContent(File.ReadAllBytes(fixture.OtherVideoPath), "video/mp4"), new TextContent("What is shown?")]),
        };
        var first = await client.GetResponseAsync(messages, Options(4, ("frames", 2)));
        messages.AddMessages(first);
        messages.Add(new ChatMessage(ChatRole.User, "And then?"));
        var second = await client.GetResponseAsync(messages, Options(4, ("frames", 2)));

        Assert.True(second.Usage!.CachedInputTokenCount > 0, $"cached {second.Usage.CachedInputTokenCount}");
        Assert.True(second.Usage.InputTokenCount > first.Usage!.InputTokenCount + first.Usage.OutputTokenCount);

        // The same answer as the engine's own conversation (one encoded video, both turns).
        var video = new SlowFastProcessor(Model.Config).LoadVideo(fixture.OtherVideoPath, 2);
        var chat = Model.StartConversation(Model.EncodeVideo(video.PixelValues, video.FrameCount));
        var options = new GenerationOptions { MaxNewTokens = 4 };
        Assert.Equal(chat.Ask("What is shown?", options).Text, first.Text);
        Assert.Equal(chat.Ask("And then?", options).Text, second.Text);
    }

    [Fact]
    public async Task Streaming_updates_add_up_to_the_response_and_end_with_finish_reason_and_usage()
    {
        using var client = Client();
        var options = Options(8);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync("Tell me a story.", options)) updates.Add(update);
        var response = await client.GetResponseAsync("Tell me a story.", options);

        Assert.True(updates.Count > 2);
        Assert.Equal(response.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        var last = updates[^1];
        Assert.Equal(response.FinishReason, last.FinishReason);
        var usage = Assert.IsType<UsageContent>(Assert.Single(last.Contents)).Details;
        Assert.Equal(response.Usage!.OutputTokenCount, usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount, usage.InputTokenCount);

        var combined = updates.ToChatResponse();
        Assert.Equal(response.Text, combined.Text);
        Assert.Equal(response.Usage.OutputTokenCount, combined.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Cancellation_throws_and_stops_the_engine_request()
    {
        using var client = Client();
        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync("Tell me a story.", Options(200), cts.Token))
                cts.Cancel();
        });
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync("Hi", Options(200), cancelled.Token));
        // Leaving the enumeration early cancels the request too.
        await foreach (var _ in client.GetStreamingResponseAsync("Tell me a story.", Options(200))) break;
        // The engine is free again (its statistics are published after each step).
        var until = DateTime.UtcNow.AddSeconds(10);
        while (Model.Engine.Stats is { } s && s.Running + s.Waiting > 0 && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Equal(0, Model.Engine.Stats.Running + Model.Engine.Stats.Waiting);
    }

    [Fact]
    public async Task Max_output_tokens_bound_the_answer()
    {
        using var client = Client();
        var response = await client.GetResponseAsync("Count.", Options(3));
        var expected = Model.Generate(Model.QuestionPrompt("Count.", false), null, new GenerationOptions { MaxNewTokens = 3 });
        Assert.Equal(expected.TokenIds.Length, response.Usage!.OutputTokenCount);
        Assert.True(response.Usage.OutputTokenCount <= 3);
        if (expected.FinishReason == FinishReason.Length) Assert.Equal(ChatFinishReason.Length, response.FinishReason);
    }

    /// <summary>
    /// "frames" and "fps" choose the frames as the reference's samplers do: the fixture's video is 1 s at 8 fps,
    /// so fps 2 keeps every 4th frame (2 frames), and a frame count caps it; the answer is the model's own
    /// about the video sampled that way.
    /// </summary>
    [Fact]
    public async Task Frames_and_fps_choose_the_sampled_frames()
    {
        using var client = Client();
        async Task<ChatResponse> Ask(params (string, object?)[] extra) => await client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new UriContent(new Uri(fixture.VideoPath), "video/mp4"), new TextContent("What happens?")])], Options(3, extra));
        Assert.Equal(Frames, (await Ask()).AdditionalProperties!["frames"]);
        Assert.Equal(5, (await Ask(("frames", 5))).AdditionalProperties!["frames"]);
        var atRate = await Ask(("fps", 2.0));
        Assert.Equal(2, atRate.AdditionalProperties!["frames"]);
        Assert.Equal(1, (await Ask(("fps", 2), ("frames", 1))).AdditionalProperties!["frames"]);
        Assert.Equal(0, (await client.GetResponseAsync("Hi", Options(2))).AdditionalProperties!["frames"]);

        var processor = new SlowFastProcessor(Model.Config);
        var pixels = processor.Load(processor.Video(fixture.VideoPath, options: processor.VideoOptionsFor(Frames) with { Sampling = Media.SamplingMode.Fps, TargetFps = 2 }));
        Assert.Equal(2, pixels.FrameCount);
        var expected = Model.Generate(Model.QuestionPrompt("What happens?", true), Model.EncodeVideo(pixels.PixelValues, pixels.FrameCount),
            new GenerationOptions { MaxNewTokens = 3 });
        Assert.Equal(expected.Text, atRate.Text);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Ask(("fps", 0)));
    }

    [Fact]
    public async Task Seed_and_temperature_give_the_models_sampled_answer_again()
    {
        using var client = Client();
        var options = new ChatOptions { MaxOutputTokens = 8, Temperature = 1.0f, TopP = 0.9f, TopK = 50, Seed = 1234 };
        var a = await client.GetResponseAsync("Hello", options);
        var b = await client.GetResponseAsync("Hello", options);
        var expected = Model.Generate(Model.QuestionPrompt("Hello", false), null,
            new GenerationOptions { MaxNewTokens = 8, Temperature = 1.0f, TopP = 0.9f, TopK = 50, Seed = 1234 });
        Assert.Equal(a.Text, b.Text);
        Assert.Equal(expected.Text, a.Text);
    }

    [Fact]
    public async Task A_stop_sequence_ends_the_answer_before_it_streaming_or_not()
    {
        using var client = Client();
        var full = (await client.GetResponseAsync("Tell me a story.", Options(12))).Text;
        Assert.True(full.Length >= 6, $"answer too short for the test: '{full}'");
        string stop = full.Substring(full.Length / 2, 2);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        var options = Options(12);
        options.StopSequences = ["never appears \u0001", stop];

        var response = await client.GetResponseAsync("Tell me a story.", options);
        Assert.Equal(expected, response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("stop_sequence", response.AdditionalProperties!["finish_detail"]);
        Assert.True(response.Usage!.OutputTokenCount > 0);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync("Tell me a story.", options)) updates.Add(u);
        Assert.Equal(expected, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(ChatFinishReason.Stop, updates[^1].FinishReason);
    }

    [Fact]
    public async Task Unsupported_input_is_refused_clearly()
    {
        using var client = Client();
        var video = new DataContent(File.ReadAllBytes(fixture.VideoPath), "video/mp4");
        var two = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [video, new TextContent("a")]), new ChatMessage(ChatRole.User, [new UriContent(new Uri(fixture.ImagePath), "image/png"), new TextContent("b")])]));
        Assert.Contains("one video or image", two.Message);

        var audio = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new DataContent(new byte[] { 1, 2 }, "audio/wav"), new TextContent("a")])]));
        Assert.Contains("audio/wav", audio.Message);

        var web = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new UriContent(new Uri("https://example.com/v.mp4"), "video/mp4")])]));
        Assert.Contains("file:", web.Message);

        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.Tool, "result")]));
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [new FunctionCallContent("c1", "f")])]));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync("look: <image>"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.System, "only a system message")]));
    }

    [Fact]
    public void GetService_returns_metadata_model_and_engine()
    {
        using var client = new SlowFastChatClient(Model, new SlowFastChatClientOptions { ModelId = "tiny-test" });
        IChatClient chat = client;
        var metadata = chat.GetService<ChatClientMetadata>()!;
        Assert.Equal("slowfast", metadata.ProviderName);
        Assert.Equal("tiny-test", metadata.DefaultModelId);
        Assert.Same(Model, chat.GetService<SlowFastModel>());
        Assert.Same(Model.Engine, chat.GetService<InferenceEngine>());
        Assert.Same(client, chat.GetService<SlowFastChatClient>());
        Assert.Null(chat.GetService<SlowFastModel>("some key"));
    }

    [Fact]
    public async Task The_service_collection_extension_registers_a_working_client()
    {
        var services = new ServiceCollection();
        services.AddSlowFastChatClient(fixture.ModelDir, o => o.ModelId = "from-di");
        SlowFastModel loaded;
        await using (var provider = services.BuildServiceProvider())
        {
            var chat = provider.GetRequiredService<IChatClient>();
            loaded = provider.GetRequiredService<SlowFastModel>();
            Assert.Same(loaded, chat.GetService<SlowFastModel>());
            Assert.Equal("from-di", chat.GetService<ChatClientMetadata>()!.DefaultModelId);
            var response = await chat.GetResponseAsync("Tell me a story.", Options(4));
            var expected = Model.Generate(Model.QuestionPrompt("Tell me a story.", false), null, new GenerationOptions { MaxNewTokens = 4 });
            Assert.Equal(expected.Text, response.Text);
        }
        Assert.Throws<ObjectDisposedException>(() => loaded.Engine.Submit([1, 2], null));
    }
}
