using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace SlowFast.Extensions.AI.Tests;

public class OpenAIVideoRequestsTests
{
    [Fact]
    public void Video_and_image_become_url_parts_and_options_become_fields()
    {
        byte[] bytes = [0, 1, 2, 3];
        var messages = new List<ChatMessage>
        {
            new(ChatRole.System, "Be brief."),
            new(ChatRole.User, [new DataContent(bytes, "video/mp4"), new TextContent("What happens?")]),
            new(ChatRole.Assistant, "A ball rolls."),
            new(ChatRole.User, [new UriContent(new Uri("https://example.com/a.png"), "image/png"), new UriContent(new Uri("file:///data/clip.webm"), "video/webm"), new TextContent("And here?")]),
        };
        var options = new ChatOptions
        {
            Temperature = 0.5f, TopP = 0.9f, TopK = 40, Seed = 7, MaxOutputTokens = 64, StopSequences = ["\n\n"],
            AdditionalProperties = new() { ["frames"] = 16, ["fps"] = 2.5, ["repetition_penalty"] = 1.05 },
        };
        var body = JsonNode.Parse(OpenAIVideoRequests.ChatCompletionJson(messages, options, model: "slowfast-7b", stream: true))!;

        Assert.Equal("slowfast-7b", (string?)body["model"]);
        var m = body["messages"]!.AsArray();
        Assert.Equal(4, m.Count);
        Assert.Equal("system", (string?)m[0]!["role"]);
        Assert.Equal("Be brief.", (string?)m[0]!["content"]);
        var first = m[1]!["content"]!.AsArray();
        Assert.Equal("video_url", (string?)first[0]!["type"]);
        Assert.Equal("data:video/mp4;base64," + Convert.ToBase64String(bytes), (string?)first[0]!["video_url"]!["url"]);
        // frames and fps in SGLang's place, inside every video_url object (not in image_url ones).
        Assert.Equal(16, (int)first[0]!["video_url"]!["max_frames"]!);
        Assert.Equal(2.5, (double)first[0]!["video_url"]!["fps"]!);
        Assert.Equal("text", (string?)first[1]!["type"]);
        Assert.Equal("What happens?", (string?)first[1]!["text"]);
        Assert.Equal("A ball rolls.", (string?)m[2]!["content"]);
        var last = m[3]!["content"]!.AsArray();
        Assert.Equal("image_url", (string?)last[0]!["type"]);
        Assert.Equal("https://example.com/a.png", (string?)last[0]!["image_url"]!["url"]);
        Assert.Equal("file:///data/clip.webm", (string?)last[1]!["video_url"]!["url"]);
        Assert.Null(last[0]!["image_url"]!["max_frames"]);
        Assert.Equal(16, (int)last[1]!["video_url"]!["max_frames"]!);

        Assert.Equal(0.5, (double)body["temperature"]!, 6);
        Assert.Equal(0.9, (double)body["top_p"]!, 6);
        Assert.Equal(40, (int)body["top_k"]!);
        Assert.Equal(7, (long)body["seed"]!);
        Assert.Equal(64, (int)body["max_tokens"]!);
        Assert.Equal("\n\n", (string?)body["stop"]![0]);
        // ... and in vLLM's: media_io_kwargs.video.num_frames, mm_processor_kwargs.fps; other entries as they are.
        Assert.Equal(16, (int)body["media_io_kwargs"]!["video"]!["num_frames"]!);
        Assert.Equal(2.5, (double)body["mm_processor_kwargs"]!["fps"]!);
        Assert.Null(body["frames"]);
        Assert.Null(body["fps"]);
        Assert.Equal(1.05, (double)body["repetition_penalty"]!);
        Assert.True((bool)body["stream"]!);
        Assert.True((bool)body["stream_options"]!["include_usage"]!);
    }

    [Fact]
    public void Plain_requests_have_only_what_was_given_and_unsupported_content_is_refused()
    {
        var body = OpenAIVideoRequests.ChatCompletionBody([new ChatMessage(ChatRole.User, "Hi")]);
        Assert.Equal("""{"messages":[{"role":"user","content":"Hi"}]}""", body.ToJsonString());
        Assert.Throws<NotSupportedException>(() => OpenAIVideoRequests.ChatCompletionBody(
            [new ChatMessage(ChatRole.User, [new DataContent(new byte[] { 1 }, "audio/wav"), new TextContent("x")])]));
    }
}
