using System.Text;
using System.Text.Json;
using SlowFast.Model.Chat;
using SlowFast.Model.Generation;

namespace SlowFast.Server;

/// <summary>
/// A video (<c>video_url</c>) or still image (<c>image_url</c>) of a message; <see cref="Param"/> names it in errors.
/// With <see cref="FrameImages"/> (several <c>image_url</c> parts of one message, with <c>--images-as-video</c>)
/// it is one video whose frames are those images, in order. <see cref="Frames"/> and <see cref="Fps"/> are the part's
/// own sampling fields (<c>video_url.frames</c> or SGLang's <c>max_frames</c>, and SGLang's <c>fps</c>).
/// </summary>
public sealed record MediaPart(bool IsImage, string Url, int? Frames, string Param, IReadOnlyList<MediaPart>? FrameImages = null, double? Fps = null);

/// <summary>One message: its role (system, user or assistant), its text parts joined by newlines, and its media, if any.</summary>
public sealed record ChatMessage(string Role, string Text, MediaPart? Media);

/// <summary>
/// The body of <c>POST /v1/chat/completions</c>, read from JSON with OpenAI's shapes. Every problem is an
/// <see cref="ApiError"/> (400) naming the offending field in <c>param</c>. Fields this server does not use
/// (<c>user</c>, <c>logprobs</c> false, <c>n</c> 1, ...) are ignored.
/// </summary>
/// <param name="Frames">Frames to sample from the video (with <see cref="Fps"/>: the most frames); null: the server's default.</param>
/// <param name="Fps">Sample the video at this many frames a second (the reference's fps sampling), capped at the frame count; null: uniform sampling.</param>
/// <param name="IncludeProgress">
/// <c>stream_options.include_progress</c> (this server's extension): while the video is encoded, the stream carries
/// chunks with no choices and a <c>slowfast_progress</c> object (<see cref="ServerEndpoints"/>).
/// </param>
public sealed record ChatRequest(string Model, IReadOnlyList<ChatMessage> Messages, bool Stream, bool IncludeUsage,
    GenerationOptions Options, int? Frames, IReadOnlyList<string>? Stop = null, double? Fps = null, bool IncludeProgress = false)
{
    /// <summary>At most this many <c>stop</c> strings (OpenAI's limit).</summary>
    public const int MaxStops = 4;

    /// <summary>The one media part of the conversation (more than one is refused when parsing).</summary>
    public MediaPart? Media => Messages.Select(m => m.Media).FirstOrDefault(m => m != null);

    /// <summary>Reads a request body: JSON that is not well-formed is an <see cref="ApiError"/> (400, invalid_json), like every other problem.</summary>
    public static async Task<ChatRequest> ReadAsync(Stream body, bool imagesAsVideo, CancellationToken cancel)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(body, default, cancel);
            return Parse(doc.RootElement, imagesAsVideo);
        }
        catch (JsonException e)
        {
            throw ApiError.BadRequest($"the request body is not valid JSON ({e.Message.Split('\n')[0]})", code: "invalid_json");
        }
        catch (InvalidOperationException e)
        {
            // JsonDocument checks text only when it is read: invalid UTF-8, or an escaped lone surrogate.
            throw ApiError.BadRequest($"the request body holds text that is not valid Unicode ({e.Message.Split('\n')[0]})", code: "invalid_json");
        }
    }

    /// <param name="imagesAsVideo">Several <c>image_url</c> parts of one message are the frames of one video (else: a 400).</param>
    public static ChatRequest Parse(JsonElement root, bool imagesAsVideo = false)
    {
        if (root.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("the request body must be a JSON object");
        string model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String
            ? m.GetString()! : throw ApiError.BadRequest("'model' is required (a string)", "model", "missing_required_parameter");

        if (!root.TryGetProperty("messages", out var msgs) || msgs.ValueKind != JsonValueKind.Array || msgs.GetArrayLength() == 0)
            throw ApiError.BadRequest("'messages' is required (a non-empty array)", "messages", "missing_required_parameter");
        var messages = new List<ChatMessage>();
        int i = 0;
        foreach (var msg in msgs.EnumerateArray()) messages.Add(ParseMessage(msg, $"messages[{i++}]", imagesAsVideo));
        if (messages.Count(x => x.Media != null) > 1)
            throw ApiError.BadRequest("only one video or image per conversation is supported", "messages", "too_many_media");
        if (messages[^1].Role != "user")
            throw ApiError.BadRequest("the last message must be the user's", $"messages[{messages.Count - 1}].role");

        bool stream = Bool(root, "stream") ?? false;
        bool streamOptions = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object;
        bool includeUsage = streamOptions && (Bool(so, "include_usage", "stream_options.include_usage") ?? false);
        bool includeProgress = streamOptions && (Bool(so, "include_progress", "stream_options.include_progress") ?? false);
        if ((Int(root, "n") ?? 1) != 1) throw ApiError.BadRequest("only n = 1 is supported", "n");

        var defaults = new GenerationOptions();
        var options = new GenerationOptions
        {
            MaxNewTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens") ?? defaults.MaxNewTokens,
            Temperature = Number(root, "temperature") ?? defaults.Temperature,
            TopP = Number(root, "top_p") ?? defaults.TopP,
            TopK = Int(root, "top_k") ?? defaults.TopK,
            RepetitionPenalty = Number(root, "repetition_penalty") ?? defaults.RepetitionPenalty,
            Seed = root.TryGetProperty("seed", out var seed) && seed.ValueKind != JsonValueKind.Null
                ? seed.TryGetInt64(out long s) ? unchecked((ulong)s) : throw ApiError.BadRequest("'seed' must be an integer", "seed")
                : defaults.Seed,
        };
        try { options.Validate(); }
        catch (UserError e) { throw ApiError.BadRequest(e.Message, ParamOf(e.Message)); }
        return new ChatRequest(model, messages, stream, includeUsage, options, RequestFrames(root), Stops(root), RequestFps(root), includeProgress);
    }

    /// <summary><c>stop</c>: a string or an array of up to <see cref="MaxStops"/> strings; empty strings are ignored.</summary>
    private static IReadOnlyList<string>? Stops(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var v) || v.ValueKind == JsonValueKind.Null) return null;
        const string shape = "'stop' must be a string or an array of up to 4 strings";
        if (v.ValueKind == JsonValueKind.String) return v.GetString() is { Length: > 0 } one ? [one] : null;
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() > MaxStops) throw ApiError.BadRequest(shape, "stop");
        var stops = new List<string>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String) throw ApiError.BadRequest(shape, "stop");
            if (e.GetString() is { Length: > 0 } s) stops.Add(s);
        }
        return stops.Count > 0 ? stops : null;
    }

    /// <summary>
    /// <c>frames</c>, or vLLM's <c>media_io_kwargs: {"video": {"num_frames": N}}</c> (the same thing;
    /// <c>frames</c> wins when both are given).
    /// </summary>
    private static int? RequestFrames(JsonElement root)
    {
        if (Int(root, "frames") is { } frames) return frames;
        if (!root.TryGetProperty("media_io_kwargs", out var kw) || kw.ValueKind == JsonValueKind.Null) return null;
        if (kw.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("'media_io_kwargs' must be an object", "media_io_kwargs");
        if (!kw.TryGetProperty("video", out var video) || video.ValueKind == JsonValueKind.Null) return null;
        if (video.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("'media_io_kwargs.video' must be an object", "media_io_kwargs.video");
        return Int(video, "num_frames", "media_io_kwargs.video.num_frames");
    }

    /// <summary>
    /// <c>fps</c>, or vLLM's <c>mm_processor_kwargs: {"fps": F}</c>, or its video loader's
    /// <c>media_io_kwargs: {"video": {"fps": F}}</c>, in that order of precedence.
    /// </summary>
    private static double? RequestFps(JsonElement root)
    {
        if (Rate(root, "fps", "fps") is { } fps) return fps;
        if (root.TryGetProperty("mm_processor_kwargs", out var mm) && mm.ValueKind != JsonValueKind.Null)
        {
            if (mm.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("'mm_processor_kwargs' must be an object", "mm_processor_kwargs");
            if (Rate(mm, "fps", "mm_processor_kwargs.fps") is { } f) return f;
        }
        // media_io_kwargs was checked to be an object (or null) by RequestFrames.
        if (root.TryGetProperty("media_io_kwargs", out var kw) && kw.ValueKind == JsonValueKind.Object
            && kw.TryGetProperty("video", out var video) && video.ValueKind == JsonValueKind.Object)
            return Rate(video, "fps", "media_io_kwargs.video.fps");
        return null;
    }

    /// <summary>A sampling rate: a positive, finite number of frames a second.</summary>
    private static double? Rate(JsonElement o, string name, string param) =>
        Number(o, name, param) switch
        {
            null => null,
            > 0 and var f when double.IsFinite(f) => f,
            var f => throw ApiError.BadRequest($"'{name}' must be a positive number of frames a second (got {f})", param, "invalid_fps"),
        };

    private static string? ParamOf(string message) => message switch
    {
        _ when message.StartsWith("max new tokens", StringComparison.Ordinal) => "max_tokens",
        _ when message.StartsWith("temperature", StringComparison.Ordinal) => "temperature",
        _ when message.StartsWith("top-p", StringComparison.Ordinal) => "top_p",
        _ when message.StartsWith("top-k", StringComparison.Ordinal) => "top_k",
        _ when message.StartsWith("repetition", StringComparison.Ordinal) => "repetition_penalty",
        _ => null,
    };

    private static ChatMessage ParseMessage(JsonElement msg, string param, bool imagesAsVideo)
    {
        if (msg.ValueKind != JsonValueKind.Object) throw ApiError.BadRequest("each message must be an object", param);
        string role = msg.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : throw ApiError.BadRequest("'role' is required", param + ".role");
        role = role switch
        {
            "developer" => "system",
            "system" or "user" or "assistant" => role,
            _ => throw ApiError.BadRequest($"role '{role}' is not supported (system, developer, user, assistant)", param + ".role"),
        };
        if (!msg.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            if (role == "assistant") return new ChatMessage(role, "", null);
            throw ApiError.BadRequest("'content' is required", param + ".content");
        }
        if (content.ValueKind == JsonValueKind.String) return new ChatMessage(role, CheckText(content.GetString()!, param + ".content"), null);
        if (content.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest("'content' must be a string or an array of parts", param + ".content");

        var text = new StringBuilder();
        MediaPart? media = null;
        var images = new List<MediaPart>();
        int j = 0;
        foreach (var part in content.EnumerateArray())
        {
            string p = $"{param}.content[{j++}]";
            string type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
                ? t.GetString()! : throw ApiError.BadRequest("each content part needs a 'type'", p + ".type");
            switch (type)
            {
                case "text":
                    string s = part.TryGetProperty("text", out var tx) && tx.ValueKind == JsonValueKind.String ? tx.GetString()! : throw ApiError.BadRequest("a text part needs 'text' (a string)", p + ".text");
                    if (text.Length > 0) text.Append('\n');
                    text.Append(CheckText(s, p + ".text"));
                    break;
                case "video_url" or "image_url" or "input_video":
                    if (role != "user") throw ApiError.BadRequest($"only user messages may carry a video or image, not {role} messages", p);
                    var parsed = ParseMedia(part, type, p);
                    if (imagesAsVideo && parsed.IsImage && (media == null || images.Count > 0))
                    {
                        images.Add(parsed);
                        media = images.Count == 1 ? parsed : images[0] with { IsImage = false, Frames = null, Fps = null, FrameImages = images.ToArray() };
                        break;
                    }
                    if (media != null)
                        throw ApiError.BadRequest(imagesAsVideo || !(parsed.IsImage && media.IsImage)
                            ? "only one video or image per conversation is supported"
                            : "only one image per conversation is supported (start the server with --images-as-video to send several images as the frames of one video)",
                            p, "too_many_media");
                    media = parsed;
                    break;
                default:
                    throw ApiError.BadRequest($"content part type '{type}' is not supported (text, video_url, image_url, input_video)", p + ".type", "unsupported_content_type");
            }
        }
        return new ChatMessage(role, text.ToString(), media);
    }

    /// <summary>
    /// <c>{"type":"video_url","video_url":{"url":...}}</c> or <c>"video_url":"..."</c> (likewise image_url), or
    /// llama.cpp's <c>{"type":"input_video","input_video":{"data": BASE64}}</c> (or <c>{"url": ...}</c>).
    /// </summary>
    private static MediaPart ParseMedia(JsonElement part, string type, string param)
    {
        if (!part.TryGetProperty(type, out var v)) throw ApiError.BadRequest($"a {type} part needs '{type}'", param + "." + type);
        string? url = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("url", out var u) && u.ValueKind == JsonValueKind.String => u.GetString(),
            JsonValueKind.Object when type == "input_video" && v.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.String
                => "data:video/*;base64," + d.GetString(),
            _ => null,
        };
        if (url == null)
            throw ApiError.BadRequest(type == "input_video"
                ? "'input_video' must be {\"data\": BASE64} or {\"url\": ...}"
                : $"'{type}' must be a URL string or {{\"url\": ...}}", param + "." + type);
        // SGLang's max_frames means the same as frames here.
        int? frames = v.ValueKind == JsonValueKind.Object
            ? Int(v, "frames", param + "." + type + ".frames") ?? Int(v, "max_frames", param + "." + type + ".max_frames")
            : null;
        double? fps = v.ValueKind == JsonValueKind.Object ? Rate(v, "fps", param + "." + type + ".fps") : null;
        return new MediaPart(type == "image_url", url, frames, param + "." + type, Fps: fps);
    }

    /// <summary>The text "&lt;image&gt;" marks where the video goes; a client's text may not contain it.</summary>
    private static string CheckText(string text, string param) =>
        text.Contains(MultimodalPrompt.ImageToken, StringComparison.Ordinal)
            ? throw ApiError.BadRequest($"text may not contain \"{MultimodalPrompt.ImageToken}\" (send the video as a video_url part)", param)
            : text;

    private static bool? Bool(JsonElement o, string name, string? param = null) =>
        !o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
        : throw ApiError.BadRequest($"'{name}' must be true or false", param ?? name);

    private static int? Int(JsonElement o, string name, string? param = null) =>
        !o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i
        : throw ApiError.BadRequest($"'{name}' must be an integer", param ?? name);

    private static double? Number(JsonElement o, string name, string? param = null) =>
        !o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number ? v.GetDouble()
        : throw ApiError.BadRequest($"'{name}' must be a number", param ?? name);
}
