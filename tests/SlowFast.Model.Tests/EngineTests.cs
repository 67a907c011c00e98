using SlowFast.Model.Decoder;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Tests;

/// <summary>
/// The engine against the plainest implementation: every request it runs — batched with others,
/// prefilled in chunks, continuing a cached prefix — must give the tokens, and within the golden
/// tolerance the logits, that <see cref="Generator"/> gives for the same request alone.
/// </summary>
public class EngineTests
{
    private const int Hidden = 64;
    /// <summary>The golden tolerance for float32 logits (the batched and chunked products sum in other orders).</summary>
    private const double LogitTolerance = 1e-4;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private static InferenceEngine Engine(LoadedDecoder m, EngineOptions options) =>
        new(m.Decoder, vision: null, tokenizer: null, stopTokens: [], options with { DefaultPrecision = MatMulPrecision.Float32 });

    /// <summary>A visual input of random fast and slow tokens (the engine reads only these).</summary>
    private static VisualTokens Video(SlowFastConfig config, int seed, int fast = 6, int slow = 10) => new()
    {
        Fast = TestData.Normal(fast * Hidden, seed, 0.5f), FastCount = fast,
        Slow = TestData.Normal(slow * Hidden, seed + 1, 0.5f), SlowCount = slow,
        Hidden = Hidden, IsVideo = true, Plan = VisualTokenPlan.For(config, 3),
    };

    private static int[] Ids(int seed, int count, bool withVideo)
    {
        var rng = new Random(seed);
        var ids = Enumerable.Range(0, count).Select(_ => rng.Next(1, 400)).ToArray();
        if (withVideo) ids[count / 3] = DecoderPrompt.ImagePlaceholder;
        return ids;
    }

    /// <summary>The same request alone, whole prompt in one pass.</summary>
    private static GenerationResult Alone(LoadedDecoder m, int[] ids, VisualTokens? video, GenerationOptions options)
    {
        var prompt = DecoderPrompt.Build(m.Decoder, ids, video?.Fast, video?.FastCount ?? 0);
        return Generator.Generate(m.Decoder, prompt, video?.Slow, video?.SlowCount ?? 0,
            options with { Precision = MatMulPrecision.Float32, KeepStepLogits = true }, []);
    }

    private static void AssertSameAnswer(GenerationResult expected, GenerationResult actual, string what)
    {
        Assert.Equal(expected.TokenIds, actual.TokenIds);
        Assert.Equal(expected.FinishReason, actual.FinishReason);
        Assert.Equal(expected.StepLogits!.Count, actual.StepLogits!.Count);
        for (int i = 0; i < expected.StepLogits.Count; i++)
        {
            double err = TestData.MaxAbsDiff(expected.StepLogits[i], actual.StepLogits[i]);
            Assert.True(err < LogitTolerance, $"{what}: step {i} logits differ by {err}");
        }
    }

    private static T Wait<T>(Task<T> task) => task.WaitAsync(Patience).GetAwaiter().GetResult();

    [Fact]
    public void Concurrent_sequences_arriving_at_different_times_each_give_what_they_give_alone()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var videoA = Video(m.Config, 20);
        var videoB = Video(m.Config, 30, fast: 9, slow: 14);
        var requests = new (int[] Ids, VisualTokens? Video, GenerationOptions Options)[]
        {
            (Ids(1, 40, true), videoA, new() { MaxNewTokens = 12, StopAtEndTokens = false }),
            (Ids(2, 9, false), null, new() { MaxNewTokens = 7, StopAtEndTokens = false, Temperature = 0.9, Seed = 5 }),
            (Ids(3, 25, true), videoB, new() { MaxNewTokens = 10, StopAtEndTokens = false, TopK = 20, Temperature = 0.7, Seed = 9 }),
            (Ids(4, 17, true), videoA, new() { MaxNewTokens = 9, StopAtEndTokens = false, RepetitionPenalty = 1.3, AttendSlowTokensWhileDecoding = true }),
            (Ids(5, 31, false), null, new() { MaxNewTokens = 5, StopAtEndTokens = false, TopP = 0.8, Temperature = 1.1, Seed = 2 }),
        };
        var alone = requests.Select(r => Alone(m, r.Ids, r.Video, r.Options)).ToArray();

        // Small chunks split every prompt; three slots make the last two wait for a free one.
        using var engine = Engine(m, new EngineOptions { MaxConcurrentSequences = 3, PrefillChunkTokens = 7, PrefixCacheBytes = 0 });
        var submitted = new GenerationRequest[requests.Length];
        var firstHasDecoded = new ManualResetEventSlim();
        int pieces = 0;
        for (int i = 0; i < requests.Length; i++)
        {
            var r = requests[i];
            submitted[i] = engine.Submit(r.Ids, r.Video, r.Options with { KeepStepLogits = true },
                onPrefillDone: i == 0 ? _ => firstHasDecoded.Set() : null,
                onText: _ => Interlocked.Increment(ref pieces));
            // The later ones arrive while the first is already decoding.
            if (i == 0) Assert.True(firstHasDecoded.Wait(Patience));
        }
        for (int i = 0; i < requests.Length; i++)
            AssertSameAnswer(alone[i], Wait(submitted[i].Completion), $"request {i}");
        Assert.Equal(0, engine.Stats.Running);
        Assert.Equal(0, engine.Stats.KvCacheBytes);
    }

    [Fact]
    public void Forward_requests_batched_with_decoding_give_the_logits_of_one_pass()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var video = Video(m.Config, 40);
        var ids = Ids(6, 30, true);
        var prompt = DecoderPrompt.Build(m.Decoder, ids, video.Fast, video.FastCount);
        var expected = m.ForwardAll(prompt, video.Slow, video.SlowCount);

        using var engine = Engine(m, new EngineOptions { PrefillChunkTokens = 5 });
        var running = engine.Submit(Ids(7, 12, false), null, new GenerationOptions { MaxNewTokens = 30, StopAtEndTokens = false });
        var forward = Wait(engine.ForwardAsync(ids, video));
        Assert.Equal(prompt.Length, forward.Positions);
        Assert.True(TestData.MaxAbsDiff(expected, forward.Logits) < LogitTolerance);
        Wait(running.Completion);
    }

    /// <summary>Every cross-attention implementation and gating type of <see cref="DecoderTests.Variants"/>.</summary>
    [Theory]
    [MemberData(nameof(DecoderTests.Variants), MemberType = typeof(DecoderTests))]
    public void A_follow_up_reuses_the_earlier_prompt_and_equals_a_full_rerun(string[] overrides)
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, overrides));
        var video = Video(m.Config, 50);
        var options = new GenerationOptions { MaxNewTokens = 6, StopAtEndTokens = false, KeepStepLogits = true };
        using var engine = Engine(m, new EngineOptions { PrefillChunkTokens = 8 });

        var first = Ids(8, 20, true);
        var answer = Wait(engine.Submit(first, video, options).Completion);
        Assert.Equal(0, answer.ReusedPositions);
        int firstPositions = answer.PromptPositions;

        // The next turn: the earlier prompt, the answer, then a new question (all prompt text now).
        int[] followUp = [.. first, .. answer.TokenIds, 2, 3, 14, 15, 16, 4];
        var reused = Wait(engine.Submit(followUp, video, options).Completion);
        Assert.Equal(firstPositions, reused.ReusedPositions);
        AssertSameAnswer(Alone(m, followUp, video, options), reused, "follow-up");

        // Another question about the same video shares the prefix up to where the questions differ.
        int[] other = [.. first[..^3], 21, 22, 23];
        var sibling = Wait(engine.Submit(other, video, options).Completion);
        Assert.Equal(firstPositions - 3, sibling.ReusedPositions);
        AssertSameAnswer(Alone(m, other, video, options), sibling, "same video, other question");
    }

    [Theory]
    [InlineData("cross_attn_implementation=vanilla")]
    [InlineData("cross_attn_implementation=text-only-vanilla-masksystem")]
    public void A_prefix_is_reused_only_as_far_as_it_does_not_depend_on_another_video(string implementation)
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, "vocab_size=400", implementation));
        var options = new GenerationOptions { MaxNewTokens = 4, StopAtEndTokens = false, KeepStepLogits = true };
        using var engine = Engine(m, new EngineOptions());
        var ids = Ids(9, 20, true);
        Wait(engine.Submit(ids, Video(m.Config, 60), options).Completion);

        var otherVideo = Video(m.Config, 70);
        var result = Wait(engine.Submit(ids, otherVideo, options).Completion);
        // vanilla: every row read the first video's slow tokens, so nothing is shared; masksystem: the
        // text before the video never reads them, so it is.
        int expected = implementation.EndsWith("masksystem") ? Array.IndexOf(ids, DecoderPrompt.ImagePlaceholder) : 0;
        Assert.Equal(expected, result.ReusedPositions);
        AssertSameAnswer(Alone(m, ids, otherVideo, options), result, "other video");
    }

    [Fact]
    public void A_prompt_in_other_arithmetic_does_not_reuse_the_cache()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get("tiny", 3, Tensors.DType.BF16, "vocab_size=400"));
        using var engine = Engine(m, new EngineOptions());
        var ids = Ids(10, 15, false);
        var options = new GenerationOptions { MaxNewTokens = 3, StopAtEndTokens = false };
        Wait(engine.Submit(ids, null, options).Completion);
        var again = Wait(engine.Submit(ids, null, options).Completion);
        Assert.Equal(ids.Length - 1, again.ReusedPositions);   // the last position always runs, for its logits
        var bf16 = Wait(engine.Submit(ids, null, options with { Precision = MatMulPrecision.BFloat16 }).Completion);
        Assert.Equal(MatMul.BFloat16Supported ? 0 : ids.Length - 1, bf16.ReusedPositions);
    }

    [Fact]
    public void Cancelling_one_sequence_mid_decode_frees_its_slot_and_leaves_the_others_unchanged()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var video = Video(m.Config, 80);
        var options = new GenerationOptions { MaxNewTokens = 40, StopAtEndTokens = false, KeepStepLogits = true };
        var idsA = Ids(11, 15, true);
        var idsB = Ids(12, 18, false);
        var idsC = Ids(13, 10, false);
        var aloneA = Alone(m, idsA, video, options);
        var aloneC = Alone(m, idsC, null, options);

        // Two slots: C waits until the cancelled B frees one.
        using var engine = Engine(m, new EngineOptions { MaxConcurrentSequences = 2 });
        using var cancel = new CancellationTokenSource();
        var a = engine.Submit(idsA, video, options);
        // B is cancelled once it has its first token and is decoding (from the engine's own callback,
        // so it cannot finish first however this thread is scheduled); C waits for a free slot.
        var b = engine.Submit(idsB, null, options, onPrefillDone: _ => cancel.Cancel(), cancellation: cancel.Token);
        var c = engine.Submit(idsC, null, options);
        Assert.ThrowsAny<OperationCanceledException>(() => Wait(b.Completion));
        Assert.True(b.Completion.IsCanceled);
        AssertSameAnswer(aloneA, Wait(a.Completion), "A");
        AssertSameAnswer(aloneC, Wait(c.Completion), "C");
        Assert.Equal(0, engine.Stats.Running);
        Assert.Equal(0, engine.Stats.KvCacheBytes);
    }

    [Fact]
    public void A_stopped_answer_leaves_its_prompt_for_the_same_question_asked_again()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var video = Video(m.Config, 90);
        var options = new GenerationOptions { MaxNewTokens = 40, StopAtEndTokens = false, KeepStepLogits = true };
        var ids = Ids(18, 24, true);
        using var engine = Engine(m, new EngineOptions { PrefillChunkTokens = 8 });

        // Stopped while decoding (from the engine's own callback, so it cannot finish first).
        using var cancel = new CancellationTokenSource();
        var stopped = engine.Submit(ids, video, options, onPrefillDone: _ => cancel.Cancel(), cancellation: cancel.Token);
        Assert.ThrowsAny<OperationCanceledException>(() => Wait(stopped.Completion));

        var again = Wait(engine.Submit(ids, video, options).Completion);
        Assert.Equal(again.PromptPositions - 1, again.ReusedPositions);   // the last position always runs, for its logits
        AssertSameAnswer(Alone(m, ids, video, options), again, "asked again");

        // Stopped before its prompt ran: nothing of it is kept.
        var other = Ids(19, 24, true);
        using var early = new CancellationTokenSource();
        early.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => Wait(engine.Submit(other, video, options, cancellation: early.Token).Completion));
        var fresh = Wait(engine.Submit(other, video, options).Completion);
        Assert.Equal(0, fresh.ReusedPositions);
    }

    [Theory]
    [InlineData(false, false)]   // a text-only conversation: no position reads the slow tokens
    [InlineData(true, true)]     // about a video, decoding attending to the slow tokens as the prompt's text does
    [InlineData(true, false)]    // about a video, the reference's decoding: the answer was computed unlike a prompt's text
    public void A_follow_up_reuses_the_answer_it_follows_where_decoding_computed_it_as_a_prompt_would(bool withVideo, bool attend)
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var video = withVideo ? Video(m.Config, 70) : null;
        var options = new GenerationOptions
        {
            MaxNewTokens = 6, StopAtEndTokens = false, KeepStepLogits = true, AttendSlowTokensWhileDecoding = attend,
        };
        var question = Ids(23, 20, withVideo);
        using var engine = Engine(m, new EngineOptions { PrefillChunkTokens = 8 });

        var first = Wait(engine.Submit(question, video, options).Completion);
        // The conversation so far, then a follow-up: the answer's tokens as they were generated.
        int[] followUp = [.. question, .. first.TokenIds, .. Ids(24, 7, false)];
        var second = Wait(engine.Submit(followUp, video, options).Completion);

        // The answer's last token was sampled but never run; the others were, and are reused where they
        // were computed as the follow-up's prompt computes them.
        bool answerReusable = !withVideo || attend;
        int answerRun = first.TokenIds.Length - 1;
        Assert.Equal(first.PromptPositions + (answerReusable ? answerRun : 0), second.ReusedPositions);
        AssertSameAnswer(Alone(m, followUp, video, options), second, "the follow-up");
    }

    [Fact]
    public void A_prompt_stopped_mid_prefill_leaves_the_positions_it_ran()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var video = Video(m.Config, 95);
        var options = new GenerationOptions { MaxNewTokens = 10, StopAtEndTokens = false, KeepStepLogits = true };
        var ids = Ids(21, 40, true);
        using var engine = Engine(m, new EngineOptions { PrefillChunkTokens = 8 });

        // Everything is timed by the engine's own steps: C (9 positions) and then B arrive together; the
        // second step runs C's last position and B's first 7, and C's first token cancels B.
        using var cancel = new CancellationTokenSource();
        GenerationRequest? b = null, c = null;
        var a = engine.Submit(Ids(20, 3, false), null, options, onPrefillDone: _ =>
        {
            c = engine.Submit(Ids(22, 9, false), null, options, onPrefillDone: _ => cancel.Cancel());
            b = engine.Submit(ids, video, options, cancellation: cancel.Token);
        });
        Wait(a.Completion);
        Wait(c!.Completion);
        Assert.ThrowsAny<OperationCanceledException>(() => Wait(b!.Completion));

        var again = Wait(engine.Submit(ids, video, options).Completion);
        Assert.InRange(again.ReusedPositions, 1, again.PromptPositions - 2);
        AssertSameAnswer(Alone(m, ids, video, options), again, "after a stop mid-prefill");
    }

    [Fact]
    public void Requests_over_the_kv_budget_wait_in_order_and_one_that_can_never_fit_is_refused()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var options = new GenerationOptions { MaxNewTokens = 8, StopAtEndTokens = false, KeepStepLogits = true };
        var ids = new[] { Ids(14, 20, false), Ids(15, 22, false), Ids(16, 12, false) };
        // Room for one request's cache at a time (each needs its prompt + 8 positions).
        long budget = KvCache.BytesFor(m.Config, 30) + 1;
        using var engine = Engine(m, new EngineOptions { KvCacheBudgetBytes = budget });
        var order = new List<int>();
        var submitted = ids.Select((p, i) => engine.Submit(p, null, options, onPrefillDone: _ => { lock (order) order.Add(i); })).ToArray();
        for (int i = 0; i < ids.Length; i++) AssertSameAnswer(Alone(m, ids[i], null, options), Wait(submitted[i].Completion), $"request {i}");
        Assert.Equal([0, 1, 2], order);

        var tooLong = engine.Submit(Ids(17, 40, false), null, options);
        var error = Assert.Throws<UserError>(() => Wait(tooLong.Completion));
        Assert.Contains("KV cache", error.Message);
    }

    [Fact]
    public void Encoding_a_video_interleaves_with_decoding_one_frame_per_step()
    {
        using var model = SlowFastModel.Load(TinyCheckpoints.Get(5));
        const int frames = 24;
        var pixels = TestData.Normal(frames * 3 * 128 * 128, 3);
        // Each frame's report notes whether the answer was still running then (the engine's stats of
        // its previous step; reports come from the engine's thread, in step order).
        var framesDone = new List<(int Frame, int Running)>();
        Task<VisualTokens>? encoding = null;
        // The video arrives while the answer is decoding (started from the engine's own callback, so
        // the order does not depend on this thread's timing).
        var answer = model.Engine.Submit(model.QuestionPrompt("Hello", withVisual: false), null,
            new GenerationOptions { MaxNewTokens = 6, StopAtEndTokens = false },
            onPrefillDone: _ => encoding = model.Engine.EncodeAsync(pixels, frames, MatMulPrecision.Float32,
                new SynchronousProgress(done => { lock (framesDone) framesDone.Add((done, model.Engine.Stats.Running)); })));

        Assert.Equal(6, answer.Completion.WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult().TokenIds.Length);
        Assert.NotNull(encoding);
        var tokens = encoding.WaitAsync(TimeSpan.FromSeconds(120)).GetAwaiter().GetResult();
        lock (framesDone)
        {
            Assert.Equal(Enumerable.Range(1, frames), framesDone.Select(f => f.Frame));
            // One frame a step while the answer runs: its remaining steps took a few frames' turns, then
            // it was done long before the video (not held until every frame was encoded, nor the video
            // held back). Alone, the video takes the tower's group of frames a step; the frames of the
            // first such step are reported with the stats of the step before (the answer's last).
            int whileAnswering = framesDone.Count(f => f.Running == 1);
            Assert.InRange(whileAnswering, 2, 7 + model.Vision.Tower.LastStageFrames - 1);
            Assert.All(framesDone.Skip(whileAnswering), f => Assert.Equal(0, f.Running));
        }

        // The same tokens as the vision encoder run alone.
        var alone = model.Vision.Encode(pixels, frames);
        Assert.Equal(alone.Fast, tokens.Fast);
        Assert.Equal(alone.Slow, tokens.Slow);
    }

    private sealed class SynchronousProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }

    [Fact]
    public void A_bad_prompt_fails_its_own_request_only()
    {
        using var m = new LoadedDecoder(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        using var engine = Engine(m, new EngineOptions());
        var options = new GenerationOptions { MaxNewTokens = 5, StopAtEndTokens = false };
        var good = engine.Submit(Ids(18, 10, false), null, options);
        var placeholderWithoutVideo = engine.Submit(Ids(19, 10, true), null, options);
        Assert.Contains("placeholder", Assert.Throws<UserError>(() => Wait(placeholderWithoutVideo.Completion)).Message);
        Assert.Equal(5, Wait(good.Completion).TokenIds.Length);
    }
}

/// <summary>
/// The engine held directly to the reference's golden fixtures: each case's prompt runs batched with
/// other requests, its prefill split in small chunks, and must give the fixture's logits (within the
/// golden tolerance) and greedy tokens, in the fixture's arithmetic; with the weights as stored and with
/// the decoder packed at load.
/// </summary>
public class EngineGoldenTests
{
    [Theory]
    [MemberData(nameof(DecoderGoldenTests.Cases), MemberType = typeof(DecoderGoldenTests))]
    public void A_golden_case_batched_with_other_requests_matches_the_reference(string name, bool packDecoder)
    {
        var g = GoldenCase.Open(name);
        string root = Path.Combine(Path.GetTempPath(), $"slowfast-engine-golden-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var m = new LoadedDecoder(g.CreateCheckpoint(root), packDecoder);
            var precision = g.Bf16Math ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32;
            using var engine = new InferenceEngine(m.Decoder, new EngineOptions { PrefillChunkTokens = 5, DefaultPrecision = precision });
            var ids = g.Ints("input_ids");
            VisualTokens? video = g.HasVisual ? GoldenVideo(g, m.Decoder.Hidden) : null;

            // Others decoding while the case prefills and decodes.
            var rng = new Random(1);
            var others = Enumerable.Range(0, 3).Select(i => engine.Submit(
                Enumerable.Range(0, 6 + 5 * i).Select(_ => rng.Next(1, 1000)).ToArray(), null,
                new GenerationOptions { MaxNewTokens = 12, StopAtEndTokens = false })).ToList();
            var forward = engine.ForwardAsync(ids, video);
            var expected = g.Ints("generated_ids");
            var answer = engine.Submit(ids, video, new GenerationOptions { MaxNewTokens = expected.Length, StopAtEndTokens = false });

            var logits = forward.WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            double err = g.CompareLogits(logits.Logits, logits.Vocab);
            Assert.True(err < DecoderGoldenTests.LogitTolerance, $"{name}: max abs logit error {err}");
            Assert.Equal(expected, answer.Completion.WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult().TokenIds);
            Task.WaitAll(others.Select(o => o.Completion).ToArray(), TimeSpan.FromSeconds(60));
        }
        finally
        {
            g.Close();
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static VisualTokens GoldenVideo(GoldenCase g, int hidden)
    {
        var fast = g.Floats("fast_tokens");
        var slow = g.Floats("slow_tokens");
        return new VisualTokens
        {
            Fast = fast, FastCount = fast.Length / hidden, Slow = slow, SlowCount = slow.Length / hidden,
            Hidden = hidden, IsVideo = g.Frames > 1, Plan = VisualTokenPlan.For(Presets.Get("tiny"), Math.Max(1, g.Frames)),
        }.ForDesign(g.Design);
    }
}
