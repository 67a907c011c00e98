using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Chat;
using SlowFast.Model.Vision;

namespace SlowFast.Server;

/// <summary>
/// What the endpoints run on: the loaded model, its media processor, the encoded-video cache and the
/// media resolver. Builds a request's prompt (the whole conversation with the chat template, the video in
/// the user message that carries it) and its visual tokens (from the cache, else decoded and encoded once).
/// </summary>
public sealed class ChatBackend : IDisposable
{
    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), $"slowfast-serve-{Environment.ProcessId}-{Guid.NewGuid():N}");
    private readonly MediaResolver _resolver;
    private int _inFlight;

    public ServerOptions Options { get; }
    public SlowFastModel Model { get; }
    public SlowFastProcessor Processor { get; }
    public VideoFeatureCache Cache { get; }
    public string ModelId { get; }
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    /// <summary>Files uploaded with <c>POST /v1/files</c> (kept until deleted or the server stops).</summary>
    public UploadedFiles Files { get; }
    /// <summary>What <c>GET /metrics</c> exports.</summary>
    public ServerMetrics Metrics { get; }

    public ChatBackend(ServerOptions options)
    {
        Options = options;
        if (options.MaxFrames is < 1 or > Media.VideoOptions.MaxFrames)
            throw new UserError($"max frames must be 1..{Media.VideoOptions.MaxFrames} (got {options.MaxFrames})");
        if (options.MaxQueue < 1) throw new UserError($"max queue must be at least 1 (got {options.MaxQueue})");
        if (options.MediaRoot != null && !Directory.Exists(options.MediaRoot))
            throw new UserError($"{options.MediaRoot}: media root is not a directory");
        Files = new UploadedFiles(Path.Combine(_tempDir, "files"));
        _resolver = new MediaResolver(options.MediaRoot, _tempDir, Files);
        var engine = options.Precision is { } p ? new Model.Engine.EngineOptions { DefaultPrecision = p } : null;
        Model = SlowFastModel.Load(options.ModelDir, engine: engine);
        Processor = new SlowFastProcessor(Model.Config);
        Cache = new VideoFeatureCache(options.VideoCacheDir, options.VideoCacheBytes) { Warning = line => options.Log?.Invoke("cache: " + line) };
        Metrics = new ServerMetrics(() => InFlight, () => Model.Engine.Stats);
        ModelId = options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.ModelDir)));
    }

    /// <summary>Chat completions admitted and not yet answered (see <see cref="TryAdmit"/>).</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// Takes one of the <see cref="ServerOptions.MaxQueue"/> places for a chat completion, or returns false
    /// when all are taken; a true answer must be matched by one <see cref="Release"/>.
    /// </summary>
    public bool TryAdmit()
    {
        if (Interlocked.Increment(ref _inFlight) <= Options.MaxQueue) return true;
        Interlocked.Decrement(ref _inFlight);
        return false;
    }

    public void Release() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Token ids of the conversation: system messages (joined; none: the template's default), then every turn, then the open assistant turn.</summary>
    public int[] BuildPrompt(ChatRequest request)
    {
        var system = request.Messages.Where(m => m.Role == "system").Select(m => m.Text).ToList();
        var chat = new ChatConversation(system.Count > 0 ? string.Join("\n", system) : ChatConversation.DefaultSystemPrompt);
        foreach (var m in request.Messages)
        {
            if (m.Role == "user") chat.AddUser(m.Media != null ? MultimodalPrompt.VideoQuestion(m.Text) : m.Text);
            else if (m.Role == "assistant") chat.AddAssistant(m.Text);
        }
        return chat.AddAssistantPrompt().Tokenize(Model.Tokenizer);
    }

    /// <summary>
    /// The visual tokens of <paramref name="media"/>: the prompt is checked to fit with them first; then the
    /// cache is asked (the same video gives the same <see cref="VisualTokens"/> instance, so the engine reuses
    /// the conversation's prefix), else the file is decoded and the engine encodes it.
    /// </summary>
    public async Task<VisualTokens> GetVisualAsync(MediaPart media, int? requestFrames, int[] promptIds, CancellationToken cancel)
    {
        int? asked = media.Frames ?? requestFrames;
        if (asked is { } n && (n < 1 || n > Options.MaxFrames))
            throw ApiError.BadRequest($"frames must be 1..{Options.MaxFrames} on this server (got {n})", media.Frames != null ? media.Param + ".frames" : "frames", "too_many_frames");
        int frames = asked ?? Math.Min(Processor.DefaultFrames, Options.MaxFrames);

        using var file = _resolver.Resolve(media.Url, media.Param + ".url");
        var input = media.IsImage ? Processor.Image(file.Path) : Processor.Video(file.Path, frames);
        try { Model.CheckPromptFits(promptIds, input.Frames, "request"); }
        catch (UserError e) { throw ApiError.BadRequest(e.Message, "messages", "context_length_exceeded"); }

        var key = VideoFeatureKey.For(Model, await Task.Run(() => Processor.MediaKey(input, cancel), cancel), Options.Precision);
        if (Cache.TryGet(key, out var cached))
        {
            Metrics.VideoCacheHits.Inc();
            return cached;
        }
        Metrics.VideoCacheMisses.Inc();

        VideoInput pixels;
        try { pixels = await Task.Run(() => Processor.Load(input, cancel), cancel); }
        catch (UserError e)
        {
            Options.Log?.Invoke($"media: {e.Message}");
            throw ApiError.BadRequest($"the {(media.IsImage ? "image" : "video")} could not be decoded: {e.Message.Replace(file.Path, "media", StringComparison.Ordinal)}", media.Param, "invalid_media");
        }
        var tokens = await Model.Engine.EncodeAsync(pixels.PixelValues, pixels.FrameCount, Options.Precision, cancellation: cancel);
        Cache.Put(key, tokens);
        // The instance the cache keeps: later turns about this video get the very same one.
        return Cache.TryGet(key, out var kept) ? kept : tokens;
    }

    public void Dispose()
    {
        Model.Dispose();
        try { if (Directory.Exists(_tempDir)) Directory.Delete(_tempDir, recursive: true); } catch (IOException) { }
    }
}
