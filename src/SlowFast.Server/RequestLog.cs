using Microsoft.Extensions.Logging;
using SlowFast.Model.Generation;

namespace SlowFast.Server;

/// <summary>What one chat completion did, filled in as it goes, for its <see cref="RequestLog"/> event.</summary>
internal sealed class RequestRecord(string id)
{
    /// <summary>nginx's status for a client that closed the connection before the answer (no response is sent).</summary>
    public const int ClientClosed = 499;

    /// <summary>The response's id (<c>chatcmpl-...</c>), also in the log.</summary>
    public string Id { get; } = id;
    /// <summary>The model the request named; null until its body is read.</summary>
    public string? Model { get; set; }
    public bool Stream { get; set; }
    /// <summary>The HTTP status, or for an error sent inside a stream that had started, the error's status.</summary>
    public int Status { get; set; } = 200;
    public EncodedMedia? Media { get; set; }
    public GenerationResult? Result { get; set; }
}

/// <summary>
/// The structured log of <c>POST /v1/chat/completions</c>: one event per request, answered or refused, under
/// the category <see cref="Category"/> with event id 1 (<c>ChatCompletion</c>). Its fields (message-template
/// names): RequestId, Model, Status, Stream, PromptTokens, CachedTokens, CompletionTokens, Frames,
/// MediaDecodeSeconds, VisionSeconds, PrefillSeconds, GenerationSeconds, TotalSeconds. Token counts and
/// times are 0 for what a request did not get to.
/// </summary>
public static partial class RequestLog
{
    public const string Category = "SlowFast.Server.Requests";

    internal static void Write(ILogger logger, RequestRecord r, TimeSpan total)
    {
        var result = r.Result;
        ChatCompletion(logger, r.Id, r.Model ?? "", r.Status, r.Stream,
            result?.PromptPositions ?? 0, result?.ReusedPositions ?? 0, result?.TokenIds.Length ?? 0, r.Media?.Frames ?? 0,
            Seconds(r.Media?.DecodeTime), Seconds(r.Media?.VisionTime), Seconds(result?.PrefillTime), Seconds(result?.DecodeTime), Seconds(total));
    }

    private static double Seconds(TimeSpan? t) => Math.Round((t ?? TimeSpan.Zero).TotalSeconds, 4);

    [LoggerMessage(EventId = 1, EventName = "ChatCompletion", Level = LogLevel.Information,
        Message = "chat completion {RequestId} model {Model} status {Status} stream {Stream}: {PromptTokens} prompt tokens ({CachedTokens} cached), " +
            "{CompletionTokens} completion tokens, {Frames} frames; media decode {MediaDecodeSeconds} s, vision {VisionSeconds} s, " +
            "prefill {PrefillSeconds} s, generation {GenerationSeconds} s, {TotalSeconds} s in all")]
    private static partial void ChatCompletion(ILogger logger, string requestId, string model, int status, bool stream,
        int promptTokens, int cachedTokens, int completionTokens, int frames,
        double mediaDecodeSeconds, double visionSeconds, double prefillSeconds, double generationSeconds, double totalSeconds);
}
