using SlowFast.Model.Decoder;

namespace SlowFast.Model.Tests;

/// <summary>The decoder's forward pass against the scalar reference, and its input assembly.</summary>
public class DecoderTests
{
    private const int Hidden = 64;

    /// <summary>system/user prefix, the image placeholder, then the question — ids inside the small vocabulary.</summary>
    internal static int[] PromptIds() => [11, 57, 300, 12, 5, DecoderPrompt.ImagePlaceholder, 13, 200, 201, 77, 8, 9];

    internal static (float[] Fast, int FastCount, float[] Slow, int SlowCount) Visual(int seed = 7) =>
        (TestData.Normal(6 * Hidden, seed, 0.5f), 6, TestData.Normal(10 * Hidden, seed + 1, 0.5f), 10);

    public static TheoryData<string[]> Variants() => new()
    {
        new[] { "vocab_size=400" }, // preset: text-only-vanilla-flashattn, whole-dynamic-tanh-warmup
        new[] { "vocab_size=400", "cross_attn_implementation=vanilla", "cross_attn_gating_type=whole-dynamic" },
        new[] { "vocab_size=400", "cross_attn_implementation=vanilla", "cross_attn_gating_type=whole-dynamic-tanh-warmup" },
        new[] { "vocab_size=400", "cross_attn_implementation=text-only-vanilla-masksystem", "cross_attn_gating_type=whole-dynamic-warmup" },
        new[] { "vocab_size=400", "cross_attn_implementation=text-only-vanilla", "cross_attn_gating_type=whole-dynamic-tanh", "tie_word_embeddings=true" },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Prefill_logits_match_the_scalar_reference(string[] overrides)
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, overrides));
        var (fast, fastCount, slow, slowCount) = Visual();
        var prompt = DecoderPrompt.Build(m.Decoder, PromptIds(), fast, fastCount);
        var logits = m.ForwardAll(prompt, slow, slowCount);

        var expected = new DecoderScalarReference(m.Model).Forward(prompt.Embeddings, prompt.TokenTypes, slow, slowCount);
        double maxErr = 0;
        for (int i = 0; i < logits.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(logits[i] - expected[i]));
        Assert.True(maxErr < 1e-4, $"max abs error {maxErr}");

        // The hybrid branch matters: without the slow tokens the logits differ well beyond the tolerance.
        var textOnly = m.ForwardAll(prompt, null, 0);
        Assert.True(TestData.MaxAbsDiff(logits, textOnly) > 1e-3);
    }

    [Fact]
    public void A_prefill_longer_than_one_mlp_chunk_matches_the_scalar_reference()
    {
        // More positions than Qwen2Decoder.MlpChunkRows: the MLP runs in two chunks of rows, the second
        // short; each row's result must not depend on the split.
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var (fast, fastCount, slow, slowCount) = Visual();
        int[] ids = [.. PromptIds(), .. Enumerable.Range(0, Qwen2Decoder.MlpChunkRows + 80).Select(i => 20 + i % 350)];
        var prompt = DecoderPrompt.Build(m.Decoder, ids, fast, fastCount);
        Assert.True(prompt.Length > Qwen2Decoder.MlpChunkRows);
        var logits = m.ForwardAll(prompt, slow, slowCount);
        var expected = new DecoderScalarReference(m.Model).Forward(prompt.Embeddings, prompt.TokenTypes, slow, slowCount);
        double maxErr = 0;
        for (int i = 0; i < logits.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(logits[i] - expected[i]));
        Assert.True(maxErr < 1e-4, $"max abs error {maxErr}");
    }

    [Fact]
    public void Prompt_assembly_places_fast_tokens_at_the_placeholder_with_token_types()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var (fast, fastCount, _, _) = Visual();
        var ids = PromptIds();
        var prompt = DecoderPrompt.Build(m.Decoder, ids, fast, fastCount);

        Assert.Equal(ids.Length - 1 + fastCount, prompt.Length);
        Assert.Equal(ids.Length - 1, prompt.TextTokens);
        int at = Array.IndexOf(ids, DecoderPrompt.ImagePlaceholder);
        Assert.Equal(Enumerable.Repeat(1, at).Concat(Enumerable.Repeat(3, fastCount)).Concat(Enumerable.Repeat(1, ids.Length - at - 1)), prompt.TokenTypes);
        Assert.Equal(fast, prompt.Embeddings.AsSpan(at * Hidden, fastCount * Hidden).ToArray());
        var embed = m.Model.Get("model.embed_tokens.weight").ToFloatArray();
        Assert.Equal(embed.AsSpan(ids[^1] * Hidden, Hidden).ToArray(), prompt.Embeddings.AsSpan((prompt.Length - 1) * Hidden, Hidden).ToArray());
        Assert.Equal(embed.AsSpan(ids[0] * Hidden, Hidden).ToArray(), prompt.Embeddings.AsSpan(0, Hidden).ToArray());
    }

    [Fact]
    public void Cross_attention_rows_follow_the_implementation()
    {
        int[] types = [1, 1, 3, 3, 3, 1, 1];
        SlowFastConfig With(string impl) => SlowFastConfig.WithOverrides(Presets.Tiny(), [$"cross_attn_implementation={impl}"], "test");
        Assert.Equal([0, 1, 2, 3, 4, 5, 6], CrossAttentionRows.ForPrompt(With("vanilla"), types));
        Assert.Equal([0, 1, 5, 6], CrossAttentionRows.ForPrompt(With("text-only-vanilla"), types));
        Assert.Equal([5, 6], CrossAttentionRows.ForPrompt(With("text-only-vanilla-masksystem-flashattn"), types));
        // No visual token in the sequence: the reference multiplies the branch by zero, so no row attends.
        Assert.Empty(CrossAttentionRows.ForPrompt(With("vanilla"), [1, 1, 1]));
    }

    [Fact]
    public void Incremental_forward_with_the_kv_cache_equals_one_pass()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var (fast, fastCount, slow, slowCount) = Visual();
        var prompt = DecoderPrompt.Build(m.Decoder, PromptIds(), fast, fastCount);
        var full = m.ForwardAll(prompt, slow, slowCount);
        int[] rows = CrossAttentionRows.ForPrompt(m.Config, prompt.TokenTypes);

        // Same sequence: a prefill of the first P-3 rows, then three one-row steps, same rows attending.
        int P = prompt.Length, V = m.Decoder.VocabSize, first = P - 3;
        var cache = m.Decoder.CreateCache(P);
        var kv = m.Decoder.CreateSlowKeyValues(slow, slowCount);
        var stepLogits = new float[first * V];
        m.Decoder.Forward(prompt.Embeddings.AsMemory(0, first * Hidden), first, cache, rows.Where(r => r < first).ToArray(), kv, LogitRows.All, stepLogits);
        Assert.True(TestData.MaxAbsDiff(full.AsSpan(0, first * V), stepLogits) < 1e-4);
        var one = new float[V];
        for (int t = first; t < P; t++)
        {
            int[] attend = rows.Contains(t) ? [0] : [];
            m.Decoder.Forward(prompt.Embeddings.AsMemory(t * Hidden, Hidden), 1, cache, attend, kv, LogitRows.Last, one);
            Assert.True(TestData.MaxAbsDiff(full.AsSpan(t * V, V), one) < 1e-4, $"position {t}");
        }
        Assert.Equal(P, cache.Length);
        Assert.Equal(m.Config.HybridLayers.Count, kv.ProjectionsComputed); // cached: once per hybrid layer
    }

    [Fact]
    public void Prompt_over_the_context_is_refused_before_any_work()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, "vocab_size=400", "tokenizer_model_max_length=16"));
        var (fast, fastCount, _, _) = Visual();
        var e = Assert.Throws<UserError>(() => DecoderPrompt.Build(m.Decoder, PromptIds(), fast, fastCount, "question"));
        Assert.Contains("17 positions (11 text + 6 fast visual tokens)", e.Message);
        Assert.Contains("context is 16 (tokenizer_model_max_length)", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // Exactly at the limit is fine.
        var prompt = DecoderPrompt.Build(m.Decoder, PromptIds()[1..], fast, fastCount);
        Assert.Equal(16, prompt.Length);
    }

    [Fact]
    public void Placeholder_and_visual_input_must_agree()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var (fast, fastCount, _, _) = Visual();
        Assert.Contains("no <image> placeholder", Assert.Throws<UserError>(() => DecoderPrompt.Build(m.Decoder, [1, 2, 3], fast, fastCount)).Message);
        Assert.Contains("no video or image", Assert.Throws<UserError>(() => DecoderPrompt.Build(m.Decoder, PromptIds(), null, 0)).Message);
        Assert.Contains("2 <image> placeholders", Assert.Throws<UserError>(() => DecoderPrompt.Build(m.Decoder, [1, -200, 2, -200], fast, fastCount)).Message);
        Assert.Contains("outside the model's vocabulary", Assert.Throws<UserError>(() => DecoderPrompt.Build(m.Decoder, [1, 400], null, 0)).Message);
    }
}
