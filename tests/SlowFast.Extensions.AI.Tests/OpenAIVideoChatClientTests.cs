using System.Net;
using System.Text;
using Microsoft.Extensions.AI;

namespace SlowFast.Extensions.AI.Tests;

/// <summary>
/// <see cref="OpenAIVideoChatClient"/>'s reading of answers, against canned HTTP responses (the tests against the
/// real server are in SlowFast.Server.Tests): server-sent events split and joined as the format allows, and errors.
/// </summary>
public class OpenAIVideoChatClientTests
{
    private static OpenAIVideoChatClient Client(HttpStatusCode status, string body, string mediaType) =>
        new(new Uri("http://server.test/v1/"), "m", "key", new HttpClient(new Canned(status, body, mediaType)));

    [Fact]
    public async Task Stream_ReadsEventsOfSeveralDataLines_SkipsComments_AndReadsUsage()
    {
        string events =
            ": a comment line\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\n" +
            "data: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n" +
            "data:{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[],\"slowfast_progress\":{\"frames_done\":1,\"frames\":2}}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9,\"prompt_tokens_details\":{\"cached_tokens\":5},\"slowfast\":{\"frames\":2,\"fast_visual_tokens\":8,\"slow_visual_tokens\":4,\"vision_seconds\":0.5}}}\n\n" +
            "data: [DONE]\n\n" +
            "data: {\"never\": \"read\"}\n\n";
        using var client = Client(HttpStatusCode.OK, events, "text/event-stream");
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Hi")])) updates.Add(u);
        Assert.Equal("Hello", string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(ChatFinishReason.Stop, updates.Single(u => u.FinishReason != null).FinishReason);
        Assert.All(updates, u => Assert.Equal("c1", u.ResponseId));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000), updates[0].CreatedAt);
        var usage = updates[^1].Contents.OfType<UsageContent>().Single().Details;
        Assert.Equal((7L, 2L, 9L, 5L), (usage.InputTokenCount, usage.OutputTokenCount, usage.TotalTokenCount, usage.CachedInputTokenCount));
        Assert.Equal(2, usage.AdditionalCounts!["frames"]);
        Assert.Equal(8, usage.AdditionalCounts["fast_visual_tokens"]);
        Assert.Equal(4, usage.AdditionalCounts["slow_visual_tokens"]);
        Assert.Equal(4, updates.Count); // role, two pieces (the second with the finish reason), usage; not the progress chunk
    }

    [Fact]
    public async Task ErrorObjects_AndOtherFailures_AreExceptions()
    {
        using (var client = Client(HttpStatusCode.TooManyRequests,
                   "{\"error\":{\"message\":\"the server is busy\",\"type\":\"rate_limit_exceeded\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}", "application/json"))
        {
            var e = await Assert.ThrowsAsync<OpenAIServerException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi")]));
            Assert.Equal("the server is busy", e.Message);
            Assert.Equal(HttpStatusCode.TooManyRequests, e.StatusCode);
            Assert.Equal("rate_limit_exceeded", e.Code);
        }
        using (var client = Client(HttpStatusCode.BadGateway, "<html>bad gateway</html>", "text/html"))
        {
            var e = await Assert.ThrowsAsync<OpenAIServerException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi")]));
            Assert.Equal("HTTP 502 Bad Gateway: <html>bad gateway</html>", e.Message);
        }
        using (var client = Client(HttpStatusCode.OK,
                   "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"took too long\",\"code\":\"timeout\"}}\n\n", "text/event-stream"))
        {
            var text = new StringBuilder();
            var e = await Assert.ThrowsAsync<OpenAIServerException>(async () =>
            {
                await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Hi")])) text.Append(u.Text);
            });
            Assert.Equal("a", text.ToString());
            Assert.Equal("took too long", e.Message);
            Assert.Null(e.StatusCode);
        }
    }

    [Fact]
    public async Task Request_GoesToChatCompletions_WithTheKeyAndModel()
    {
        var canned = new Canned(HttpStatusCode.OK,
            "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"length\"}]}",
            "application/json");
        using var client = new OpenAIVideoChatClient(new Uri("http://server.test/v1"), "m", "s3cret", new HttpClient(canned));
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { ModelId = "other" });
        Assert.Equal("ok", response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Null(response.Usage);
        Assert.Equal("http://server.test/v1/chat/completions", canned.LastUri!.AbsoluteUri);
        Assert.Equal("Bearer s3cret", canned.LastAuthorization);
        Assert.Contains("\"model\":\"other\"", canned.LastBody);
    }

    private sealed class Canned(HttpStatusCode status, string body, string mediaType) : HttpMessageHandler
    {
        public Uri? LastUri { get; private set; }
        public string? LastAuthorization { get; private set; }
        public string LastBody { get; private set; } = "";

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            LastUri = request.RequestUri;
            LastAuthorization = request.Headers.Authorization?.ToString();
            LastBody = await request.Content!.ReadAsStringAsync(cancellationToken);
            return new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, mediaType) };
        }
    }
}
