using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace SlowFast.Extensions.AI;

/// <summary>
/// Builds the JSON body of an OpenAI-compatible /v1/chat/completions request from Microsoft.Extensions.AI
/// messages, with video as <c>{"type":"video_url","video_url":{"url":...}}</c> parts (the form vLLM and
/// other video-capable servers read), which the stock OpenAI adapter leaves out. Text becomes
/// <c>{"type":"text"}</c> parts, images <c>image_url</c> parts; a <see cref="DataContent"/> is sent as a
/// data: URL, a <see cref="UriContent"/> as its URI. Post the body with any HTTP client.
/// </summary>
public static class OpenAIVideoRequests
{
    /// <summary>
    /// The request body. Options: temperature, top_p, top_k, seed, max_tokens, stop; each entry of
    /// <see cref="ChatOptions.AdditionalProperties"/> (e.g. "frames") is copied as a top-level field.
    /// With <paramref name="stream"/>, asks for server-sent events and the usage in the last chunk.
    /// </summary>
    public static JsonObject ChatCompletionBody(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        string? model = null, bool stream = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var body = new JsonObject();
        if ((model ?? options?.ModelId) is { } id) body["model"] = id;
        var array = new JsonArray();
        foreach (var message in messages) array.Add(Message(message));
        body["messages"] = array;
        if (options != null)
        {
            if (options.Temperature is { } t) body["temperature"] = t;
            if (options.TopP is { } p) body["top_p"] = p;
            if (options.TopK is { } k) body["top_k"] = k;
            if (options.Seed is { } s) body["seed"] = s;
            if (options.MaxOutputTokens is { } m) body["max_tokens"] = m;
            if (options.StopSequences is { Count: > 0 } stops) body["stop"] = new JsonArray(stops.Select(x => (JsonNode?)x).ToArray());
            if (options.AdditionalProperties is { } extra)
                foreach (var (name, value) in extra)
                    body[name] = value is null ? null : JsonSerializer.SerializeToNode(value, value.GetType());
        }
        if (stream)
        {
            body["stream"] = true;
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }
        return body;
    }

    /// <summary><see cref="ChatCompletionBody"/> as a UTF-8 JSON string.</summary>
    public static string ChatCompletionJson(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        string? model = null, bool stream = false) =>
        ChatCompletionBody(messages, options, model, stream).ToJsonString();

    private static JsonObject Message(ChatMessage message)
    {
        var result = new JsonObject { ["role"] = message.Role.Value };
        bool onlyText = message.Contents.All(c => c is TextContent);
        if (onlyText)
        {
            result["content"] = string.Concat(message.Contents.OfType<TextContent>().Select(c => c.Text));
            return result;
        }
        var parts = new JsonArray();
        foreach (var content in message.Contents)
        {
            switch (content)
            {
                case TextContent text:
                    parts.Add(new JsonObject { ["type"] = "text", ["text"] = text.Text });
                    break;
                case DataContent data when Kind(data.MediaType) is { } kind:
                    parts.Add(UrlPart(kind, data.Uri));
                    break;
                case UriContent uri when Kind(uri.MediaType) is { } kind:
                    parts.Add(UrlPart(kind, uri.Uri.ToString()));
                    break;
                case DataContent or UriContent:
                    throw new NotSupportedException($"OpenAIVideoRequests: media type '{(content as DataContent)?.MediaType ?? (content as UriContent)?.MediaType}' is not supported (video/* and image/* are)");
                default:
                    throw new NotSupportedException($"OpenAIVideoRequests: content of type {content.GetType().Name} is not supported (text, images, videos)");
            }
        }
        result["content"] = parts;
        return result;
    }

    private static string? Kind(string mediaType) =>
        mediaType.StartsWith("video/", StringComparison.OrdinalIgnoreCase) ? "video_url"
        : mediaType.StartsWith("image/", StringComparison.OrdinalIgnoreCase) ? "image_url"
        : null;

    private static JsonObject UrlPart(string kind, string url) =>
        new() { ["type"] = kind, [kind] = new JsonObject { ["url"] = url } };
}
