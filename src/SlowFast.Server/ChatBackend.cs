using System.Diagnostics;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Chat;
using SlowFast.Model.Vision;

namespace SlowFast.Server;

/// <summary>
/// A request's visual tokens and what getting them took: <see cref="DecodeTime"/> (reading and sampling the
/// media) and <see cref="VisionTime"/> (the vision tower), both zero when the tokens came from the cache.
/// </summary>
public sealed record EncodedMedia(VisualTokens Tokens, bool FromCache, TimeSpan DecodeTime, TimeSpan VisionTime)
{
    /// <summary>Frames the tokens were made from (1 for an image).</summary>
    public int Frames => Tokens.Plan.Frames;
}

/// <summary>
/// What the endpoints run on: the loaded model, its media processor, the encoded-video cache and the
/// media resolver. Builds a request's prompt (the whole conversation with the chat template, the video in
/// the user message that carries it) and its visual tokens (from the cache, else decoded and encoded once).
/// </summary>
public sealed class ChatBackend : IDisposable
{
    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), $"slowfast-serve-{Environment.ProcessId}-{Guid.NewGuid():N}");
    private readonly MediaResolver _resolver;
    private readonly RemoteMedia? _remote;
    private int _inFlight;

    public ServerOptions Options { get; }
    public SlowFastModel Model { get; }
    public SlowFastProcessor Processor { get; }
    public VideoFeatureCache Cache { get; }
    public string ModelId { get; }
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    /// <summary>Files uploaded with <c>POST /v1/files</c> (kept until deleted or the server stops).</summary>
    public UploadedFiles Files { get; }
    /// <summary>The vision tower's one-time work done at start-up (<see cref="SlowFastModel.PrepareVision"/>): zero when there was none.</summary>
    public TimeSpan VisionPreparation { get; }
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
        _remote = options.AllowRemoteMedia ? new RemoteMedia(options.MaxUploadBytes, options.RemoteMediaTimeLimit, options.AllowPrivateMedia) : null;
        _resolver = new MediaResolver(options.MediaRoot, _tempDir, Files, _remote);
        var engine = new Model.Engine.EngineOptions { QuantizeWeights = options.QuantizeWeights, PackVisionWeights = options.PackVisionWeights, PackDecoderWeights = options.PackDecoderWeights, VisionInt8 = options.VisionInt8 };
        if (options.Precision is { } p) engine = engine with { DefaultPrecision = p };
        Model = SlowFastModel.Load(options.ModelDir, engine: engine);
        VisionPreparation = Model.PrepareVision();   // before the server listens: the first video question does not wait for it
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
    /// <param name="requestFrames">The request's frame count (the part's own wins); with fps sampling, the most frames.</param>
    /// <param name="requestFps">The request's sampling rate (the part's own wins); null: the frames spread evenly over the video.</param>
    /// <param name="onEncoded">
    /// Called with (frames encoded, frames) once the video is decoded (0 done) and after each frame the vision
    /// tower finishes, on the engine's thread (keep it short); not called on a cache hit.
    /// </param>
    public async Task<EncodedMedia> GetVisualAsync(MediaPart media, int? requestFrames, double? requestFps, int[] promptIds,
        Action<int, int>? onEncoded, CancellationToken cancel)
    {
        int? asked = media.Frames ?? requestFrames;
        if (asked is { } n && (n < 1 || n > Options.MaxFrames))
            throw ApiError.BadRequest($"frames must be 1..{Options.MaxFrames} on this server (got {n})", media.Frames != null ? media.Param + ".frames" : "frames", "too_many_frames");
        int frames = asked ?? Math.Min(Processor.DefaultFrames, Options.MaxFrames);

        if (FramesOf(media) is { } frameList) return await GetFramesVisualAsync(media, frameList, promptIds, onEncoded, cancel);

        using var file = await _resolver.ResolveAsync(media.Url, media.Param + ".url", cancel);
        // The reference's fps sampling: every round(video fps / fps)-th frame, thinned evenly to the frame count
        // when there are more (FrameSampler.AtRate). The prompt is checked against the count, the most it can give.
        var input = media.IsImage ? Processor.Image(file.Path)
            : (media.Fps ?? requestFps) is { } fps ? Processor.Video(file.Path, options: Processor.VideoOptionsFor(frames) with { Sampling = SamplingMode.Fps, TargetFps = fps })
            : Processor.Video(file.Path, frames);
        try { Model.CheckPromptFits(promptIds, input.Frames, "request"); }
        catch (UserError e) { throw ApiError.BadRequest(e.Message, "messages", "context_length_exceeded"); }

        var key = VideoFeatureKey.For(Model, await Task.Run(() => Processor.MediaKey(input, cancel), cancel), Options.Precision);
        if (Cache.TryGet(key, out var cached))
        {
            Metrics.VideoCacheHits.Inc();
            return new EncodedMedia(cached, true, TimeSpan.Zero, TimeSpan.Zero);
        }
        Metrics.VideoCacheMisses.Inc();
        long decodeStart = Stopwatch.GetTimestamp();

        VideoInput pixels;
        try { pixels = await Task.Run(() => Processor.Load(input, cancel), cancel); }
        catch (UserError e)
        {
            Options.Log?.Invoke($"media: {e.Message}");
            throw ApiError.BadRequest($"the {(media.IsImage ? "image" : "video")} could not be decoded: {e.Message.Replace(file.Path, "media", StringComparison.Ordinal)}", media.Param, "invalid_media");
        }
        var decodeTime = Stopwatch.GetElapsedTime(decodeStart);
        long visionStart = Stopwatch.GetTimestamp();
        var tokens = await EncodeAsync(pixels.PixelValues, pixels.FrameCount, onEncoded, cancel);
        var visionTime = Stopwatch.GetElapsedTime(visionStart);
        Metrics.ObserveVision(decodeTime + visionTime, pixels.FrameCount);
        Cache.Put(key, tokens);
        // The instance the cache keeps: later turns about this video get the very same one.
        return new EncodedMedia(Cache.TryGet(key, out var kept) ? kept : tokens, false, decodeTime, visionTime);
    }

    /// <summary>The engine's vision tower over <paramref name="frames"/> frames, reporting (done, frames) to <paramref name="onEncoded"/>.</summary>
    private async Task<VisualTokens> EncodeAsync(float[] pixels, int frames, Action<int, int>? onEncoded, CancellationToken cancel)
    {
        onEncoded?.Invoke(0, frames);
        var progress = onEncoded == null ? null : new FramesEncoded(done => onEncoded(done, frames));
        try { return await Model.Engine.EncodeAsync(pixels, frames, Options.Precision, progress, cancellation: cancel); }
        catch (UserError e) { throw ApiError.BadRequest(e.Message, code: "invalid_media"); }
        catch (Exception e) when (e is not (OperationCanceledException or ApiError))
        {
            throw new ApiError(500, $"internal error in the vision tower: {e.GetType().Name}: {e.Message}", type: "server_error", code: "internal_error");
        }
    }

    /// <summary>
    /// Passes the engine's count of frames done on at once, on the engine's thread (<see cref="Progress{T}"/>
    /// would post it elsewhere, and the counts could arrive out of order).
    /// </summary>
    private sealed class FramesEncoded(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }

    /// <summary>
    /// The frames of a video given frame by frame: several images (<see cref="MediaPart.FrameImages"/>), or
    /// vLLM's <c>data:video/jpeg;base64,F1,F2,...</c> (each Fi a base64 JPEG); null for any other media.
    /// Each frame is a (url, param, name) triple.
    /// </summary>
    private static List<(string Url, string Param, string Name)>? FramesOf(MediaPart media)
    {
        if (media.FrameImages is { } images)
            return [.. images.Select((m, i) => (m.Url, m.Param + ".url", $"image {i}"))];
        const string jpegList = "data:video/jpeg;base64,";
        if (media.IsImage || !media.Url.StartsWith(jpegList, StringComparison.OrdinalIgnoreCase)) return null;
        return [.. media.Url[jpegList.Length..].Split(',').Select((f, i) => ("data:image/jpeg;base64," + f.Trim(), media.Param + ".url", $"frame {i}"))];
    }

    /// <summary>
    /// A video of the given frames: each is decoded and made square as a video frame is (the video's size
    /// and aspect mode), then they are stacked in order. Cached by the SHA-256 of all the frames' bytes.
    /// </summary>
    private async Task<EncodedMedia> GetFramesVisualAsync(MediaPart media, List<(string Url, string Param, string Name)> frameList,
        int[] promptIds, Action<int, int>? onEncoded, CancellationToken cancel)
    {
        if (frameList.Count > Options.MaxFrames)
            throw ApiError.BadRequest($"the video has {frameList.Count} frames; this server takes at most {Options.MaxFrames}", media.Param, "too_many_frames");
        try { Model.CheckPromptFits(promptIds, frameList.Count, "request"); }
        catch (UserError e) { throw ApiError.BadRequest(e.Message, "messages", "context_length_exceeded"); }

        var files = new List<ResolvedMedia>();
        try
        {
            foreach (var (url, param, name) in frameList)
            {
                try { files.Add(await _resolver.ResolveAsync(url, param, cancel)); }
                catch (ApiError e) { throw new ApiError(e.Status, $"{name} of the video: {e.Message}", e.Param, e.Code, e.Type); }
            }
            var options = Processor.VideoOptionsFor(1) with { Aspect = Processor.VideoAspect };
            var inputs = files.Select(f => new VisualInput(VisualInputKind.Image, f.Path, 1, options)).ToList();
            string sha = await Task.Run(() =>
            {
                using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                foreach (var f in files)
                {
                    cancel.ThrowIfCancellationRequested();
                    byte[] bytes = File.ReadAllBytes(f.Path);
                    hash.AppendData(BitConverter.GetBytes((long)bytes.Length));
                    hash.AppendData(bytes);
                }
                return Convert.ToHexStringLower(hash.GetHashAndReset());
            }, cancel);
            var mediaKey = new MediaKey(sha, $"media.sha256={sha}\nmedia.kind=frames\nmedia.size={options.Size}\nmedia.aspect={options.Aspect.ToString().ToLowerInvariant()}\nmedia.frames={files.Count}\n");
            var key = VideoFeatureKey.For(Model, mediaKey, Options.Precision);
            if (Cache.TryGet(key, out var cached))
            {
                Metrics.VideoCacheHits.Inc();
                return new EncodedMedia(cached, true, TimeSpan.Zero, TimeSpan.Zero);
            }
            Metrics.VideoCacheMisses.Inc();
            long decodeStart = Stopwatch.GetTimestamp();

            var pixels = new float[files.Count * 3 * Processor.ImageSize * Processor.ImageSize];
            for (int i = 0; i < inputs.Count; i++)
            {
                VideoInput frame;
                try { frame = await Task.Run(() => Processor.Load(inputs[i], cancel), cancel); }
                catch (UserError e)
                {
                    Options.Log?.Invoke($"media: {e.Message}");
                    throw ApiError.BadRequest($"{frameList[i].Name} of the video could not be decoded: {e.Message.Replace(inputs[i].Path, "media", StringComparison.Ordinal)}",
                        frameList[i].Param, "invalid_media");
                }
                frame.PixelValues.AsSpan(0, frame.FrameLength).CopyTo(pixels.AsSpan(i * frame.FrameLength));
            }
            var decodeTime = Stopwatch.GetElapsedTime(decodeStart);
            long visionStart = Stopwatch.GetTimestamp();
            var tokens = await EncodeAsync(pixels, files.Count, onEncoded, cancel);
            var visionTime = Stopwatch.GetElapsedTime(visionStart);
            Metrics.ObserveVision(decodeTime + visionTime, files.Count);
            Cache.Put(key, tokens);
            return new EncodedMedia(Cache.TryGet(key, out var kept) ? kept : tokens, false, decodeTime, visionTime);
        }
        finally
        {
            foreach (var f in files) f.Dispose();
        }
    }

    public void Dispose()
    {
        _remote?.Dispose();
        Model.Dispose();
        try { if (Directory.Exists(_tempDir)) Directory.Delete(_tempDir, recursive: true); } catch (IOException) { }
    }
}
