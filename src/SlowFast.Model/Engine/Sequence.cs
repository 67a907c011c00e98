using System.Diagnostics;
using System.Text;
using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;
using SlowFast.Model.Tokenization;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Engine;

/// <summary>
/// Everything one request owns while the engine runs it: its prompt, KV cache, slow keys/values,
/// sampler, the text streamed so far and its timings. Touched only by the engine's loop thread
/// (the submitting thread hands it over whole and waits on <see cref="GenerationRequest.Completion"/>).
/// </summary>
internal sealed class Sequence
{
    public required int[] InputIds { get; init; }
    public required VisualTokens? Visual { get; init; }
    public required GenerationOptions Options { get; init; }
    public required MatMulPrecision Precision { get; init; }
    public required CancellationToken Cancellation { get; init; }
    /// <summary>Forward requests want every prompt position's logits and generate nothing.</summary>
    public bool AllLogits { get; init; }
    public Action<string>? OnText { get; init; }
    public Action<TimeSpan>? OnPrefillDone { get; init; }
    public required GenerationRequest Handle { get; init; }
    public TaskCompletionSource<ForwardResult>? ForwardCompletion { get; init; }

    public readonly Stopwatch SinceSubmitted = Stopwatch.StartNew();
    /// <summary>Wakes the engine's loop when the request is cancelled; disposed when the request ends.</summary>
    public CancellationTokenRegistration WakeOnCancel;

    // Set when the prompt is prepared (before admission).
    public DecoderPrompt Prompt = null!;
    public int[] CrossRows = [];
    public PromptPositions Positions = null!;
    public int Capacity;
    public long CacheBytes;

    // Set on admission.
    public KvCache Cache = null!;
    public SlowKeyValues? Slow;
    public int Reused;
    public TimeSpan AdmittedAt, FirstTokenAt;
    public float[] Logits = [];

    // Generation state.
    public Sampler Sampler = null!;
    public StreamingDecoder? Stream;
    public readonly StringBuilder Text = new();
    public readonly List<int> Generated = new();
    /// <summary>The last sampled token, not yet run through the decoder (-1: none).</summary>
    public int PendingToken = -1;
    public float[] PendingEmbedding = [];
    public List<float[]>? StepLogits;

    /// <summary>Prompt positions this step runs (set by the loop for a prefilling sequence).</summary>
    public int ChunkPositions;

    public bool Prepared => Prompt != null;
    public bool Prefilling => Cache.Length < Prompt.Length;

    /// <summary>Whether a generated token reads the slow tokens as it is decoded.</summary>
    public bool DecodeReadsSlowTokens => Options.AttendSlowTokensWhileDecoding && Slow != null;

    /// <summary>
    /// The positions whose keys/values <see cref="Cache"/> holds: the prompt positions run so far, then the
    /// generated tokens run so far (all but a last one sampled and not run, unless a stop token followed it).
    /// The generated ones are included only where a later prompt holding this answer as text can reuse
    /// them: where the text after a video reads the slow tokens (every video prompt), decoding must have
    /// read them too, which it does only with <see cref="GenerationOptions.AttendSlowTokensWhileDecoding"/>;
    /// a text-only conversation reads them nowhere.
    /// </summary>
    public PromptPositions CachedPositions()
    {
        if (Prefilling) return Positions.Prefix(Cache.Length);
        bool answerTextReadsSlowTokens = CrossRows.Length > 0;
        if (DecodeReadsSlowTokens != answerTextReadsSlowTokens) return Positions;
        return Positions.Append(Generated, Cache.Length - Prompt.Length, DecodeReadsSlowTokens);
    }
}
