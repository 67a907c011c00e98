using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace SlowFast.Extensions.AI;

/// <summary>
/// Builds the JSON body of an OpenAI-compatible /v1/chat/completions request from Microsoft.Extensions.AI
/// messages, with video as <c>{"type":"video_url","video_url":{"url":...}}</c> parts (the form vLLM and
/// other video-capable servers read), which the stock OpenAI adapter leaves out. Text becomes
/// <c>{"type":"text"}</c> parts, images <c>image_url</c> parts; a <see cref="DataContent"/> is sent as a
/// data: URL, a <see cref="UriContent"/> as its URI. Post the body with any HTTP client, or use
/// <see cref="OpenAIVideoChatClient"/>, which does and reads the answer.
/// </summary>
public static class OpenAIVideoRequests
{
    /// <summary>
    /// The request body. Options: temperature, top_p, top_k, seed, max_tokens, stop. In
    /// <see cref="ChatOptions.AdditionalProperties"/>, "frames" (frames sampled from the video; with "fps", the
    /// most) and "fps" (sample at this rate) are written in the names both vLLM and SGLang read, which
    /// <c>slowfast serve</c> reads too: <c>media_io_kwargs.video.num_frames</c> and <c>mm_processor_kwargs.fps</c>
    /// (vLLM), and <c>max_frames</c> and <c>fps</c> in each <c>video_url</c> object (SGLang). Every other entry is
    /// copied as a top-level field (e.g. "repetition_penalty"). With <paramref name="stream"/>, asks for
    /// server-sent events and the usage in the last chunk.
    /// </summary>
    public static JsonObject ChatCompletionBody(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        string? model = null, bool stream = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var body = new JsonObject();
        if ((model ?? options?.ModelId) is { } id) body["model"] = id;
        int? frames = (int?)Number(options, "frames");
        double? fps = Number(options, "fps");
        var array = new JsonArray();
        foreach (var message in messages) array.Add(Message(message, frames, fps));
        body["messages"] = array;
        if (frames is { } n) body["media_io_kwargs"] = new JsonObject { ["video"] = new JsonObject { ["num_frames"] = n } };
        if (fps is { } f) body["mm_processor_kwargs"] = new JsonObject { ["fps"] = f };
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
                    if (name is not ("frames" or "fps"))
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

    private static JsonObject Message(ChatMessage message, int? frames, double? fps)
    {
        var result = new JsonObject { ["role"] = message.Role.Value };
        // A streamed answer kept in the history carries its usage; that is not part of the conversation.
        bool onlyText = message.Contents.All(c => c is TextContent or UsageContent);
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
                case UsageContent:
                    break;
                case DataContent data when Kind(data.MediaType) is { } kind:
                    parts.Add(UrlPart(kind, data.Uri, frames, fps));
                    break;
                case UriContent uri when Kind(uri.MediaType) is { } kind:
                    parts.Add(UrlPart(kind, uri.Uri.ToString(), frames, fps));
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

    private static JsonObject UrlPart(string kind, string url, int? frames, double? fps)
    {
        var target = new JsonObject { ["url"] = url };
        if (kind == "video_url")
        {
            if (frames is { } n) target["max_frames"] = n;
            if (fps is { } f) target["fps"] = f;
        }
        return new JsonObject { ["type"] = kind, [kind] = target };
    }

    /// <summary>An entry of <see cref="ChatOptions.AdditionalProperties"/> as a number (int, long, float, double, decimal, a number string or JSON number).</summary>
    internal static double? Number(ChatOptions? options, string name)
    {
        if (options?.AdditionalProperties is not { } properties || !properties.TryGetValue(name, out object? value) || value is null)
            return null;
        return value switch
        {
            int i => i,
            long l => l,
            float f => f,
            double d => d,
            decimal m => (double)m,
            string s when double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double parsed) => parsed,
            JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
            JsonValue v when v.TryGetValue(out double d) => d,
            _ => throw new ArgumentException($"option \"{name}\" must be a number (got {value})", nameof(options)),
        };
    }
}
