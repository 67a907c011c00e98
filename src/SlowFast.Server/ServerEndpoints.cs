using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;

namespace SlowFast.Server;

/// <summary>
/// The whole HTTP surface of <c>slowfast serve</c>, OpenAI-compatible:
/// <list type="bullet">
/// <item><c>GET /health</c>: the process answers; <c>GET /ready</c>: the model is loaded, with the engine's queue.</item>
/// <item><c>GET /metrics</c>: Prometheus text format (<see cref="ServerMetrics"/>).</item>
/// <item><c>GET /v1/models</c>, <c>GET /v1/models/{id}</c>: the one model served.</item>
/// <item><c>POST /v1/files</c>, <c>GET /v1/files</c>, <c>GET</c> and <c>DELETE /v1/files/{id}</c>: uploaded media (<see cref="FileEndpoints"/>).</item>
/// <item><c>POST /v1/chat/completions</c>: a chat about at most one video (<c>video_url</c>) or image
/// (<c>image_url</c>) given as a <c>data:</c>, <c>file://</c> or (with <c>--allow-remote-media</c>) <c>http(s)://</c>
/// URL, or a video given frame by frame (<c>data:video/jpeg;base64,F1,F2,...</c>, or several images with
/// <c>--images-as-video</c>); the answer as one
/// <c>chat.completion</c>, or with <c>stream: true</c> as server-sent <c>chat.completion.chunk</c>s ending
/// with <c>data: [DONE]</c>. Frames are sampled evenly (<c>frames</c>, vLLM's <c>media_io_kwargs.video.num_frames</c>,
/// SGLang's <c>video_url.max_frames</c>) or at a rate (<c>fps</c>, vLLM's <c>mm_processor_kwargs.fps</c>, SGLang's
/// <c>video_url.fps</c>). <c>usage</c> carries this server's <c>slowfast</c> object (frames, visual tokens, timings);
/// with <c>stream_options.include_progress</c> the stream also carries the vision tower's progress.</item>
/// </list>
/// Every refusal is OpenAI's error object with a 4xx status. When an API key is set, <c>/v1/*</c> needs
/// <c>Authorization: Bearer KEY</c>. A client that disconnects cancels its request in the engine. Chat
/// completions beyond <see cref="ServerOptions.MaxQueue"/> in flight get 429 with <c>Retry-After</c>. Each chat
/// completion ends with one structured log event (<see cref="RequestLog"/>).
/// </summary>
public static class ServerEndpoints
{
    /// <summary>Answers keep their text readable (no \uXXXX for every non-ASCII letter); nothing here is HTML.</summary>
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Map(WebApplication app, ChatBackend backend)
    {
        byte[]? apiKey = backend.Options.ApiKey is { Length: > 0 } k ? Encoding.UTF8.GetBytes(k) : null;
        // Outside the error handling below, so it counts the status codes of refusals too.
        app.UseHttpMetrics(o => o.SetMetricFactory(Metrics.WithCustomRegistry(backend.Metrics.Registry)));
        app.Use(async (ctx, next) =>
        {
            try
            {
                if (apiKey != null && ctx.Request.Path.StartsWithSegments("/v1") && !Authorized(ctx.Request, apiKey))
                    throw new ApiError(401, "missing or wrong API key (send Authorization: Bearer KEY)", code: "invalid_api_key");
                await next(ctx);
            }
            catch (ApiError e) when (!ctx.Response.HasStarted)
            {
                await WriteJson(ctx, e.Status, e.ToJson());
            }
            catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
            {
                await WriteJson(ctx, e.StatusCode, new ApiError(e.StatusCode, e.StatusCode == 413
                    ? $"the request body is larger than this server takes ({backend.Options.MaxUploadBytes} bytes)"
                    : e.Message, code: e.StatusCode == 413 ? "request_too_large" : null).ToJson());
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client went away; nobody is left to answer.
            }
        });

        app.MapGet("/health", () => Results.Json(new JsonObject { ["status"] = "ok" }));
        app.MapGet("/ready", () =>
        {
            var s = backend.Model.Engine.Stats;
            return Results.Json(new JsonObject { ["status"] = "ready", ["model"] = backend.ModelId, ["running"] = s.Running, ["waiting"] = s.Waiting });
        });
        app.MapMetrics("/metrics", backend.Metrics.Registry);
        app.MapGet("/v1/models", () => Results.Json(new JsonObject { ["object"] = "list", ["data"] = new JsonArray(ModelObject(backend)) }));
        app.MapGet("/v1/models/{id}", (string id) => id == backend.ModelId
            ? Results.Json(ModelObject(backend))
            : throw new ApiError(404, $"the model '{id}' does not exist (this server has '{backend.ModelId}')", "model", "model_not_found"));
        var requestLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(RequestLog.Category);
        app.MapPost("/v1/chat/completions", (HttpContext ctx) => ChatCompletionsAsync(ctx, backend, requestLog));
        FileEndpoints.Map(app, backend);
        WebPage.Map(app, backend);
        app.MapFallback((HttpContext ctx) =>
            throw new ApiError(404, $"no route {ctx.Request.Method} {ctx.Request.Path}", code: "not_found"));
    }

    /// <summary>
    /// A chat completion within the admission limit (<see cref="ServerOptions.MaxQueue"/>); beyond it, 429 with
    /// <c>Retry-After</c>. Every request, answered or refused, ends with one <see cref="RequestLog"/> event.
    /// </summary>
    private static async Task ChatCompletionsAsync(HttpContext ctx, ChatBackend backend, ILogger log)
    {
        long arrived = Stopwatch.GetTimestamp();
        var record = new RequestRecord("chatcmpl-" + Guid.NewGuid().ToString("N"));
        try
        {
            if (!backend.TryAdmit())
            {
                backend.Metrics.Rejected.Inc();
                ctx.Response.Headers.RetryAfter = backend.Options.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                throw new ApiError(429, $"the server is busy ({backend.Options.MaxQueue} requests in flight); retry later",
                    code: "rate_limit_exceeded", type: "rate_limit_exceeded");
            }
            try { await AdmittedAsync(ctx, backend, record, arrived); }
            finally { backend.Release(); }
        }
        catch (ApiError e) { record.Status = e.Status; throw; }
        catch (BadHttpRequestException e) { record.Status = e.StatusCode; throw; }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { record.Status = RequestRecord.ClientClosed; throw; }
        catch { record.Status = 500; throw; }
        finally { RequestLog.Write(log, record, Stopwatch.GetElapsedTime(arrived)); }
    }

    private static async Task AdmittedAsync(HttpContext ctx, ChatBackend backend, RequestRecord record, long arrived)
    {
        ChatRequest request = await ChatRequest.ReadAsync(ctx.Request.Body, backend.Options.ImagesAsVideo, ctx.RequestAborted);
        record.Model = request.Model;
        record.Stream = request.Stream;
        if (request.Model != backend.ModelId)
            throw new ApiError(404, $"the model '{request.Model}' does not exist (this server has '{backend.ModelId}')", "model", "model_not_found");

        // The client's disconnect and the time limit both cancel the work, media and generation alike.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        if (backend.Options.RequestTimeLimit is { } limit) cancel.CancelAfter(limit);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var events = new EventStream(ctx, record.Id, created, backend.ModelId);
        try
        {
            int[] ids = backend.BuildPrompt(request);
            EncodedMedia? media = null;
            if (request.Media is { } part)
            {
                media = request.Stream && request.IncludeProgress
                    ? await VisualWithProgressAsync(backend, request, part, ids, events, cancel.Token)
                    : await backend.GetVisualAsync(part, request.Frames, request.Fps, ids, null, cancel.Token);
                record.Media = media;
            }
            else
            {
                try { backend.Model.CheckPromptFits(ids, 0, "request"); }
                catch (UserError e) { throw ApiError.BadRequest(e.Message, "messages", "context_length_exceeded"); }
            }
            var options = backend.Options.Precision is { } p ? request.Options with { Precision = p } : request.Options;
            if (request.Stream) await StreamAsync(backend, request, ids, media, options, events, arrived, record, cancel.Token);
            else
            {
                var beforeSubmit = Stopwatch.GetElapsedTime(arrived);
                using var stop = new StopStrings(request.Stop, cancel.Token);
                var (result, fromEngine) = await stop.AwaitAsync(Completion(backend.Model.Engine.Submit(ids, media?.Tokens, options, stop.OnText(null), null, stop.Token).Completion), backend, ids, media?.Tokens);
                if (fromEngine) backend.Metrics.Observe(result, beforeSubmit);
                record.Result = result;
                var choice = new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Text },
                    ["logprobs"] = null,
                    ["finish_reason"] = FinishReasonOf(result),
                };
                var body = Envelope(record.Id, "chat.completion", created, backend.ModelId, choice);
                body["usage"] = Usage(result, media, beforeSubmit);
                await WriteJson(ctx, 200, body);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
        {
            var e = new ApiError(504, $"the request took longer than this server allows ({backend.Options.RequestTimeLimit})", code: "timeout", type: "timeout_error");
            record.Status = e.Status;
            if (!ctx.Response.HasStarted) await WriteJson(ctx, e.Status, e.ToJson());
            else await events.WriteAsync(e.ToJson());
        }
        catch (ApiError e) when (ctx.Response.HasStarted)
        {
            // The stream has started (progress or text): the error goes as an event, the way OpenAI sends one.
            record.Status = e.Status;
            await events.WriteAsync(e.ToJson());
        }
    }

    /// <summary>
    /// The request's visual tokens, with the vision tower's progress sent as it goes: the stream starts once
    /// the video is decoded, then one chunk per frame encoded, each with no choices and
    /// <c>"slowfast_progress": {"stage": "vision", "frames_done": k, "frames": N}</c>. Nothing is sent on a
    /// cache hit. A problem found before the stream starts is still a plain JSON error.
    /// </summary>
    private static async Task<EncodedMedia> VisualWithProgressAsync(ChatBackend backend, ChatRequest request, MediaPart part, int[] ids,
        EventStream events, CancellationToken cancel)
    {
        // The engine reports on its own thread; one writer sends the chunks in order.
        var progress = Channel.CreateUnbounded<(int Done, int Frames)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var pump = Task.Run(async () =>
        {
            await foreach (var (done, frames) in progress.Reader.ReadAllAsync(cancel))
            {
                var chunk = events.Chunk(null, null);
                chunk["slowfast_progress"] = new JsonObject { ["stage"] = "vision", ["frames_done"] = done, ["frames"] = frames };
                await events.WriteAsync(chunk);
            }
        }, cancel);
        try
        {
            return await backend.GetVisualAsync(part, request.Frames, request.Fps, ids, (done, frames) => progress.Writer.TryWrite((done, frames)), cancel);
        }
        finally
        {
            progress.Writer.TryComplete();
            // Its failures are the client's disconnect or the time limit, which the work itself reports.
            await pump.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>
    /// Server-sent events: a first chunk with the assistant role, one chunk per piece of text, a last chunk
    /// with the finish reason, the usage chunk (choices empty) when asked, then <c>data: [DONE]</c>. The
    /// headers go out with the first piece (or the first progress chunk), so a request the engine refuses
    /// before answering still gets a plain JSON error; an error after that is sent as an event with OpenAI's
    /// error object (by <see cref="AdmittedAsync"/>). The engine request never outlives this method.
    /// </summary>
    private static async Task StreamAsync(ChatBackend backend, ChatRequest request, int[] ids, EncodedMedia? media,
        GenerationOptions options, EventStream events, long arrived, RequestRecord record, CancellationToken cancel)
    {
        var beforeSubmit = Stopwatch.GetElapsedTime(arrived);
        var pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = new StopStrings(request.Stop, cancel);
        var submitted = backend.Model.Engine.Submit(ids, media?.Tokens, options, stop.OnText(piece => pieces.Writer.TryWrite(piece)), null, stop.Token);
        _ = submitted.Completion.ContinueWith(_ => pieces.Writer.TryComplete(), TaskScheduler.Default);
        try
        {
            await foreach (var piece in pieces.Reader.ReadAllAsync(cancel))
                await events.WriteAsync(events.Chunk(new JsonObject { ["content"] = piece }, null));
            var (result, fromEngine) = await stop.AwaitAsync(Completion(submitted.Completion), backend, ids, media?.Tokens);
            if (fromEngine) backend.Metrics.Observe(result, beforeSubmit);
            record.Result = result;
            if (stop.Flush() is { Length: > 0 } held) await events.WriteAsync(events.Chunk(new JsonObject { ["content"] = held }, null));
            await events.WriteAsync(events.Chunk(new JsonObject(), FinishReasonOf(result)));
            if (request.IncludeUsage)
            {
                var usage = events.Chunk(null, null);
                usage["usage"] = Usage(result, media, beforeSubmit);
                await events.WriteAsync(usage);
            }
            await events.DoneAsync();
        }
        finally
        {
            // Leaving with the engine request still running (the client went away, a write failed): cancel it
            // directly and wait until the engine has dropped it. The client's disconnect reaches stop.Token
            // through linked sources (RequestAborted, then ours, then stop's), one callback at a time on the
            // thread that cancels; the read above is woken by an earlier callback in that walk, and this method
            // can leave on another thread and dispose stop before the walk gets to it, which would unlink
            // stop.Token uncancelled and leave the engine decoding for nobody to the end of max_tokens.
            if (!submitted.Completion.IsCompleted)
            {
                stop.Abandon();
                await ((Task)submitted.Completion).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>
    /// The <c>text/event-stream</c> answer of one streamed request: <see cref="WriteAsync"/> starts it (headers,
    /// then the chunk with the assistant role) the first time anything is sent.
    /// </summary>
    private sealed class EventStream(HttpContext ctx, string id, long created, string model)
    {
        /// <summary>A <c>chat.completion.chunk</c>: with <paramref name="delta"/>, one choice; without, no choices (usage, progress).</summary>
        public JsonObject Chunk(JsonObject? delta, string? finish) => Envelope(id, "chat.completion.chunk", created, model,
            delta == null ? null : new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish });

        // Writes are cancelled only by the client going away, never by the time limit: Kestrel aborts the
        // connection when a write in flight is cancelled, and the client would get a reset instead of the
        // timeout event. A client that stops reading is Kestrel's to drop (its minimum response data rate).
        public async Task WriteAsync(JsonObject data)
        {
            if (!ctx.Response.HasStarted)
            {
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "text/event-stream; charset=utf-8";
                ctx.Response.Headers.CacheControl = "no-cache";
                ctx.Response.Headers["X-Accel-Buffering"] = "no";
                await SendAsync(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null).ToJsonString(Json));
            }
            await SendAsync(data.ToJsonString(Json));
        }

        public Task DoneAsync() => SendAsync("[DONE]");

        private async Task SendAsync(string payload)
        {
            await ctx.Response.WriteAsync("data: " + payload + "\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        }
    }

    /// <summary>The engine's answer; a request it refuses (a <see cref="UserError"/>) becomes a 400, anything else a 500.</summary>
    private static async Task<GenerationResult> Completion(Task<GenerationResult> completion)
    {
        try { return await completion; }
        catch (UserError e) { throw ApiError.BadRequest(e.Message); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new ApiError(500, $"internal error: {e.GetType().Name}: {e.Message}", type: "server_error", code: "internal_error");
        }
    }

    private static JsonObject Envelope(string id, string kind, long created, string model, JsonObject? choice) => new()
    {
        ["id"] = id,
        ["object"] = kind,
        ["created"] = created,
        ["model"] = model,
        ["system_fingerprint"] = null,
        ["choices"] = choice == null ? new JsonArray() : new JsonArray(choice),
    };

    /// <summary>
    /// OpenAI's usage, and this server's extension <c>slowfast</c>: the frames the video was sampled to, its fast
    /// and slow visual tokens, whether it came from the cache, and the seconds spent reading the media
    /// (<c>media_decode_seconds</c>), in the vision tower, in the prefill and generating, and until the first token.
    /// </summary>
    private static JsonObject Usage(GenerationResult r, EncodedMedia? media, TimeSpan beforeSubmit) => new()
    {
        ["prompt_tokens"] = r.PromptPositions,
        ["completion_tokens"] = r.TokenIds.Length,
        ["total_tokens"] = r.PromptPositions + r.TokenIds.Length,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = r.ReusedPositions },
        ["slowfast"] = new JsonObject
        {
            ["frames"] = media?.Frames ?? 0,
            ["fast_visual_tokens"] = media?.Tokens.FastCount ?? 0,
            ["slow_visual_tokens"] = media?.Tokens.SlowCount ?? 0,
            ["video_from_cache"] = media?.FromCache,
            ["media_decode_seconds"] = Seconds(media?.DecodeTime ?? TimeSpan.Zero),
            ["vision_seconds"] = Seconds(media?.VisionTime ?? TimeSpan.Zero),
            ["prefill_seconds"] = Seconds(r.PrefillTime),
            ["generation_seconds"] = Seconds(r.DecodeTime),
            ["time_to_first_token_seconds"] = Seconds(beforeSubmit + r.TimeToFirstToken),
        },
    };

    private static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 4);

    private static string FinishReasonOf(GenerationResult r) => r.FinishReason == FinishReason.Stop ? "stop" : "length";

    private static JsonObject ModelObject(ChatBackend b) => new()
    {
        ["id"] = b.ModelId,
        ["object"] = "model",
        ["created"] = b.Started.ToUnixTimeSeconds(),
        ["owned_by"] = "slowfast",
    };

    private static bool Authorized(HttpRequest request, byte[] key)
    {
        string header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        byte[] given = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
        // Constant time in the key's bytes; FixedTimeEquals is false at once for another length.
        return CryptographicOperations.FixedTimeEquals(given, key);
    }

    internal static async Task WriteJson(HttpContext ctx, int status, JsonObject body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await ctx.Response.WriteAsync(body.ToJsonString(Json), ctx.RequestAborted);
    }

}
