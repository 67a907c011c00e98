using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;

namespace SlowFast.Model.Tests;

/// <summary>Sampling (HF semantics), the generation loop, attend-while-decoding and cancellation.</summary>
public class GenerationTests
{
    private static float[] Logits(params float[] values) => values;

    [Fact]
    public void Greedy_takes_the_first_maximum()
    {
        var s = new Sampler(new GenerationOptions());
        Assert.Equal(2, s.Next(Logits(0.1f, 1f, 3f, 3f, -2f)));
    }

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_logits_of_generated_tokens()
    {
        var s = new Sampler(new GenerationOptions { RepetitionPenalty = 2.0 });
        Assert.Equal(0, s.Next(Logits(4f, 3f, -1f)));          // nothing generated yet: no penalty
        var second = Logits(4f, 3f, -1f);
        Assert.Equal(1, s.Next(second));                         // 4 → 2 < 3
        Assert.Equal(new[] { 2f, 3f, -1f }, second);
        var third = Logits(-1f, 2.5f, -1f);
        s.Next(third);
        Assert.Equal(new[] { -2f, 1.25f, -1f }, third);          // negative × 2, positive ÷ 2, unseen unchanged
    }

    [Fact]
    public void Top_k_and_top_p_restrict_the_candidates()
    {
        float[] logits = [5f, 4.9f, 4.8f, 0f, -1f];
        var topK = new Sampler(new GenerationOptions { Temperature = 1, TopK = 2, Seed = 1 });
        var seenK = Enumerable.Range(0, 400).Select(_ => topK.Next((float[])logits.Clone())).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seenK);

        // p(0) ≈ 0.35, p(1) ≈ 0.32, p(2) ≈ 0.29: top-p 0.6 keeps {0, 1} (0.35 alone is not enough).
        var topP = new Sampler(new GenerationOptions { Temperature = 1, TopP = 0.6, Seed = 2 });
        var seenP = Enumerable.Range(0, 400).Select(_ => topP.Next((float[])logits.Clone())).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seenP);
    }

    [Fact]
    public void Sampling_follows_the_softmax_and_the_seed_reproduces_it()
    {
        float[] logits = [1f, 0f, 2f];
        double[] p = logits.Select(l => Math.Exp(l)).ToArray();
        double sum = p.Sum();
        int draws = 20000;
        int[] Draw(ulong seed, double temperature)
        {
            var s = new Sampler(new GenerationOptions { Temperature = temperature, Seed = seed });
            return Enumerable.Range(0, draws).Select(_ => s.Next((float[])logits.Clone())).ToArray();
        }
        var a = Draw(42, 1.0);
        for (int i = 0; i < 3; i++)
            Assert.InRange(a.Count(t => t == i) / (double)draws, p[i] / sum - 0.015, p[i] / sum + 0.015);
        Assert.Equal(a, Draw(42, 1.0));
        Assert.NotEqual(a, Draw(43, 1.0));
        // A low temperature sharpens the distribution towards the maximum.
        Assert.True(Draw(42, 0.25).Count(t => t == 2) > a.Count(t => t == 2) + draws / 10);
    }

    [Fact]
    public void Bad_options_are_user_errors()
    {
        Assert.Throws<UserError>(() => new Sampler(new GenerationOptions { TopP = 0 }));
        Assert.Throws<UserError>(() => new Sampler(new GenerationOptions { Temperature = -1 }));
        Assert.Throws<UserError>(() => new Sampler(new GenerationOptions { MaxNewTokens = 0 }));
        Assert.Throws<UserError>(() => new Sampler(new GenerationOptions { RepetitionPenalty = 0 }));
    }

    /// <summary>Greedy generation with the KV cache equals re-running the whole growing sequence each step.</summary>
    [Fact]
    public void Greedy_generation_with_the_kv_cache_equals_full_recomputation()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(5, TinyCheckpoints.SmallVocab));
        var (fast, fastCount, slow, slowCount) = DecoderTests.Visual(11);
        var ids = DecoderTests.PromptIds();
        var prompt = DecoderPrompt.Build(m.Decoder, ids, fast, fastCount);
        var result = Generator.Generate(m.Decoder, prompt, slow, slowCount, new GenerationOptions { MaxNewTokens = 6, StopAtEndTokens = false }, []);
        Assert.Equal(6, result.TokenIds.Length);
        Assert.Equal(FinishReason.Length, result.FinishReason);

        // Reference decode semantics: every generated row is text with no cross-attention, prompt rows as in prefill.
        var reference = new DecoderScalarReference(m.Model);
        var seq = ids.ToList();
        int V = m.Decoder.VocabSize;
        var promptRows = CrossAttentionRows.ForPrompt(m.Config, prompt.TokenTypes);
        for (int step = 0; step < 6; step++)
        {
            var grown = seq.Concat(result.TokenIds.Take(step)).ToArray();
            var p = DecoderPrompt.Build(m.Decoder, grown, fast, fastCount);
            var attend = Enumerable.Range(0, p.Length).Select(r => promptRows.Contains(r)).ToArray();
            var logits = reference.Forward(p.Embeddings, p.TokenTypes, slow, slowCount, attend);
            int best = 0;
            for (int v = 1; v < V; v++) if (logits[(p.Length - 1) * V + v] > logits[(p.Length - 1) * V + best]) best = v;
            Assert.Equal(best, result.TokenIds[step]);
        }
    }

    [Fact]
    public void Attend_while_decoding_gives_the_same_tokens_with_cached_or_recomputed_slow_keys()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(5, TinyCheckpoints.SmallVocab));
        var (fast, fastCount, slow, slowCount) = DecoderTests.Visual(12);
        var prompt = DecoderPrompt.Build(m.Decoder, DecoderTests.PromptIds(), fast, fastCount);
        var options = new GenerationOptions { MaxNewTokens = 12, StopAtEndTokens = false, AttendSlowTokensWhileDecoding = true, Temperature = 0.8, Seed = 9 };
        var cached = Generator.Generate(m.Decoder, prompt, slow, slowCount, options, []);
        var recomputed = Generator.Generate(m.Decoder, prompt, slow, slowCount, options with { RecomputeSlowKeyValues = true }, []);
        Assert.Equal(cached.TokenIds, recomputed.TokenIds);

        // The option changes what the model computes: the first decoding step's logits differ.
        var greedy = new GenerationOptions { MaxNewTokens = 2, StopAtEndTokens = false };
        var plain = StepLogits(m, prompt, slow, slowCount, greedy);
        var attending = StepLogits(m, prompt, slow, slowCount, greedy with { AttendSlowTokensWhileDecoding = true });
        Assert.True(TestData.MaxAbsDiff(plain, attending) > 1e-4);
    }

    /// <summary>Logits of the first decoding step (after the first generated token).</summary>
    private static float[] StepLogits(LoadedDecoder m, DecoderPrompt prompt, float[] slow, int slowCount, GenerationOptions o)
    {
        var cache = m.Decoder.CreateCache(prompt.Length + 1);
        var kv = m.Decoder.CreateSlowKeyValues(slow, slowCount);
        var logits = new float[m.Decoder.VocabSize];
        m.Decoder.Forward(prompt.Embeddings, prompt.Length, cache, CrossAttentionRows.ForPrompt(m.Config, prompt.TokenTypes), kv, LogitRows.Last, logits);
        int token = Sampler.ArgMax(logits);
        var e = new float[m.Decoder.Hidden];
        m.Decoder.Embed([token], e);
        m.Decoder.Forward(e, 1, cache, o.AttendSlowTokensWhileDecoding ? [0] : [], kv, LogitRows.Last, logits);
        return logits;
    }

    [Fact]
    public void Generation_stops_at_a_stop_token_and_cancellation_stops_it_between_tokens()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(5, TinyCheckpoints.SmallVocab));
        var prompt = DecoderPrompt.Build(m.Decoder, [1, 2, 3, 4], null, 0);
        var free = Generator.Generate(m.Decoder, prompt, null, 0, new GenerationOptions { MaxNewTokens = 5, StopAtEndTokens = false }, []);
        // Make the third generated token a stop token: generation ends before it, with two tokens.
        var stopped = Generator.Generate(m.Decoder, prompt, null, 0, new GenerationOptions { MaxNewTokens = 5 }, [free.TokenIds[2]]);
        Assert.Equal(free.TokenIds.TakeWhile(t => t != free.TokenIds[2]).ToArray(), stopped.TokenIds);
        Assert.Equal(FinishReason.Stop, stopped.FinishReason);

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            Generator.Generate(m.Decoder, prompt, null, 0, new GenerationOptions { MaxNewTokens = 5 }, [], cancellation: cts.Token));
    }
}
