using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Chat;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;

namespace SlowFast.Extensions.AI;

/// <summary>
/// An <see cref="IChatClient"/> over a loaded <see cref="SlowFastModel"/>, in process: every call is one
/// request to the model's engine, so any number of callers can share one client.
/// <para>
/// Messages: system, user and assistant, with <see cref="TextContent"/>; one video or image per
/// conversation, as a <see cref="DataContent"/> (bytes or a data: URI, media type video/* or image/*)
/// or a <see cref="UriContent"/> with a file: URI, in any user message (the model's "&lt;image&gt;"
/// placeholder goes at the start of that message, as the reference puts it in the first one). The
/// video is decoded and encoded once and kept in a <see cref="VideoFeatureCache"/>; later turns that
/// send it again get the same encoded tokens, so the engine reuses the earlier turns' prompt (see
/// <see cref="UsageDetails.CachedInputTokenCount"/>).
/// </para>
/// <para>
/// Options: <see cref="ChatOptions.Temperature"/>, <see cref="ChatOptions.TopP"/>, <see cref="ChatOptions.TopK"/>,
/// <see cref="ChatOptions.Seed"/>, <see cref="ChatOptions.MaxOutputTokens"/>, <see cref="ChatOptions.StopSequences"/>,
/// and in <see cref="ChatOptions.AdditionalProperties"/> "frames" (frames sampled from the video),
/// "fps" (sample at this rate instead, "frames" then caps the count) and "repetition_penalty". A response's
/// (and the last streamed update's) AdditionalProperties say "frames": how many the video was sampled to.
/// Stop sequences: the engine stops only at end tokens, so the client watches the streamed text and,
/// when a stop sequence appears, cancels the engine request and returns the answer up to (not
/// including) it, with finish reason Stop. While streaming, text that could be the start of a stop
/// sequence is held back until it is known not to be one.
/// </para>
/// </summary>
public sealed class SlowFastChatClient : IChatClient
{
    /// <summary>Provider name in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "slowfast";

    private readonly bool _ownsModel;
    private readonly SlowFastChatClientOptions _options;
    private readonly SemaphoreSlim _visualGate = new(1, 1);

    public SlowFastChatClient(SlowFastModel model, SlowFastChatClientOptions? options = null, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        _ownsModel = ownsModel;
        _options = options ?? new SlowFastChatClientOptions();
        Processor = new SlowFastProcessor(model.Config);
        FeatureCache = _options.FeatureCache ?? new VideoFeatureCache(directory: null);
        ModelId = _options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model.Path)));
        Metadata = new ChatClientMetadata(ProviderName, null, ModelId);
    }

    public SlowFastModel Model { get; }
    public SlowFastProcessor Processor { get; }
    public VideoFeatureCache FeatureCache { get; }
    public string ModelId { get; }
    public ChatClientMetadata Metadata { get; }

    // ------------------------------------------------------------------ IChatClient

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var prepared = await PrepareAsync(messages, options, cancellationToken).ConfigureAwait(false);
        var outcome = await RunAsync(prepared, null, cancellationToken).ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, outcome.Text) { MessageId = prepared.Id })
        {
            ResponseId = prepared.Id,
            ModelId = ModelId,
            CreatedAt = prepared.Created,
            FinishReason = outcome.FinishReason,
            Usage = outcome.Usage,
            RawRepresentation = outcome.Result,
            AdditionalProperties = outcome.Properties,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prepared = await PrepareAsync(messages, options, cancellationToken).ConfigureAwait(false);
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        // A caller that stops enumerating early cancels the engine request.
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var run = RunAsync(prepared, piece => channel.Writer.TryWrite(piece), abandon.Token);
        _ = run.ContinueWith(t => channel.Writer.TryComplete(), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Outcome outcome;
        try
        {
            await foreach (var piece in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                yield return Update(prepared, [new TextContent(piece)]);
            outcome = await run.ConfigureAwait(false); // rethrows a failure or cancellation
        }
        finally
        {
            if (!run.IsCompleted)
            {
                abandon.Cancel();
                try { await run.ConfigureAwait(false); } catch (OperationCanceledException) { }
            }
        }
        var last = Update(prepared, [new UsageContent(outcome.Usage)]);
        last.FinishReason = outcome.FinishReason;
        last.RawRepresentation = outcome.Result;
        last.AdditionalProperties = outcome.Properties;
        yield return last;
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType == typeof(SlowFastModel)) return Model;
        if (serviceType == typeof(InferenceEngine)) return Model.Engine;
        if (serviceType == typeof(SlowFastProcessor)) return Processor;
        if (serviceType == typeof(VideoFeatureCache)) return FeatureCache;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        _visualGate.Dispose();
        if (_ownsModel) Model.Dispose();
    }

    private ChatResponseUpdate Update(Prepared p, IList<AIContent> contents) => new(ChatRole.Assistant, contents)
    {
        ResponseId = p.Id,
        MessageId = p.Id,
        ModelId = ModelId,
        CreatedAt = p.Created,
    };

    // ------------------------------------------------------------------ running a request

    private sealed record Prepared(int[] InputIds, VisualTokens? Visual, GenerationOptions Generation, IList<string>? Stops,
        string Id, DateTimeOffset Created);

    private sealed record Outcome(string Text, ChatFinishReason FinishReason, UsageDetails Usage, GenerationResult? Result,
        AdditionalPropertiesDictionary Properties);

    private async Task<Outcome> RunAsync(Prepared p, Action<string>? emit, CancellationToken cancellation)
    {
        var filter = new StopSequenceFilter(p.Stops);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        void OnText(string piece)
        {
            if (filter.Stopped) return;
            string released = filter.Push(piece);
            if (released.Length > 0) emit?.Invoke(released);
            if (filter.Stopped) linked.Cancel(); // the engine frees the sequence at its next step
        }
        var request = Model.Engine.Submit(p.InputIds, p.Visual, p.Generation, OnText, null, linked.Token);
        GenerationResult? result = null;
        try
        {
            result = await request.Completion.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (filter.Stopped && !cancellation.IsCancellationRequested)
        {
            // Stopped by a stop sequence: the answer is what came before it.
        }
        if (result != null) filter.Push(""); // a stop sequence in the last piece
        string tail = filter.Flush();
        if (tail.Length > 0) emit?.Invoke(tail);

        var properties = new AdditionalPropertiesDictionary();
        // The frames the video was sampled to (with "fps", only known once it is decoded); 0 without one.
        properties["frames"] = p.Visual?.Plan.Frames ?? 0;
        UsageDetails usage;
        ChatFinishReason finish;
        if (result != null && !filter.Stopped)
        {
            finish = result.FinishReason == FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length;
            properties["finish_detail"] = result.FinishReason.ToString().ToLowerInvariant();
        }
        else
        {
            finish = ChatFinishReason.Stop;
            properties["finish_detail"] = "stop_sequence";
        }
        if (result != null)
        {
            usage = new UsageDetails
            {
                InputTokenCount = result.PromptPositions,
                OutputTokenCount = result.TokenIds.Length,
                CachedInputTokenCount = result.ReusedPositions,
            };
            properties["time_to_first_token_ms"] = result.TimeToFirstToken.TotalMilliseconds;
        }
        else
        {
            // Cancelled at a stop sequence: no engine result. The prompt's positions are its text tokens and
            // the video's fast tokens; the output count is the generated text re-tokenized (an estimate).
            usage = new UsageDetails
            {
                InputTokenCount = p.InputIds.Count(id => id != MultimodalPrompt.ImageTokenIndex) + (p.Visual?.FastCount ?? 0),
                OutputTokenCount = Model.Tokenizer.Encode(filter.Generated).Length,
            };
        }
        usage.TotalTokenCount = usage.InputTokenCount + usage.OutputTokenCount;
        return new Outcome(filter.Answer, finish, usage, result, properties);
    }

    // ------------------------------------------------------------------ messages → prompt

    private async Task<Prepared> PrepareAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.ToList();
        if (options?.Tools is { Count: > 0 })
            throw new NotSupportedException("SlowFastChatClient: tools (function calling) are not supported by this model");

        var system = new List<string>();
        var turns = new List<(ChatRole Role, string Text, bool HasVisual)>();
        AIContent? visual = null;
        foreach (var message in list)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            bool isUser = message.Role == ChatRole.User, isAssistant = message.Role == ChatRole.Assistant, isSystem = message.Role == ChatRole.System;
            if (!isUser && !isAssistant && !isSystem)
                throw new NotSupportedException($"SlowFastChatClient: messages of role '{message.Role}' are not supported (system, user and assistant are)");
            var text = new StringBuilder();
            bool hasVisual = false;
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case TextContent t:
                        text.Append(t.Text);
                        break;
                    case UsageContent when isAssistant: // a streamed answer's usage, kept in the history
                        break;
                    case DataContent or UriContent when IsVisual(content):
                        if (!isUser)
                            throw new NotSupportedException($"SlowFastChatClient: a video or image must be in a user message (found one in a {message.Role} message)");
                        if (visual != null)
                            throw new NotSupportedException("SlowFastChatClient: a conversation can carry one video or image (the model takes one visual input); found a second one");
                        visual = content;
                        hasVisual = true;
                        break;
                    case DataContent or UriContent:
                        throw new NotSupportedException($"SlowFastChatClient: media type '{MediaTypeOf(content)}' is not supported (video/* and image/* are)");
                    default:
                        throw new NotSupportedException($"SlowFastChatClient: content of type {content.GetType().Name} is not supported (text, and one video or image)");
                }
            }
            string s = text.ToString();
            if (s.Contains(MultimodalPrompt.ImageToken, StringComparison.Ordinal))
                throw new ArgumentException($"SlowFastChatClient: message text must not contain \"{MultimodalPrompt.ImageToken}\" (send the video as a DataContent or UriContent)", nameof(messages));
            if (isSystem) system.Add(s);
            else turns.Add((message.Role, s, hasVisual));
        }
        if (!turns.Any(t => t.Role == ChatRole.User))
            throw new ArgumentException("SlowFastChatClient: the conversation has no user message", nameof(messages));

        var chat = new ChatConversation(system.Count > 0 ? string.Join("\n", system) : _options.DefaultSystemPrompt);
        foreach (var (role, text, hasVisual) in turns)
        {
            if (role == ChatRole.User) chat.AddUser(hasVisual ? MultimodalPrompt.VideoQuestion(text, Model.Config.MmUseImStartEnd) : text);
            else chat.AddAssistant(text);
        }
        int[] ids = chat.AddAssistantPrompt().Tokenize(Model.Tokenizer);

        var generation = Generation(options);
        VisualTokens? tokens = null;
        if (visual != null)
        {
            var input = VisualInputFor(visual, options, out string? temporary);
            try
            {
                Model.CheckPromptFits(ids, input.Frames);
                tokens = await EncodeAsync(input, generation, cancellation).ConfigureAwait(false);
            }
            finally
            {
                if (temporary != null) TryDelete(temporary);
            }
        }
        else
        {
            Model.CheckPromptFits(ids, 0);
        }
        return new Prepared(ids, tokens, generation, options?.StopSequences, "slowfast-" + Guid.NewGuid().ToString("N"), DateTimeOffset.UtcNow);
    }

    private GenerationOptions Generation(ChatOptions? options)
    {
        var g = new GenerationOptions();
        if (_options.DefaultMaxOutputTokens is { } defaultMax) g = g with { MaxNewTokens = defaultMax };
        if (options == null) return g;
        if (options.MaxOutputTokens is { } max) g = g with { MaxNewTokens = max };
        if (options.Temperature is { } temperature) g = g with { Temperature = temperature };
        if (options.TopP is { } topP) g = g with { TopP = topP };
        if (options.TopK is { } topK) g = g with { TopK = topK };
        if (options.Seed is { } seed) g = g with { Seed = unchecked((ulong)seed) };
        if (Number(options, "repetition_penalty") is { } penalty) g = g with { RepetitionPenalty = penalty };
        g.Validate();
        return g;
    }

    // ------------------------------------------------------------------ the video

    private static bool IsVisual(AIContent content) =>
        MediaTypeOf(content) is { } type && (type.StartsWith("video/", StringComparison.OrdinalIgnoreCase) || type.StartsWith("image/", StringComparison.OrdinalIgnoreCase));

    private static string? MediaTypeOf(AIContent content) => content switch
    {
        DataContent d => d.MediaType,
        UriContent u => u.MediaType,
        _ => null,
    };

    private VisualInput VisualInputFor(AIContent content, ChatOptions? options, out string? temporary)
    {
        temporary = null;
        string mediaType = MediaTypeOf(content)!;
        string path;
        if (content is UriContent uri)
        {
            if (!uri.Uri.IsAbsoluteUri || !uri.Uri.IsFile)
                throw new NotSupportedException($"SlowFastChatClient: only file: URIs can be read (got {uri.Uri.Scheme}:); send the bytes as a DataContent instead");
            path = uri.Uri.LocalPath;
            if (!File.Exists(path)) throw new ArgumentException($"SlowFastChatClient: {path} does not exist", nameof(content));
        }
        else
        {
            var data = (DataContent)content;
            string extension = mediaType[(mediaType.IndexOf('/') + 1)..];
            if (!extension.All(char.IsAsciiLetterOrDigit)) extension = "bin";
            path = Path.Combine(Path.GetTempPath(), $"slowfast-chat-{Guid.NewGuid():N}.{extension}");
            File.WriteAllBytes(path, data.Data.ToArray());
            temporary = path;
        }
        if (mediaType.StartsWith("image/", StringComparison.OrdinalIgnoreCase))
            return Processor.Image(path);
        int? frames = (int?)Number(options, "frames") ?? _options.DefaultFrames;
        if (Number(options, "fps") is { } fps)
        {
            if (!(fps > 0)) throw new ArgumentOutOfRangeException(nameof(options), fps, "SlowFastChatClient: \"fps\" must be positive");
            return Processor.Video(path, options: Processor.VideoOptionsFor(frames) with { Sampling = SamplingMode.Fps, TargetFps = fps });
        }
        return Processor.Video(path, frames);
    }

    /// <summary>
    /// The video's tokens: from the feature cache (the same instance for the same media, so the engine's
    /// prefix reuse applies across turns), else decoded and encoded by the engine, then cached.
    /// One video is looked up or encoded at a time.
    /// </summary>
    private async Task<VisualTokens> EncodeAsync(VisualInput input, GenerationOptions generation, CancellationToken cancellation)
    {
        await _visualGate.WaitAsync(cancellation).ConfigureAwait(false);
        try
        {
            var precision = generation.Precision ?? Model.Engine.Options.DefaultPrecision;
            var key = await Task.Run(() => VideoFeatureKey.For(Model, Processor.MediaKey(input, cancellation), precision), cancellation).ConfigureAwait(false);
            if (FeatureCache.TryGet(key, out var cached)) return cached;
            var pixels = await Task.Run(() => Processor.Load(input, cancellation), cancellation).ConfigureAwait(false);
            var tokens = await Model.Engine.EncodeAsync(pixels.PixelValues, pixels.FrameCount, precision, cancellation: cancellation).ConfigureAwait(false);
            FeatureCache.Put(key, tokens);
            return FeatureCache.TryGet(key, out var kept) ? kept : tokens;
        }
        finally
        {
            _visualGate.Release();
        }
    }

    /// <summary>A number from <see cref="ChatOptions.AdditionalProperties"/>, read as the request builder reads it.</summary>
    private static double? Number(ChatOptions? options, string name) => OpenAIVideoRequests.Number(options, name);

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
