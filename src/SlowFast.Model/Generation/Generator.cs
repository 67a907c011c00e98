using System.Diagnostics;
using SlowFast.Model.Decoder;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Generation;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model produced &lt;|im_end|&gt; or &lt;|endoftext|&gt;.</summary>
    Stop,
    /// <summary>MaxNewTokens were generated.</summary>
    Length,
    /// <summary>The model's context is full.</summary>
    Context,
}

/// <summary>What one generation produced, with its timings.</summary>
public sealed record GenerationResult(
    string Text,
    int[] TokenIds,
    FinishReason FinishReason,
    int PromptPositions,
    TimeSpan PrefillTime,
    TimeSpan DecodeTime)
{
    /// <summary>Leading prompt positions whose keys/values came from an earlier prompt (prefix reuse), not computed.</summary>
    public int ReusedPositions { get; init; }
    /// <summary>From submission to the first answer token (queueing, prefill).</summary>
    public TimeSpan TimeToFirstToken { get; init; }
    /// <summary>The arithmetic the request ran in (<see cref="SlowFast.Tensors.Kernels.MatMul.Effective"/>).</summary>
    public SlowFast.Tensors.Kernels.MatMulPrecision Precision { get; init; }
    /// <summary>Every step's logits, with <see cref="GenerationOptions.KeepStepLogits"/> (tests).</summary>
    internal IReadOnlyList<float[]>? StepLogits { get; init; }

    /// <summary>Generated tokens a second while decoding (the first token comes from the prefill).</summary>
    public double TokensPerSecond => TokenIds.Length > 1 && DecodeTime > TimeSpan.Zero ? (TokenIds.Length - 1) / DecodeTime.TotalSeconds : 0;
}

/// <summary>
/// One sequence alone, the plainest way: prefill, then token by token with a KV cache. The prompt's
/// positions all go through the decoder in one pass; each new token is then embedded and run alone at
/// the next position, reading the cached keys/values of every earlier position. The engine
/// (<see cref="Engine.InferenceEngine"/>) does the same for many sequences at once, with chunked
/// prefills and reused prefixes; the tests hold it to this.
/// </summary>
internal static class Generator
{
    /// <param name="slowTokens">[slowCount, hidden], or null for a text-only request.</param>
    /// <param name="stopTokens">Ids that end the answer (not included in the text).</param>
    /// <param name="tokenizer">Turns tokens into streamed text; null: no text (tests that only compare ids).</param>
    /// <param name="onText">Called with each piece of text as soon as it is complete UTF-8.</param>
    /// <param name="onPrefillDone">Called once the prompt is processed (progress reporting).</param>
    public static GenerationResult Generate(Qwen2Decoder decoder, DecoderPrompt prompt, float[]? slowTokens, int slowCount,
        GenerationOptions options, IReadOnlyCollection<int> stopTokens, QwenTokenizer? tokenizer = null,
        Action<string>? onText = null, Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var sampler = new Sampler(options);
        int contextLimit = DecoderPrompt.ContextLimit(decoder.Config);
        int capacity = (int)Math.Min(contextLimit, (long)prompt.Length + options.MaxNewTokens);
        var cache = decoder.CreateCache(capacity);
        SlowKeyValues? slow = slowTokens != null && slowCount > 0
            ? decoder.CreateSlowKeyValues(slowTokens, slowCount, cacheProjections: !options.RecomputeSlowKeyValues)
            : null;

        var logits = new float[decoder.VocabSize];
        var precision = options.Precision ?? SlowFast.Tensors.Kernels.MatMulPrecision.Float32;
        var workspace = new DecoderWorkspace();
        var clock = Stopwatch.StartNew();
        decoder.Forward(prompt.Embeddings, prompt.Length, cache, CrossAttentionRows.ForPrompt(decoder.Config, prompt.TokenTypes),
            slow, LogitRows.Last, logits, precision, workspace, cancellation);
        var prefillTime = clock.Elapsed;
        onPrefillDone?.Invoke(prefillTime);
        clock.Restart();

        // A generated token attends to the slow tokens (as a response token does in training) only with
        // the option on; otherwise the reference multiplies that branch by zero, so it is not run.
        int[] decodeCrossRows = options.AttendSlowTokensWhileDecoding && slow != null ? [0] : [];
        var stream = tokenizer?.CreateStreamingDecoder(skipSpecialTokens: true);
        var text = new System.Text.StringBuilder();
        var generated = new List<int>();
        var embedding = new float[decoder.Hidden];
        var stepLogits = options.KeepStepLogits ? new List<float[]>() : null;
        FinishReason reason;
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            stepLogits?.Add(logits.ToArray());
            int token = sampler.Next(logits);
            if (options.StopAtEndTokens && stopTokens.Contains(token)) { reason = FinishReason.Stop; break; }
            generated.Add(token);
            if (stream != null) Emit(stream.Push(token));
            if (generated.Count >= options.MaxNewTokens) { reason = FinishReason.Length; break; }
            if (cache.Length >= cache.Capacity) { reason = FinishReason.Context; break; }
            decoder.Embed([token], embedding);
            decoder.Forward(embedding, 1, cache, decodeCrossRows, slow, LogitRows.Last, logits, precision, workspace, cancellation);
        }
        if (stream != null) Emit(stream.Flush());
        return new GenerationResult(text.ToString(), generated.ToArray(), reason, prompt.Length, prefillTime, clock.Elapsed)
        {
            TimeToFirstToken = prefillTime,
            StepLogits = stepLogits,
            Precision = SlowFast.Tensors.Kernels.MatMul.Effective(precision),
        };

        void Emit(string piece)
        {
            if (piece.Length == 0) return;
            text.Append(piece);
            onText?.Invoke(piece);
        }
    }
}
