using System.Diagnostics;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Decoder;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>
/// The engine's figures on a real checkpoint: aggregate decoding speed with 1, 2, 4 and 8 sequences
/// decoding together, and how soon a follow-up question about a video gets its first token when the
/// earlier turn's prompt is reused. The visual tokens are random (of the real counts for the frame
/// count): what is measured is the decoder's work, which does not depend on their values.
/// </summary>
public static class EngineBench
{
    public static readonly int[] Concurrency = [1, 2, 4, 8];

    public static JsonObject Run(string dir, string source, int frames, MatMulPrecision precision, bool quick, TextWriter log)
    {
        // The decoder as a model loads it by default: packed for the bfloat16 GEMM in bfloat16 arithmetic.
        using var model = ModelDirectory.Open(dir, packDecoder: MatMul.Effective(precision) == MatMulPrecision.BFloat16);
        var config = model.Config;
        var decoder = new Qwen2Decoder(config, DecoderWeights.From(model));
        using var engine = new InferenceEngine(decoder, new EngineOptions { MaxConcurrentSequences = Concurrency.Max(), DefaultPrecision = precision });
        int vocab = Math.Min(config.VocabSize, 151643);   // ordinary tokens only
        var result = new JsonObject
        {
            ["source"] = source, ["precision"] = MatMul.EffectiveName(precision),
            ["decoder"] = model.PackDecoderAtLoad ? "packed at load" : "as stored",
        };

        // Warm-up: JIT every path and page the memory-mapped weights in.
        Answer(engine, TextIds(0, 16, vocab), null, 4);

        // The machine's bandwidth drifts (other tenants), so the concurrency levels take turns, round
        // after round, and each level's figure sums its rounds.
        // Every other round runs the levels in reverse order, so a slow drift weighs on all alike.
        int newTokens = quick ? 6 : 8, rounds = quick ? 1 : 4;
        log.WriteLine($"  engine: aggregate decoding with {string.Join(", ", Concurrency)} sequences, {newTokens} tokens each, {rounds} round(s)");
        var totals = Concurrency.ToDictionary(m => m, _ => (Steps: 0L, Tokens: 0L, Seconds: 0.0, Wall: 0.0));
        for (int round = 0; round < rounds; round++)
            foreach (int m in round % 2 == 0 ? Concurrency : Concurrency.Reverse())
            {
                var before = Idle(engine);
                var wall = Stopwatch.StartNew();
                var requests = Enumerable.Range(0, m)
                    .Select(i => engine.Submit(TextIds(1000 * round + 10 * m + i, 24, vocab), null, Options(newTokens)))
                    .ToList();
                Task.WaitAll(requests.Select(r => r.Completion).ToArray());
                var after = Idle(engine);
                var t = totals[m];
                totals[m] = (t.Steps + after.DecodeSteps - before.DecodeSteps, t.Tokens + after.DecodedTokens - before.DecodedTokens,
                    t.Seconds + after.DecodeSeconds - before.DecodeSeconds, t.Wall + wall.Elapsed.TotalSeconds);
                log.WriteLine($"    round {round + 1}, {m} sequence(s): {(after.DecodeSeconds - before.DecodeSeconds) * 1e3 / Math.Max(1, after.DecodeSteps - before.DecodeSteps):F0} ms a step");
            }
        var decoding = new JsonArray();
        double single = totals[1].Tokens / totals[1].Seconds;
        foreach (int m in Concurrency)
        {
            var t = totals[m];
            double rate = t.Tokens / t.Seconds;
            decoding.Add(new JsonObject
            {
                ["sequences"] = m, ["decode_steps"] = t.Steps, ["decoded_tokens"] = t.Tokens,
                ["decode_s"] = t.Seconds, ["tokens_per_s"] = rate, ["speedup_vs_one"] = rate / single, ["wall_s"] = t.Wall,
            });
            log.WriteLine($"  engine: {m} sequence(s): {rate:F2} tokens/s together ({rate / single:F2}x one), {t.Seconds / Math.Max(1, t.Steps) * 1e3:F0} ms a step");
        }
        result["peak_working_set_bytes_after_decoding"] = Process.GetCurrentProcess().PeakWorkingSet64;
        result["decoding"] = decoding;

        // A first question about a video, then a follow-up that continues the same conversation.
        var video = RandomVideo(config, frames);
        log.WriteLine($"  engine: first question about {frames} frames ({video.FastCount} fast + {video.SlowCount} slow tokens), then a follow-up");
        var (firstAnswer, secondAnswer) = QuestionThenFollowUp(engine, video, vocab, newTokens);
        double ratio = secondAnswer.TimeToFirstToken / firstAnswer.PrefillTime;
        result["follow_up"] = new JsonObject
        {
            ["frames"] = frames,
            ["first_prompt_positions"] = firstAnswer.PromptPositions,
            ["first_prefill_s"] = firstAnswer.PrefillTime.TotalSeconds,
            ["follow_up_prompt_positions"] = secondAnswer.PromptPositions,
            ["follow_up_reused_positions"] = secondAnswer.ReusedPositions,
            ["follow_up_first_token_s"] = secondAnswer.TimeToFirstToken.TotalSeconds,
            ["ratio"] = ratio,
        };
        log.WriteLine($"  engine: first prefill {firstAnswer.PromptPositions} positions in {firstAnswer.PrefillTime.TotalSeconds:F2} s; " +
            $"follow-up ({secondAnswer.PromptPositions} positions, {secondAnswer.ReusedPositions} reused) first token in {secondAnswer.TimeToFirstToken.TotalSeconds:F2} s = {100 * ratio:F1}%");
        result["peak_working_set_bytes"] = Process.GetCurrentProcess().PeakWorkingSet64;
        result["video_cache"] = SecondAsk(dir, model, Math.Min(frames, quick ? 2 : 8), precision, log);
        return result;
    }

    /// <summary>
    /// What a second question about the same video file costs before prefill, as <c>slowfast ask</c>
    /// does it: hash the file, look the tokens up in the video cache (a fresh cache object, so they
    /// come from disk as in a new process), and only on a miss decode and run the vision tower.
    /// </summary>
    private static JsonObject SecondAsk(string dir, ModelDirectory model, int frames, MatMulPrecision precision, TextWriter log)
    {
        string root = Directory.CreateTempSubdirectory("slowfast-bench-video-").FullName;
        try
        {
            var processor = new SlowFastProcessor(model.Config);
            string video = Path.Combine(root, "clip.mp4");
            MakeVideo(video, processor.ImageSize);
            string checkpoint = CheckpointFingerprint.Of(dir);
            var vision = new VisionEncoder(model);
            string cacheDir = Path.Combine(root, "features");
            log.WriteLine($"  engine: a question about a {frames}-frame video file, then a second one (video cache in {cacheDir})");

            (double Seconds, double Decode, double Vision, CacheSource Source) Ask()
            {
                var clock = Stopwatch.StartNew();
                var cache = new VideoFeatureCache(cacheDir);
                var input = processor.Video(video, frames);
                var key = VideoFeatureKey.For(processor.MediaKey(input), checkpoint, precision);
                var (tokens, source) = cache.Lookup(key);
                double decode = 0, encode = 0;
                if (tokens == null)
                {
                    var step = Stopwatch.StartNew();
                    var pixels = processor.Load(input);
                    decode = step.Elapsed.TotalSeconds;
                    step.Restart();
                    var encoding = vision.Start(pixels.FrameCount, (f, chw) => pixels.Frame(f).CopyTo(chw), precision);
                    while (!encoding.Done) encoding.EncodeNextFrames(int.MaxValue);
                    tokens = encoding.Finish();
                    encode = step.Elapsed.TotalSeconds;
                    cache.Put(key, tokens);
                }
                return (clock.Elapsed.TotalSeconds, decode, encode, source);
            }

            var first = Ask();
            var second = Ask();
            log.WriteLine($"  engine: first ask: decode {first.Decode:F2} s + vision {first.Vision:F2} s, {first.Seconds:F2} s before prefill; " +
                $"second ask: vision 0 s ({second.Source.ToString().ToLowerInvariant()}), {second.Seconds:F3} s before prefill");
            return new JsonObject
            {
                ["frames"] = frames,
                ["first_decode_s"] = first.Decode, ["first_vision_s"] = first.Vision, ["first_total_s"] = first.Seconds,
                ["second_vision_s"] = second.Vision, ["second_total_s"] = second.Seconds,
                ["second_source"] = second.Source.ToString().ToLowerInvariant(),
            };
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>A 4-second ffmpeg test pattern at the tower's size, H.264.</summary>
    private static void MakeVideo(string path, int size)
    {
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("SLOWFAST_FFMPEG") is { Length: > 0 } ffmpeg ? ffmpeg : "ffmpeg") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var arg in new[] { "-v", "error", "-f", "lavfi", "-i", $"testsrc2=size={size}x{size}:rate=25", "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-y", path })
            psi.ArgumentList.Add(arg);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("ffmpeg could not be started");
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg could not make the benchmark video: {err.Trim()}");
    }

    /// <summary>Random visual tokens of the real counts for <paramref name="frames"/> frames (the decoder's work does not depend on their values).</summary>
    internal static VisualTokens RandomVideo(SlowFastConfig config, int frames)
    {
        var plan = VisualTokenPlan.For(config, frames);
        return new VisualTokens
        {
            Fast = RandomData.Floats((long)plan.FastTokens * config.HiddenSize, 0.05f, 21), FastCount = plan.FastTokens,
            Slow = RandomData.Floats((long)plan.SlowTokens * config.HiddenSize, 0.05f, 22), SlowCount = plan.SlowTokens,
            Hidden = config.HiddenSize, IsVideo = frames > 1, Plan = plan,
        };
    }

    /// <summary>
    /// A question about <paramref name="video"/>, then a follow-up continuing the same conversation (the
    /// first prompt, its answer and a new question: the engine reuses the first prompt's positions).
    /// </summary>
    internal static (GenerationResult First, GenerationResult FollowUp) QuestionThenFollowUp(InferenceEngine engine, VisualTokens video, int vocab, int newTokens)
    {
        int[] system = TextIds(7, 20, vocab), question = TextIds(8, 12, vocab), followUp = TextIds(9, 14, vocab);
        int[] first = [.. system, DecoderPrompt.ImagePlaceholder, .. question];
        var firstAnswer = Answer(engine, first, video, newTokens);
        int[] second = [.. first, .. firstAnswer.TokenIds, .. followUp];
        return (firstAnswer, Answer(engine, second, video, newTokens));
    }

    /// <summary>
    /// The engine's stats once it has published the step that finished the last request (a request's
    /// task completes inside the step, before the step's counters are published).
    /// </summary>
    internal static EngineStats Idle(InferenceEngine engine)
    {
        var clock = Stopwatch.StartNew();
        while (engine.Stats is var s && (s.Running > 0 || s.Waiting > 0))
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(1)) throw new TimeoutException("the engine did not go idle");
            Thread.Sleep(1);
        }
        return engine.Stats;
    }

    internal static GenerationOptions Options(int tokens) => new() { MaxNewTokens = tokens, StopAtEndTokens = false };

    internal static GenerationResult Answer(InferenceEngine engine, int[] ids, VisualTokens? video, int tokens) =>
        engine.Submit(ids, video, Options(tokens)).Completion.GetAwaiter().GetResult();

    internal static int[] TextIds(int seed, int count, int vocab)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }
}
