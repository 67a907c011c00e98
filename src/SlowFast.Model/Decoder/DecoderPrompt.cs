namespace SlowFast.Model.Decoder;

/// <summary>
/// The decoder's input sequence for one request, as the reference's prepare_inputs_labels_for_multimodal
/// builds it: the text token embeddings with the fast visual tokens inserted where the prompt has the
/// image placeholder (-200), each position's token type, and positions 0..Length-1.
/// </summary>
public sealed class DecoderPrompt
{
    /// <summary>The placeholder id the chat template puts where the visual tokens go (IMAGE_TOKEN_INDEX).</summary>
    public const int ImagePlaceholder = -200;

    /// <summary>[Length, hidden].</summary>
    public required float[] Embeddings { get; init; }
    public required int[] TokenTypes { get; init; }
    /// <summary>The prompt's token ids, with the placeholder (before the visual tokens are inserted).</summary>
    public required int[] InputIds { get; init; }
    public int Length => TokenTypes.Length;
    public required int TextTokens { get; init; }
    public required int FastTokens { get; init; }

    /// <summary>The most positions a prompt (plus generated tokens) may span for this model.</summary>
    public static int ContextLimit(SlowFastConfig config) =>
        Math.Min(config.MaxPositionEmbeddings, config.TokenizerModelMaxLength ?? int.MaxValue);

    /// <summary>
    /// Refuses, before any work is done, a prompt whose text plus fast visual tokens exceed the context.
    /// (The reference silently truncates the sequence to tokenizer_model_max_length, which would cut the
    /// question off; a clear error is better.)
    /// </summary>
    public static void CheckFits(SlowFastConfig config, int textTokens, int fastTokens, string what)
    {
        int limit = ContextLimit(config);
        long total = (long)textTokens + fastTokens;
        if (total > limit)
            throw new UserError($"{what}: the prompt is {total} positions ({textTokens} text + {fastTokens} fast visual tokens) but the model's context is {limit} " +
                $"({(config.TokenizerModelMaxLength is int t && t < config.MaxPositionEmbeddings ? "tokenizer_model_max_length" : "max_position_embeddings")}); use fewer frames or a shorter prompt");
        if (config.UseSlidingWindow && config.SlidingWindow is int window && total > window && config.NumHiddenLayers > config.MaxWindowLayers)
            throw new UserError($"{what}: the prompt is {total} positions, longer than the sliding window of {window}, which is not supported");
    }

    /// <summary>
    /// Builds the sequence. <paramref name="inputIds"/> holds at most one placeholder; it is required when
    /// <paramref name="fastTokens"/> is given and forbidden otherwise.
    /// </summary>
    /// <param name="fastTokens">[fastCount, hidden] or null for a text-only prompt.</param>
    public static DecoderPrompt Build(Qwen2Decoder decoder, int[] inputIds, float[]? fastTokens, int fastCount, string what = "prompt")
    {
        int hidden = decoder.Hidden;
        int placeholders = 0;
        for (int i = 0; i < inputIds.Length; i++)
            if (inputIds[i] == ImagePlaceholder) placeholders++;
        bool visual = fastTokens != null;
        if (placeholders > 1) throw new UserError($"{what}: the prompt has {placeholders} <image> placeholders; one video or image goes in one place");
        if (visual && placeholders == 0) throw new UserError($"{what}: a video or image was given but the prompt has no <image> placeholder");
        if (!visual && placeholders == 1) throw new UserError($"{what}: the prompt has an <image> placeholder but no video or image was given");
        if (visual && fastTokens!.Length < (long)fastCount * hidden)
            throw new ArgumentException($"fast tokens hold {fastTokens.Length} floats; [{fastCount}, {hidden}] needs more", nameof(fastTokens));
        if (!visual) fastCount = 0;

        int textTokens = inputIds.Length - placeholders;
        CheckFits(decoder.Config, textTokens, fastCount, what);
        int length = textTokens + fastCount;
        if (length == 0) throw new UserError($"{what}: the prompt is empty");

        var embeddings = new float[(long)length * hidden];
        var types = new int[length];
        int row = 0;
        for (int i = 0; i < inputIds.Length; i++)
        {
            if (inputIds[i] == ImagePlaceholder)
            {
                fastTokens.AsSpan(0, fastCount * hidden).CopyTo(embeddings.AsSpan(row * hidden));
                types.AsSpan(row, fastCount).Fill(Decoder.TokenTypes.Visual);
                row += fastCount;
                continue;
            }
            decoder.Weights.Embed(inputIds[i], embeddings.AsSpan(row * hidden, hidden));
            // At inference there are no labels, so every text token is user/system text.
            types[row++] = Decoder.TokenTypes.UserText;
        }
        return new DecoderPrompt
        {
            Embeddings = embeddings,
            TokenTypes = types,
            InputIds = inputIds,
            TextTokens = textTokens,
            FastTokens = fastCount,
        };
    }
}
