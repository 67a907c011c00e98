using SlowFast.Tensors.Kernels;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using SlowFast.Model.Chat;
using SlowFast.Model.Decoder;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;
using SlowFast.Model.Tokenization;
using SlowFast.Model.Vision;

namespace SlowFast.Model;

/// <summary>
/// A slow-fast video LLM loaded once and asked many questions, by many callers at once: the checkpoint
/// (memory-mapped, shared, never written), its tokenizer, and the <see cref="InferenceEngine"/> that
/// runs every request on it.
/// <code>
/// using var model = SlowFastModel.Load("models/tiny");
/// var video = model.EncodeVideo(pixels, frames);           // [frames, 3, S, S] CLIP-normalized
/// var chat = model.StartConversation(video);
/// var answer = chat.Ask("What happens?", new GenerationOptions(), piece => Console.Write(piece));
/// var followUp = chat.Ask("And then?");                    // runs only the new positions
/// </code>
/// </summary>
/// <remarks>
/// Thread safety: every method may be called from any thread at any time. Requests are scheduled by
/// the engine: decoding sequences run together in one batch, prompts and videos are processed in
/// chunks between decoding steps (see <see cref="EngineOptions"/>).
/// </remarks>
public sealed class SlowFastModel : IDisposable
{
    private readonly ModelDirectory _directory;

    public SlowFastConfig Config => _directory.Config;
    public string Path => _directory.Path;
    public QwenTokenizer Tokenizer { get; }
    /// <summary>Ids that end an answer: &lt;|im_end|&gt; and &lt;|endoftext|&gt;.</summary>
    public IReadOnlyCollection<int> StopTokens { get; }
    /// <summary>The scheduler every request of this model goes through.</summary>
    public InferenceEngine Engine { get; }

    internal VisionEncoder Vision { get; }
    internal Qwen2Decoder Decoder { get; }

    private SlowFastModel(ModelDirectory directory, QwenTokenizer tokenizer, EngineOptions? engine)
    {
        _directory = directory;
        Tokenizer = tokenizer;
        Vision = new VisionEncoder(directory);
        Vision.Tower.PackWeights = engine?.PackVisionWeights ?? true;
        Vision.Tower.MlpInt8 = engine?.VisionInt8 ?? false;
        Decoder = new Qwen2Decoder(directory.Config, DecoderWeights.From(directory));
        StopTokens = new HashSet<int> { tokenizer.ImEndId, tokenizer.EndOfTextId };
        Engine = new InferenceEngine(Decoder, Vision, Tokenizer, StopTokens, engine);
    }

    /// <summary>
    /// Opens a checkpoint directory (config.json, *.safetensors, tokenizer.json). A missing or misshapen
    /// tensor (tower, projector, decoder) is a <see cref="UserError"/> naming it.
    /// </summary>
    /// <param name="tokenizerJson">A tokenizer.json to use instead of the one in the directory.</param>
    /// <param name="engine">How requests share the model (concurrency, memory, arithmetic); null: defaults.</param>
    public static SlowFastModel Load(string dir, string? tokenizerJson = null, EngineOptions? engine = null)
    {
        engine ??= new EngineOptions();
        engine.Validate();
        bool packDecoder = engine.PackDecoderWeights && MatMul.Effective(engine.DefaultPrecision) == MatMulPrecision.BFloat16;
        var directory = ModelDirectory.Open(dir, engine.QuantizeWeights, packDecoder);
        try
        {
            string path = tokenizerJson ?? System.IO.Path.Combine(dir, "tokenizer.json");
            if (!File.Exists(path)) throw new UserError($"{dir}: no tokenizer.json in the model directory");
            return new SlowFastModel(directory, QwenTokenizer.FromFile(path), engine);
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    // ------------------------------------------------------------------ vision

    /// <summary>
    /// Encodes a video ([frames, 3, S, S] normalized pixels; one frame = an image) into its fast and slow
    /// visual tokens, once, for any number of questions (see <c>InferenceEngine.EncodeAsync</c>).
    /// </summary>
    public VisualTokens EncodeVideo(float[] pixels, int frames, IProgress<int>? progress = null,
        CancellationToken cancellation = default, bool keepIntermediates = false, MatMulPrecision? precision = null) =>
        Engine.EncodeAsync(pixels, frames, precision, progress, keepIntermediates, cancellation).GetAwaiter().GetResult();

    /// <summary>
    /// Encodes the frames of <paramref name="frames"/> as they are read from it (a video is decoded frame
    /// by frame into the tower), so memory does not grow with the frame count beyond the tokens.
    /// </summary>
    public VisualTokens EncodeVideo(Media.FrameStream frames, IProgress<int>? progress = null,
        CancellationToken cancellation = default, MatMulPrecision? precision = null) =>
        Engine.EncodeAsync(frames.FrameCount, (_, chw) => frames.ReadNext(chw), precision, progress, false, cancellation).GetAwaiter().GetResult();

    /// <summary>
    /// Time the vision tower has spent packing its matrices for bfloat16 arithmetic (once, inside the
    /// first bfloat16 frame's time: <see cref="Vision.ConvNextTower.PackingTime"/>); zero with
    /// <see cref="EngineOptions.PackVisionWeights"/> off or in float32 arithmetic.
    /// </summary>
    public TimeSpan VisionPackingTime => Vision.Tower.PackingTime;

    /// <summary>
    /// What loading did with the decoder's matrices for bfloat16 arithmetic
    /// (<see cref="EngineOptions.PackDecoderWeights"/>): packed, with the time it took; or why not.
    /// </summary>
    public string DecoderPacking => _directory.PackDecoderAtLoad
        ? FormattableString.Invariant($"decoder matrices packed for the bf16 GEMM in {_directory.DecoderPackingTime.TotalSeconds:F1} s")
        : _directory.PackingDeclined is { } why ? $"decoder matrices not packed: {why}" : "decoder matrices as stored";

    /// <summary>
    /// Does the vision tower's one-time work now (packing its matrices for the engine's default
    /// arithmetic, <see cref="Vision.ConvNextTower.Prepare"/>) rather than inside the first video's time:
    /// for a server, before it listens. Returns the time it took (zero when there was nothing to do).
    /// </summary>
    public TimeSpan PrepareVision() => Vision.Tower.Prepare(Engine.Options.DefaultPrecision);

    // ------------------------------------------------------------------ prompts

    /// <summary>Token ids of a one-question chat prompt (qwen_1_5 template, "&lt;image&gt;\n" + question when there is visual input).</summary>
    public int[] QuestionPrompt(string question, bool withVisual, string? systemPrompt = ChatConversation.DefaultSystemPrompt)
    {
        var chat = new ChatConversation(systemPrompt).AddUser(withVisual ? Chat.MultimodalPrompt.VideoQuestion(question) : question).AddAssistantPrompt();
        return chat.Tokenize(Tokenizer);
    }

    /// <summary>
    /// Refuses, before any decoding or vision work, a prompt that with the visual tokens of
    /// <paramref name="frames"/> frames (0: none) would not fit in the context.
    /// </summary>
    public void CheckPromptFits(int[] inputIds, int frames, string what = "prompt", VisualDesign design = VisualDesign.SlowFast)
    {
        int text = inputIds.Count(id => id != DecoderPrompt.ImagePlaceholder);
        var plan = frames > 0 ? VisualTokenPlan.For(Config, frames) : null;
        int fast = plan == null ? 0 : design == VisualDesign.Baseline ? plan.SlowTokens : plan.FastTokens;
        DecoderPrompt.CheckFits(Config, text, fast, what);
    }

    /// <summary>
    /// Refuses, before any work, a request about <paramref name="frames"/> frames whose tokens, caches and
    /// activations would not fit in the memory left (<see cref="MemoryEstimate"/>), its video encoded in
    /// <paramref name="precision"/> (default: the engine's): the tower's matrices count only as far as the
    /// tower has yet to make them for that arithmetic.
    /// </summary>
    public void CheckMemory(int[] inputIds, int frames, string what = "prompt", VisualDesign design = VisualDesign.SlowFast, long? available = null,
        MatMulPrecision? precision = null)
    {
        if (frames <= 0) return;
        int text = inputIds.Count(id => id != DecoderPrompt.ImagePlaceholder);
        MemoryEstimate.For(Config, frames, design, text, prefillChunk: Engine.Options.PrefillChunkTokens,
            towerMatrixBytes: Vision.Tower.MatrixBytesToPrepare(precision ?? Engine.Options.DefaultPrecision)).Check(frames, what, available);
    }

    public Conversation StartConversation(VisualTokens? video = null, string? systemPrompt = ChatConversation.DefaultSystemPrompt) =>
        new(this, video, systemPrompt);

    // ------------------------------------------------------------------ generation and forward

    /// <summary>
    /// Generates an answer for a tokenized prompt (with the -200 placeholder where <paramref name="visual"/>'s
    /// fast tokens go), waiting for it. <paramref name="onText"/> receives the answer's text as it is produced.
    /// </summary>
    public GenerationResult Generate(int[] inputIds, VisualTokens? visual, GenerationOptions? options = null,
        Action<string>? onText = null, Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default) =>
        Engine.Submit(inputIds, visual, options, onText, onPrefillDone, cancellation).Completion.GetAwaiter().GetResult();

    /// <summary>
    /// The logits of every prompt position, [Positions, Vocab] float32, for comparison with other
    /// implementations (the sequence is the prompt with the fast tokens inserted).
    /// </summary>
    public ForwardResult Forward(int[] inputIds, VisualTokens? visual, CancellationToken cancellation = default, MatMulPrecision? precision = null) =>
        Engine.ForwardAsync(inputIds, visual, precision, cancellation).GetAwaiter().GetResult();

    public void Dispose()
    {
        Engine.Dispose();
        _directory.Dispose();
    }
}

/// <summary>The result of <see cref="SlowFastModel.Forward"/>.</summary>
public sealed record ForwardResult(float[] Logits, int Positions, int Vocab, int[] InputIds, int[] TokenTypes, VisualTokens? Visual);

/// <summary>
/// A multi-turn chat, optionally about one encoded video (encoded once, reused by every turn). Each turn
/// is the whole chat prompt (video placeholder in the first user message), as the reference would run
/// it for the same conversation: earlier answers become prompt text (type 1), which in the text-only
/// hybrid layers attend to the slow tokens. The positions it shares with the previous turn's prompt
/// are taken from the engine's prefix cache, with the same result.
/// </summary>
public sealed class Conversation
{
    private readonly SlowFastModel _model;
    private readonly ChatConversation _history;

    public VisualTokens? Video { get; }
    public IReadOnlyList<ChatTurn> Messages => _history.Messages;

    internal Conversation(SlowFastModel model, VisualTokens? video, string? systemPrompt)
    {
        _model = model;
        Video = video;
        _history = new ChatConversation(systemPrompt);
    }

    /// <summary>
    /// Asks the next question and waits for the answer, which is added to the conversation. The engine
    /// finds the earlier turns' prompt in its prefix cache, so only the previous answer and the new
    /// question run. One question at a time per conversation.
    /// </summary>
    public GenerationResult Ask(string question, GenerationOptions? options = null, Action<string>? onText = null,
        Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default) =>
        AskAsync(question, options, onText, onPrefillDone, cancellation).GetAwaiter().GetResult();

    /// <summary>Asks the next question (see <see cref="Ask"/>); <paramref name="onText"/> runs on the engine's thread.</summary>
    public async Task<GenerationResult> AskAsync(string question, GenerationOptions? options = null, Action<string>? onText = null,
        Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default)
    {
        // The video goes with the first question, as the reference's chat puts it in the first user message.
        string message = _history.Messages.Count == 0 && Video != null ? Chat.MultimodalPrompt.VideoQuestion(question) : question;
        var turn = new ChatConversation(_history.SystemPrompt);
        foreach (var m in _history.Messages)
        {
            if (m.Role == ChatSpeaker.User) turn.AddUser(m.Text!);
            else turn.AddAssistant(m.Text!);
        }
        var ids = turn.AddUser(message).AddAssistantPrompt().Tokenize(_model.Tokenizer);
        var result = await _model.Engine.Submit(ids, Video, options, onText, onPrefillDone, cancellation).Completion.ConfigureAwait(false);
        _history.AddUser(message);
        _history.AddAssistant(result.Text);
        return result;
    }

    /// <summary>
    /// Streams the answer's text pieces as they are generated; the enumeration ends when the answer is
    /// complete (and added to the conversation), and rethrows a failure or cancellation.
    /// </summary>
    public async IAsyncEnumerable<string> AskStreamingAsync(string question, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var answer = AskAsync(question, options, piece => channel.Writer.TryWrite(piece), null, cancellation);
        _ = answer.ContinueWith(t => channel.Writer.TryComplete(t.Exception?.InnerException ?? (t.IsCanceled ? new OperationCanceledException(cancellation) : null)),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        await foreach (var piece in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            yield return piece;
        await answer.ConfigureAwait(false);
    }
}
