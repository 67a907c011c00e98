using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace SlowFast.Extensions.AI;

/// <summary>
/// An <see cref="IChatClient"/> for any OpenAI-compatible chat completions server — <c>slowfast serve</c>, vLLM,
/// SGLang — that sends videos, which the stock OpenAI adapter drops: a <see cref="DataContent"/> or
/// <see cref="UriContent"/> with a video/* (or image/*) media type becomes a <c>video_url</c> (or
/// <c>image_url</c>) part, bytes as a data: URL (<see cref="OpenAIVideoRequests"/> builds the body).
/// <para>
/// Options: temperature, top_p, top_k, seed, max_tokens, stop; in <see cref="ChatOptions.AdditionalProperties"/>,
/// "frames" and "fps" in vLLM's and SGLang's names, anything else as a top-level field. Streaming reads the
/// server-sent <c>chat.completion.chunk</c>s into <see cref="ChatResponseUpdate"/>s, the usage chunk into a
/// <see cref="UsageContent"/>. <c>usage.prompt_tokens_details.cached_tokens</c> becomes
/// <see cref="UsageDetails.CachedInputTokenCount"/>, and the whole-number fields of <c>slowfast serve</c>'s
/// usage extension (frames, fast and slow visual tokens) go into <see cref="UsageDetails.AdditionalCounts"/>.
/// A refusal, or an error event inside a stream, is an <see cref="OpenAIServerException"/> with the server's
/// message. Cancelling closes the connection, which a server takes as the end of the request.
/// </para>
/// </summary>
public sealed class OpenAIVideoChatClient : IChatClient
{
    /// <summary>Provider name in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "openai-compatible";

    private static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly Uri _completions;
    private readonly string? _apiKey;

    /// <param name="endpoint">The API's base address, as OpenAI clients take it: <c>http://127.0.0.1:8080/v1</c>.</param>
    /// <param name="model">The model id sent with every request (a request's <see cref="ChatOptions.ModelId"/> wins).</param>
    /// <param name="apiKey">Sent as <c>Authorization: Bearer KEY</c>; null: no header.</param>
    /// <param name="httpClient">
    /// The client to send with (its timeout applies to whole answers; set its handler's <c>MaxResponseDrainSize</c> to 0
    /// so that a stream abandoned early closes its connection); null: one of its own, with no timeout and no draining.
    /// </param>
    public OpenAIVideoChatClient(Uri endpoint, string model, string? apiKey = null, HttpClient? httpClient = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrEmpty(model);
        if (!endpoint.IsAbsoluteUri) throw new ArgumentException("the endpoint must be an absolute URI (e.g. http://127.0.0.1:8080/v1)", nameof(endpoint));
        Endpoint = endpoint;
        ModelId = model;
        _apiKey = string.IsNullOrEmpty(apiKey) ? null : apiKey;
        _completions = new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/chat/completions");
        _ownsHttp = httpClient == null;
        // No draining of an answer left unread: the connection closes at once, which the server takes as the end
        // of the request (a drained one would be generated on for nobody).
        _http = httpClient ?? new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { Timeout = Timeout.InfiniteTimeSpan };
        Metadata = new ChatClientMetadata(ProviderName, endpoint, model);
    }

    public Uri Endpoint { get; }
    public string ModelId { get; }
    public ChatClientMetadata Metadata { get; }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        using var request = Request(messages, options, stream: false);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode) throw Failure(response, text);
        var body = Parse(text, response) as JsonObject ?? throw Malformed("the answer is not a JSON object");
        var choice = body["choices"] is JsonArray { Count: > 0 } choices ? choices[0] as JsonObject : null;
        var message = choice?["message"] as JsonObject ?? throw Malformed("the answer has no choices[0].message");
        string content = message["content"] is JsonValue v && v.TryGetValue(out string? s) ? s : "";
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, content) { MessageId = String(body, "id") })
        {
            ResponseId = String(body, "id"),
            ModelId = String(body, "model"),
            CreatedAt = Created(body),
            FinishReason = FinishReason(choice),
            Usage = Usage(body["usage"] as JsonObject),
            RawRepresentation = body,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var request = Request(messages, options, stream: true);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw Failure(response, await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await foreach (string data in Events(reader, cancellationToken).ConfigureAwait(false))
        {
            // Events already read ahead are not handed out once the caller has cancelled.
            cancellationToken.ThrowIfCancellationRequested();
            if (data == "[DONE]") yield break;
            var chunk = Parse(data, response) as JsonObject ?? throw Malformed("a stream event is not a JSON object");
            if (OpenAIServerException.FromErrorObject(chunk, null) is { } error) throw error;
            if (Update(chunk) is { } update) yield return update;
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }

    // ------------------------------------------------------------------ request

    private HttpRequestMessage Request(IEnumerable<ChatMessage> messages, ChatOptions? options, bool stream)
    {
        var body = OpenAIVideoRequests.ChatCompletionBody(messages, options, options?.ModelId ?? ModelId, stream);
        var request = new HttpRequestMessage(HttpMethod.Post, _completions)
        {
            Content = new StringContent(body.ToJsonString(Json), Encoding.UTF8, "application/json"),
        };
        if (_apiKey != null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        return request;
    }

    // ------------------------------------------------------------------ answers

    /// <summary>One chunk as an update: its text, role and finish reason, and the usage when it has one; null when it has none of these.</summary>
    private static ChatResponseUpdate? Update(JsonObject chunk)
    {
        var contents = new List<AIContent>();
        var choice = chunk["choices"] is JsonArray { Count: > 0 } choices ? choices[0] as JsonObject : null;
        var delta = choice?["delta"] as JsonObject;
        if (delta?["content"] is JsonValue c && c.TryGetValue(out string? text) && text.Length > 0) contents.Add(new TextContent(text));
        if (chunk["usage"] is JsonObject usage) contents.Add(new UsageContent(Usage(usage)!));
        var finish = FinishReason(choice);
        string? role = delta?["role"] is JsonValue r && r.TryGetValue(out string? rs) ? rs : null;
        if (contents.Count == 0 && finish == null && role == null) return null;
        return new ChatResponseUpdate(role != null ? new ChatRole(role) : ChatRole.Assistant, contents)
        {
            ResponseId = String(chunk, "id"),
            MessageId = String(chunk, "id"),
            ModelId = String(chunk, "model"),
            CreatedAt = Created(chunk),
            FinishReason = finish,
            RawRepresentation = chunk,
        };
    }

    /// <summary>The data of each server-sent event (several data lines joined by newlines), as it arrives.</summary>
    private static async IAsyncEnumerable<string> Events(StreamReader reader, [EnumeratorCancellation] CancellationToken cancel)
    {
        var data = new StringBuilder();
        bool any = false;
        while (await reader.ReadLineAsync(cancel).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                if (any) yield return data.ToString();
                data.Clear();
                any = false;
                continue;
            }
            if (!line.StartsWith("data:", StringComparison.Ordinal)) continue; // comments, event names, ids
            if (any) data.Append('\n');
            data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
            any = true;
        }
        if (any) yield return data.ToString();
    }

    private static UsageDetails? Usage(JsonObject? usage)
    {
        if (usage == null) return null;
        var details = new UsageDetails
        {
            InputTokenCount = Long(usage, "prompt_tokens"),
            OutputTokenCount = Long(usage, "completion_tokens"),
            TotalTokenCount = Long(usage, "total_tokens"),
            CachedInputTokenCount = usage["prompt_tokens_details"] is JsonObject d ? Long(d, "cached_tokens") : null,
        };
        if (usage["slowfast"] is JsonObject extension)
        {
            foreach (string name in new[] { "frames", "fast_visual_tokens", "slow_visual_tokens" })
                if (Long(extension, name) is { } n) (details.AdditionalCounts ??= [])[name] = n;
        }
        return details;
    }

    private static ChatFinishReason? FinishReason(JsonObject? choice) =>
        choice?["finish_reason"] is JsonValue v && v.TryGetValue(out string? reason)
            ? reason switch
            {
                "stop" => ChatFinishReason.Stop,
                "length" => ChatFinishReason.Length,
                "content_filter" => ChatFinishReason.ContentFilter,
                "tool_calls" => ChatFinishReason.ToolCalls,
                _ => new ChatFinishReason(reason),
            }
            : null;

    private static DateTimeOffset? Created(JsonObject o) => Long(o, "created") is { } seconds ? DateTimeOffset.FromUnixTimeSeconds(seconds) : null;

    private static string? String(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static long? Long(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue(out long n) ? n : null;

    // ------------------------------------------------------------------ failures

    private static JsonNode? Parse(string text, HttpResponseMessage response)
    {
        try { return JsonNode.Parse(text); }
        catch (JsonException e)
        {
            throw new OpenAIServerException($"the server's answer is not JSON ({e.Message}): {Shorten(text)}", response.IsSuccessStatusCode ? null : response.StatusCode);
        }
    }

    private static OpenAIServerException Failure(HttpResponseMessage response, string text)
    {
        JsonNode? body = null;
        try { body = JsonNode.Parse(text); } catch (JsonException) { }
        return OpenAIServerException.FromErrorObject(body, response.StatusCode)
            ?? new OpenAIServerException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}{(text.Length > 0 ? ": " + Shorten(text) : "")}", response.StatusCode);
    }

    private static OpenAIServerException Malformed(string what) => new($"not an OpenAI chat completion: {what}", null);

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
