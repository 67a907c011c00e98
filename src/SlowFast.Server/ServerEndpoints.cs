using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
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
/// with <c>data: [DONE]</c>.</item>
/// </list>
/// Every refusal is OpenAI's error object with a 4xx status. When an API key is set, <c>/v1/*</c> needs
/// <c>Authorization: Bearer KEY</c>. A client that disconnects cancels its request in the engine. Chat
/// completions beyond <see cref="ServerOptions.MaxQueue"/> in flight get 429 with <c>Retry-After</c>.
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
        app.MapPost("/v1/chat/completions", (HttpContext ctx) => ChatCompletionsAsync(ctx, backend));
        FileEndpoints.Map(app, backend);
        WebPage.Map(app, backend);
        app.MapFallback((HttpContext ctx) =>
            throw new ApiError(404, $"no route {ctx.Request.Method} {ctx.Request.Path}", code: "not_found"));
    }

    /// <summary>A chat completion within the admission limit (<see cref="ServerOptions.MaxQueue"/>); beyond it, 429 with <c>Retry-After</c>.</summary>
    private static async Task ChatCompletionsAsync(HttpContext ctx, ChatBackend backend)
    {
        if (!backend.TryAdmit())
        {
            backend.Metrics.Rejected.Inc();
            ctx.Response.Headers.RetryAfter = backend.Options.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            throw new ApiError(429, $"the server is busy ({backend.Options.MaxQueue} requests in flight); retry later",
                code: "rate_limit_exceeded", type: "rate_limit_exceeded");
        }
        try { await AdmittedAsync(ctx, backend); }
        finally { backend.Release(); }
    }

    private static async Task AdmittedAsync(HttpContext ctx, ChatBackend backend)
    {
        long arrived = Stopwatch.GetTimestamp();
        ChatRequest request = await ChatRequest.ReadAsync(ctx.Request.Body, backend.Options.ImagesAsVideo, ctx.RequestAborted);
        if (request.Model != backend.ModelId)
            throw new ApiError(404, $"the model '{request.Model}' does not exist (this server has '{backend.ModelId}')", "model", "model_not_found");

        // The client's disconnect and the time limit both cancel the work, media and generation alike.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        if (backend.Options.RequestTimeLimit is { } limit) cancel.CancelAfter(limit);
        try
        {
            int[] ids = backend.BuildPrompt(request);
            VisualTokens? visual = null;
            if (request.Media is { } media) visual = await backend.GetVisualAsync(media, request.Frames, ids, cancel.Token);
            else
            {
                try { backend.Model.CheckPromptFits(ids, 0, "request"); }
                catch (UserError e) { throw ApiError.BadRequest(e.Message, "messages", "context_length_exceeded"); }
            }
            var options = backend.Options.Precision is { } p ? request.Options with { Precision = p } : request.Options;
            string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (request.Stream) await StreamAsync(ctx, backend, request, ids, visual, options, id, created, arrived, cancel.Token);
            else
            {
                var beforeSubmit = Stopwatch.GetElapsedTime(arrived);
                using var stop = new StopStrings(request.Stop, cancel.Token);
                var (result, fromEngine) = await stop.AwaitAsync(Completion(backend.Model.Engine.Submit(ids, visual, options, stop.OnText(null), null, stop.Token).Completion), backend, ids, visual);
                if (fromEngine) backend.Metrics.Observe(result, beforeSubmit);
                var choice = new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Text },
                    ["logprobs"] = null,
                    ["finish_reason"] = FinishReasonOf(result),
                };
                var body = Envelope(id, "chat.completion", created, backend.ModelId, choice);
                body["usage"] = Usage(result);
                await WriteJson(ctx, 200, body);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
        {
            var e = new ApiError(504, $"the request took longer than this server allows ({backend.Options.RequestTimeLimit})", code: "timeout", type: "timeout_error");
            if (!ctx.Response.HasStarted) await WriteJson(ctx, e.Status, e.ToJson());
            else await WriteEvent(ctx, e.ToJson(), default);
        }
    }

    /// <summary>
    /// Server-sent events: a first chunk with the assistant role, one chunk per piece of text, a last chunk
    /// with the finish reason, the usage chunk (choices empty) when asked, then <c>data: [DONE]</c>. The
    /// headers go out with the first piece, so a request the engine refuses before answering still gets a
    /// plain JSON error; an error after that is sent as an event with OpenAI's error object.
    /// </summary>
    private static async Task StreamAsync(HttpContext ctx, ChatBackend backend, ChatRequest request, int[] ids, VisualTokens? visual,
        GenerationOptions options, string id, long created, long arrived, CancellationToken cancel)
    {
        var beforeSubmit = Stopwatch.GetElapsedTime(arrived);
        var pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = new StopStrings(request.Stop, cancel);
        var submitted = backend.Model.Engine.Submit(ids, visual, options, stop.OnText(piece => pieces.Writer.TryWrite(piece)), null, stop.Token);
        _ = submitted.Completion.ContinueWith(_ => pieces.Writer.TryComplete(), TaskScheduler.Default);

        JsonObject Chunk(JsonObject delta, string? finish) => Envelope(id, "chat.completion.chunk", created, backend.ModelId,
            new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish });

        async Task StartAsync()
        {
            if (ctx.Response.HasStarted) return;
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/event-stream; charset=utf-8";
            ctx.Response.Headers.CacheControl = "no-cache";
            ctx.Response.Headers["X-Accel-Buffering"] = "no";
            await WriteEvent(ctx, Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null), cancel);
        }

        await foreach (var piece in pieces.Reader.ReadAllAsync(cancel))
        {
            await StartAsync();
            await WriteEvent(ctx, Chunk(new JsonObject { ["content"] = piece }, null), cancel);
        }
        GenerationResult result;
        try
        {
            (result, bool fromEngine) = await stop.AwaitAsync(Completion(submitted.Completion), backend, ids, visual);
            if (fromEngine) backend.Metrics.Observe(result, beforeSubmit);
        }
        catch (ApiError e) when (ctx.Response.HasStarted)
        {
            await WriteEvent(ctx, e.ToJson(), cancel);
            return;
        }
        await StartAsync();
        if (stop.Flush() is { Length: > 0 } held) await WriteEvent(ctx, Chunk(new JsonObject { ["content"] = held }, null), cancel);
        await WriteEvent(ctx, Chunk(new JsonObject(), FinishReasonOf(result)), cancel);
        if (request.IncludeUsage)
        {
            var usage = Envelope(id, "chat.completion.chunk", created, backend.ModelId, null);
            usage["usage"] = Usage(result);
            await WriteEvent(ctx, usage, cancel);
        }
        await ctx.Response.WriteAsync("data: [DONE]\n\n", cancel);
        await ctx.Response.Body.FlushAsync(cancel);
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

    private static JsonObject Usage(GenerationResult r) => new()
    {
        ["prompt_tokens"] = r.PromptPositions,
        ["completion_tokens"] = r.TokenIds.Length,
        ["total_tokens"] = r.PromptPositions + r.TokenIds.Length,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = r.ReusedPositions },
    };

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

    private static async Task WriteEvent(HttpContext ctx, JsonObject data, CancellationToken cancel)
    {
        await ctx.Response.WriteAsync("data: " + data.ToJsonString(Json) + "\n\n", cancel);
        await ctx.Response.Body.FlushAsync(cancel);
    }
}
