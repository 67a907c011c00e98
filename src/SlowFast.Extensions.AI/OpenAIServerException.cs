using System.Net;
using System.Text.Json.Nodes;

namespace SlowFast.Extensions.AI;

/// <summary>
/// An OpenAI-compatible server refused or failed a request: <see cref="Exception.Message"/> is the server's own
/// message (from its <c>{"error": {"message", "type", "param", "code"}}</c> object when it sent one), with the
/// HTTP status (<see cref="HttpRequestException.StatusCode"/>; null for an error sent inside a stream that had
/// started) and the error object's other fields.
/// </summary>
public sealed class OpenAIServerException : HttpRequestException
{
    public OpenAIServerException(string message, HttpStatusCode? statusCode, string? errorType = null, string? param = null, string? code = null)
        : base(message, null, statusCode)
    {
        ErrorType = errorType;
        Param = param;
        Code = code;
    }

    /// <summary>The error object's <c>type</c> (e.g. invalid_request_error).</summary>
    public string? ErrorType { get; }
    /// <summary>The request field the server blames (e.g. <c>messages[0].content[1].video_url</c>).</summary>
    public string? Param { get; }
    /// <summary>The error object's <c>code</c> (e.g. invalid_media, rate_limit_exceeded).</summary>
    public string? Code { get; }

    /// <summary>The exception for an error object (<c>{"error": {...}}</c>), or null when <paramref name="body"/> is none.</summary>
    internal static OpenAIServerException? FromErrorObject(JsonNode? body, HttpStatusCode? status)
    {
        if (body is not JsonObject o || o["error"] is not JsonNode error) return null;
        string? Field(string name) => error is JsonObject e && e[name] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        string message = error is JsonValue plain && plain.TryGetValue(out string? text) ? text : Field("message") ?? error.ToJsonString();
        return new OpenAIServerException(message, status, Field("type"), Field("param"), Field("code"));
    }
}
