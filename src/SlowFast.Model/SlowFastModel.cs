using SlowFast.Tensors.Kernels;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using SlowFast.Model.Chat;
using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;
using SlowFast.Model.Tokenization;
using SlowFast.Model.Vision;

namespace SlowFast.Model;

/// <summary>
/// A slow-fast video LLM loaded once and asked many questions: the checkpoint (memory-mapped), its
/// tokenizer, the vision encoder and the decoder.
/// <code>
/// using var model = SlowFastModel.Load("models/tiny");
/// var video = model.EncodeVideo(pixels, frames);           // [frames, 3, S, S] CLIP-normalized
/// var chat = model.StartConversation(video);
/// var answer = chat.Ask("What happens?", new GenerationOptions(), piece => Console.Write(piece));
/// var followUp = chat.Ask("And then?");                    // reuses the encoded video
/// </code>
/// </summary>
/// <remarks>
/// Thread safety: one request at a time per instance. Every public method that computes (encode,
/// generate, forward) takes the instance's lock; a second concurrent request WAITS until the first
/// finishes (its CancellationToken also cancels the wait). Use one instance per concurrent stream.
/// </remarks>
public sealed class SlowFastModel : IDisposable
{
    private readonly ModelDirectory _directory;
    private readonly SemaphoreSlim _oneRequestAtATime = new(1, 1);

    public SlowFastConfig Config => _directory.Config;
    public string Path => _directory.Path;
    public QwenTokenizer Tokenizer { get; }
    public VisionEncoder Vision { get; }
    public Qwen2Decoder Decoder { get; }
    /// <summary>Ids that end an answer: &lt;|im_end|&gt; and &lt;|endoftext|&gt;.</summary>
    public IReadOnlyCollection<int> StopTokens { get; }

    private SlowFastModel(ModelDirectory directory, QwenTokenizer tokenizer)
    {
        _directory = directory;
        Tokenizer = tokenizer;
        Vision = new VisionEncoder(directory);
        Decoder = new Qwen2Decoder(directory.Config, DecoderWeights.From(directory));
        StopTokens = new HashSet<int> { tokenizer.ImEndId, tokenizer.EndOfTextId };
    }

    /// <summary>
    /// Arithmetic of every matrix product (vision tower, projector, decoder, lm_head).
    /// <see cref="MatMulPrecision.Float32"/>, the default, is what the golden tests hold the model to;
    /// <see cref="MatMulPrecision.BFloat16"/> rounds the activations to bfloat16 before each product with
    /// BF16 weights, like PyTorch's bf16 inference, and runs about twice as fast on CPUs with
    /// AVX512-BF16 (<see cref="MatMul.BFloat16Supported"/>; elsewhere it changes nothing).
    /// </summary>
    public MatMulPrecision Precision
    {
        get => Decoder.Precision;
        set
        {
            _oneRequestAtATime.Wait();
            try { Vision.Tower.Precision = Vision.Projector.Precision = Decoder.Precision = value; }
            finally { _oneRequestAtATime.Release(); }
        }
    }

    /// <summary>
    /// Opens a checkpoint directory (config.json, *.safetensors, tokenizer.json). A missing or misshapen
    /// tensor (tower, projector, decoder) is a <see cref="UserError"/> naming it.
    /// </summary>
    /// <param name="tokenizerJson">A tokenizer.json to use instead of the one in the directory.</param>
    public static SlowFastModel Load(string dir, string? tokenizerJson = null)
    {
        var directory = ModelDirectory.Open(dir);
        try
        {
            string path = tokenizerJson ?? System.IO.Path.Combine(dir, "tokenizer.json");
            if (!File.Exists(path)) throw new UserError($"{dir}: no tokenizer.json in the model directory");
            return new SlowFastModel(directory, QwenTokenizer.FromFile(path));
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
    /// visual tokens, once, for any number of questions.
    /// </summary>
    public VisualTokens EncodeVideo(ReadOnlySpan<float> pixels, int frames, IProgress<int>? progress = null,
        CancellationToken cancellation = default, bool keepIntermediates = false)
    {
        _oneRequestAtATime.Wait(cancellation);
        try { return Vision.Encode(pixels, frames, progress, cancellation, keepIntermediates); }
        finally { _oneRequestAtATime.Release(); }
    }

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
    public void CheckPromptFits(int[] inputIds, int frames, string what = "prompt")
    {
        int text = inputIds.Count(id => id != DecoderPrompt.ImagePlaceholder);
        int fast = frames > 0 ? VisualTokenPlan.For(Config, frames).FastTokens : 0;
        DecoderPrompt.CheckFits(Config, text, fast, what);
    }

    public Conversation StartConversation(VisualTokens? video = null, string? systemPrompt = ChatConversation.DefaultSystemPrompt) =>
        new(this, video, systemPrompt);

    // ------------------------------------------------------------------ generation and forward

    /// <summary>
    /// Generates an answer for a tokenized prompt (with the -200 placeholder where <paramref name="visual"/>'s
    /// fast tokens go). <paramref name="onText"/> receives the answer's text as it is produced.
    /// </summary>
    public GenerationResult Generate(int[] inputIds, VisualTokens? visual, GenerationOptions? options = null,
        Action<string>? onText = null, Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default)
    {
        options ??= new GenerationOptions();
        options.Validate();
        _oneRequestAtATime.Wait(cancellation);
        try
        {
            var prompt = DecoderPrompt.Build(Decoder, inputIds, visual?.Fast, visual?.FastCount ?? 0);
            return Generator.Generate(Decoder, prompt, visual?.Slow, visual?.SlowCount ?? 0, options, StopTokens,
                Tokenizer, onText, onPrefillDone, cancellation);
        }
        finally { _oneRequestAtATime.Release(); }
    }

    /// <summary>
    /// The logits of every prompt position, [Positions, Vocab] float32, for comparison with other
    /// implementations (the sequence is the prompt with the fast tokens inserted).
    /// </summary>
    public ForwardResult Forward(int[] inputIds, VisualTokens? visual, CancellationToken cancellation = default)
    {
        _oneRequestAtATime.Wait(cancellation);
        try
        {
            var prompt = DecoderPrompt.Build(Decoder, inputIds, visual?.Fast, visual?.FastCount ?? 0);
            long floats = (long)prompt.Length * Decoder.VocabSize;
            if (floats > Array.MaxLength)
                throw new UserError($"forward: {prompt.Length} positions × {Decoder.VocabSize} vocabulary logits do not fit in one array; use a shorter prompt or fewer frames");
            var logits = new float[floats];
            var cache = Decoder.CreateCache(prompt.Length);
            var slow = visual != null && visual.SlowCount > 0 ? Decoder.CreateSlowKeyValues(visual.Slow, visual.SlowCount) : null;
            Decoder.Forward(prompt.Embeddings, prompt.Length, cache, CrossAttentionRows.ForPrompt(Config, prompt.TokenTypes),
                slow, LogitRows.All, logits, cancellation);
            return new ForwardResult(logits, prompt.Length, Decoder.VocabSize, inputIds, prompt.TokenTypes, visual);
        }
        finally { _oneRequestAtATime.Release(); }
    }

    public void Dispose()
    {
        _directory.Dispose();
        _oneRequestAtATime.Dispose();
    }
}

/// <summary>The result of <see cref="SlowFastModel.Forward"/>.</summary>
public sealed record ForwardResult(float[] Logits, int Positions, int Vocab, int[] InputIds, int[] TokenTypes, VisualTokens? Visual);

/// <summary>
/// A multi-turn chat, optionally about one encoded video (encoded once, reused by every turn). Each turn
/// rebuilds the whole chat prompt (video placeholder in the first user message) and runs it, as the
/// reference would for the same conversation: earlier answers become prompt text (type 1), which in the
/// text-only hybrid layers attend to the slow tokens.
/// </summary>
public sealed class Conversation
{
    private readonly SlowFastModel _model;
    private readonly ChatConversation _history;

    public VisualTokens? Video { get; }
    public IReadOnlyList<ChatMessage> Messages => _history.Messages;

    internal Conversation(SlowFastModel model, VisualTokens? video, string? systemPrompt)
    {
        _model = model;
        Video = video;
        _history = new ChatConversation(systemPrompt);
    }

    /// <summary>Asks the next question; the answer is added to the conversation.</summary>
    public GenerationResult Ask(string question, GenerationOptions? options = null, Action<string>? onText = null,
        Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default)
    {
        bool first = _history.Messages.Count == 0;
        var turn = new ChatConversation(_history.SystemPrompt);
        foreach (var m in _history.Messages)
        {
            if (m.Role == ChatRole.User) turn.AddUser(m.Text!);
            else turn.AddAssistant(m.Text!);
        }
        turn.AddUser(first && Video != null ? Chat.MultimodalPrompt.VideoQuestion(question) : question).AddAssistantPrompt();
        var ids = turn.Tokenize(_model.Tokenizer);
        var result = _model.Generate(ids, Video, options, onText, onPrefillDone, cancellation);
        _history.AddUser(first && Video != null ? Chat.MultimodalPrompt.VideoQuestion(question) : question);
        _history.AddAssistant(result.Text);
        return result;
    }

    /// <summary>
    /// Streams the answer's text pieces as they are generated (the work runs on a pool thread; the
    /// enumeration ends when the answer is complete, and rethrows a failure or cancellation).
    /// </summary>
    public async IAsyncEnumerable<string> AskStreamingAsync(string question, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var work = Task.Run(() =>
        {
            try
            {
                Ask(question, options, piece => channel.Writer.TryWrite(piece), null, cancellation);
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, CancellationToken.None);
        await foreach (var piece in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            yield return piece;
        await work.ConfigureAwait(false);
    }
}
