using System.ClientModel;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using SlowFast.Model.Generation;

namespace SlowFast.Server.Tests;

/// <summary>The server's answers, through the official OpenAI client and raw JSON, against the model run directly.</summary>
[Collection(ServerCollection.Name)]
public sealed class ChatCompletionsTests(ServerFixture f)
{
    private ChatClient Client() => new(ServerFixture.ModelId, new ApiKeyCredential("unused"),
        new OpenAIClientOptions { Endpoint = new Uri(f.BaseUrl + "/v1") });

    private static ChatCompletionOptions Greedy(int tokens) => new() { MaxOutputTokenCount = tokens, Temperature = 0 };

    [Fact]
    public async Task HealthReadyAndModels()
    {
        Assert.Equal("ok", JsonNode.Parse(await f.Http.GetStringAsync(f.BaseUrl + "/health"))!["status"]!.GetValue<string>());
        var ready = JsonNode.Parse(await f.Http.GetStringAsync(f.BaseUrl + "/ready"))!;
        Assert.Equal("ready", ready["status"]!.GetValue<string>());
        Assert.Equal(ServerFixture.ModelId, ready["model"]!.GetValue<string>());
        var models = JsonNode.Parse(await f.Http.GetStringAsync(f.BaseUrl + "/v1/models"))!;
        Assert.Equal("list", models["object"]!.GetValue<string>());
        var only = Assert.Single(models["data"]!.AsArray())!;
        Assert.Equal(ServerFixture.ModelId, only["id"]!.GetValue<string>());
        Assert.Equal("model", only["object"]!.GetValue<string>());
    }

    [Fact]
    public async Task OpenAiClient_TextOnly_AnswersAsTheModelDoes()
    {
        var expected = f.DirectAnswer("What is in a video?", 4);
        ChatCompletion answer = await Client().CompleteChatAsync([new UserChatMessage("What is in a video?")], Greedy(4));
        Assert.Equal(expected.Text, answer.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, answer.FinishReason);
        Assert.Equal(expected.PromptPositions, answer.Usage.InputTokenCount);
        Assert.Equal(4, answer.Usage.OutputTokenCount);
        Assert.Equal(expected.PromptPositions + 4, answer.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task OpenAiClient_Streaming_AnswersAsTheModelDoes()
    {
        var expected = f.DirectAnswer("Describe the scene.", 5);
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        int updates = 0;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Describe the scene.")], Greedy(5)))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }
        Assert.Equal(expected.Text, text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.True(updates >= 5, $"{updates} updates");
        if (usage != null) Assert.Equal(5, usage.OutputTokenCount);
    }

    [Fact]
    public async Task VideoUrlObject_FileUrl_AnswersAsTheModelDoes()
    {
        var expected = f.DirectAnswer("What happens?", 4, f.VideoPath);
        var (status, body) = await f.PostAsync(ServerFixture.Request(new JsonArray(
            ServerFixture.User("What happens?", ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath))))));
        Assert.Equal(200, status);
        Assert.Equal("chat.completion", body["object"]!.GetValue<string>());
        Assert.StartsWith("chatcmpl-", body["id"]!.GetValue<string>());
        var choice = body["choices"]![0]!;
        Assert.Equal("assistant", choice["message"]!["role"]!.GetValue<string>());
        Assert.Equal(expected.Text, choice["message"]!["content"]!.GetValue<string>());
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal(expected.PromptPositions, body["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(4, body["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task VideoUrlBareString_DataUrl_AnswersAsTheModelDoes()
    {
        var expected = f.DirectAnswer("What moves?", 4, f.VideoPath);
        var (status, body) = await f.PostAsync(ServerFixture.Request(new JsonArray(
            ServerFixture.User("What moves?", ServerFixture.VideoPart(ServerFixture.DataUrl(f.VideoPath, "video/mp4"), bare: true)))));
        Assert.Equal(200, status);
        Assert.Equal(expected.Text, body["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task ImageUrl_DataUrl_AnswersAsTheModelDoes()
    {
        var expected = f.DirectAnswer("What colour is it?", 4, f.ImagePath, image: true);
        var part = new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = ServerFixture.DataUrl(f.ImagePath, "image/png") } };
        var (status, body) = await f.PostAsync(ServerFixture.Request(new JsonArray(ServerFixture.User("What colour is it?", part)), frames: null));
        Assert.Equal(200, status);
        Assert.Equal(expected.Text, body["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(expected.PromptPositions, body["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task FollowUpAboutTheSameVideo_ReusesThePrefix()
    {
        string url = ServerFixture.FileUrl(f.VideoPath);
        var (s1, first) = await f.PostAsync(ServerFixture.Request(new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "You watch videos." },
            ServerFixture.User("Who is there?", ServerFixture.VideoPart(url)))));
        Assert.Equal(200, s1);
        string answer = first["choices"]![0]!["message"]!["content"]!.GetValue<string>();

        var (s2, second) = await f.PostAsync(ServerFixture.Request(new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "You watch videos." },
            ServerFixture.User("Who is there?", ServerFixture.VideoPart(url)),
            new JsonObject { ["role"] = "assistant", ["content"] = answer },
            new JsonObject { ["role"] = "user", ["content"] = "And then?" })));
        Assert.Equal(200, s2);
        int prompt1 = first["usage"]!["prompt_tokens"]!.GetValue<int>();
        int cached = second["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
        Assert.True(cached >= prompt1 - 1, $"cached_tokens {cached}, first prompt {prompt1}");
        Assert.True(second["usage"]!["prompt_tokens"]!.GetValue<int>() > prompt1);
    }

    [Fact]
    public async Task Stream_IsServerSentChunksEndingWithDone()
    {
        var expected = f.DirectAnswer("What happens?", 3, f.VideoPath);
        var request = ServerFixture.Request(new JsonArray(
            ServerFixture.User("What happens?", ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath)))), maxTokens: 3);
        request["stream"] = true;
        request["stream_options"] = new JsonObject { ["include_usage"] = true };
        using var message = new HttpRequestMessage(HttpMethod.Post, f.BaseUrl + "/v1/chat/completions")
        { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);

        var events = new List<string>();
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            string? line;
            while ((line = await reader.ReadLineAsync()) != null)
            {
                if (line.Length == 0) continue;
                Assert.StartsWith("data: ", line);
                events.Add(line["data: ".Length..]);
            }
        }
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        string id = chunks[0]["id"]!.GetValue<string>();
        Assert.All(chunks, c =>
        {
            Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>());
            Assert.Equal(id, c["id"]!.GetValue<string>());
            Assert.Equal(ServerFixture.ModelId, c["model"]!.GetValue<string>());
        });
        // First: the role; then one chunk per piece of text; then the finish reason; then usage alone.
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        var pieces = chunks[1..^2].Select(c => c["choices"]![0]!).ToList();
        Assert.Equal(3, pieces.Count);
        Assert.All(pieces, p => Assert.Null(p["finish_reason"]));
        Assert.Equal(expected.Text, string.Concat(pieces.Select(p => p["delta"]!["content"]!.GetValue<string>())));
        var last = chunks[^2]["choices"]![0]!;
        Assert.Equal("length", last["finish_reason"]!.GetValue<string>());
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(3, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal(expected.PromptPositions, chunks[^1]["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task ClientDisconnect_CancelsTheEngineRequest()
    {
        // A reference request with the same prompt runs in the same engine, decoding in lockstep with the
        // streamed one: if the streamed one leaves the engine while the reference still runs, it was cancelled.
        var engine = f.Backend.Model.Engine;
        int[] ids = f.Backend.Model.QuestionPrompt("Tell a long story.", withVisual: false);
        using var stopReference = new CancellationTokenSource();
        var reference = engine.Submit(ids, null, ServerFixture.Greedy(3000) with { Precision = Tensors.Kernels.MatMulPrecision.Float32 }, cancellation: stopReference.Token);
        try
        {
            var request = ServerFixture.Request(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell a long story." }), maxTokens: 3000, frames: null);
            request["stream"] = true;
            using (var message = new HttpRequestMessage(HttpMethod.Post, f.BaseUrl + "/v1/chat/completions")
                   { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") })
            using (var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead))
            {
                Assert.Equal(200, (int)response.StatusCode);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                for (int events = 0; events < 3;)
                    if (!string.IsNullOrEmpty(await reader.ReadLineAsync())) events++;
                var started = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while (engine.Stats.Running < 2 && DateTime.UtcNow < started) await Task.Delay(10);
                Assert.Equal(2, engine.Stats.Running);
            } // disconnects

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (engine.Stats.Running > 1 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(1, engine.Stats.Running);
            await Task.Delay(300);
            Assert.False(reference.Completion.IsCompleted, "the reference finished: the streamed request may have ended by itself");
        }
        finally
        {
            stopReference.Cancel();
            try { await reference.Completion; } catch (OperationCanceledException) { }
        }
    }

    /// <summary>
    /// A client that leaves a stream without reading on, over a bare socket (no HTTP client draining or
    /// closing for it): with a reset, or with a FIN and its receive buffer left unread. Each time, the engine
    /// must drop the request while a reference request with the same prompt still runs beside it. Repeated,
    /// because the server once lost a cancel to a race, mostly the first in a process (the handler left and disposed the
    /// engine request's token source before the client's cancel had reached it).
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task AbortedSocket_MidStream_TheEngineDropsTheRequest_EveryTime()
    {
        var engine = f.Backend.Model.Engine;
        int[] ids = f.Backend.Model.QuestionPrompt("Tell a long story.", withVisual: false);
        var request = ServerFixture.Request(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell a long story." }), maxTokens: 3000, frames: null);
        request["stream"] = true;
        byte[] body = Encoding.UTF8.GetBytes(request.ToJsonString());
        var server = new Uri(f.BaseUrl);
        Assert.True(System.Net.IPAddress.IsLoopback(System.Net.IPAddress.Parse(server.Host)), "loopback only");
        byte[] head = Encoding.ASCII.GetBytes($"POST /v1/chat/completions HTTP/1.1\r\nHost: {server.Authority}\r\n" +
            $"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {body.Length}\r\n\r\n");

        for (int attempt = 0; attempt < 20; attempt++)
        {
            bool reset = attempt % 2 == 0;
            string what = $"attempt {attempt} ({(reset ? "reset" : "FIN, unread")})";
            // The reference outlasts the streamed request by far: no end token stops it, and its text callback
            // holds each engine step about a millisecond, so a streamed request left running would take seconds.
            using var stopReference = new CancellationTokenSource();
            var reference = engine.Submit(ids, null, ServerFixture.Greedy(3000) with { Precision = Tensors.Kernels.MatMulPrecision.Float32, StopAtEndTokens = false },
                onText: _ => Thread.Sleep(1), cancellation: stopReference.Token);
            try
            {
                using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
                {
                    using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    await socket.ConnectAsync(server.Host, server.Port, limit.Token);
                    await socket.SendAsync(head.Concat(body).ToArray(), SocketFlags.None, limit.Token);
                    // Read until three pieces of text have come (the first chunk, the role's, has none).
                    var seen = new StringBuilder();
                    var buffer = new byte[4096];
                    while (CountOf(seen.ToString(), "\"delta\":{\"content\"") < 3)
                    {
                        int n = await socket.ReceiveAsync(buffer, SocketFlags.None, limit.Token);
                        Assert.True(n > 0, $"{what}: the server closed the stream early: {seen}");
                        seen.Append(Encoding.Latin1.GetString(buffer, 0, n));
                    }
                    Assert.StartsWith("HTTP/1.1 200", seen.ToString());
                    Assert.Equal(2, engine.Stats.Running);
                    if (reset) socket.LingerState = new LingerOption(true, 0);   // Close sends RST
                    else socket.Shutdown(SocketShutdown.Send);                    // FIN; nothing more is read
                    if (!reset) await WaitUntil(() => engine.Stats.Running < 2, TimeSpan.FromSeconds(10));
                }

                await WaitUntil(() => engine.Stats.Running < 2, TimeSpan.FromSeconds(10));
                Assert.True(engine.Stats.Running == 1, $"{what}: {engine.Stats.Running} request(s) running 10 s after the client left, not 1");
                Assert.False(reference.Completion.IsCompleted, $"{what}: the reference finished ({reference.Completion.Status}) while the aborted request ran on");
            }
            finally
            {
                stopReference.Cancel();
                try { await reference.Completion; } catch (OperationCanceledException) { }
            }
        }
    }

    private static int CountOf(string text, string part)
    {
        int count = 0;
        for (int i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    private static async Task WaitUntil(Func<bool> done, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!done() && DateTime.UtcNow < deadline) await Task.Delay(10);
    }
}
