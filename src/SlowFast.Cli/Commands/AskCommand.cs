using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast ask</c>: answer a question about a video or image, streaming the answer.</summary>
public static class AskCommand
{
    public static readonly CommandSpec Spec = new("ask",
        "Answer a question about a video or image: the answer streams to stdout, progress to stderr.",
        [
            .. QuestionModel.Options,
            PackedDecoderOption.OptInSpec,
            .. VisualInputOptions.Options,
            DesignOption.Spec,
            .. CacheOptions.Options,
            .. AnswerOptions.Options,
            new("json", null, "print one JSON object {answer, tokens, timings} instead of streaming"),
        ],
        Run,
        Positional: "QUESTION", PositionalDescription: "the question (quote it)");

    private static int Run(ParsedArgs a)
    {
        string question = string.Join(' ', a.Positionals);
        if (string.IsNullOrWhiteSpace(question)) throw new UsageError("ask: a question is required");
        var options = AnswerOptions.Parse(a);
        bool json = a.Flag("json");
        var err = Console.Error;
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };

        VisualInputOptions.CheckExclusive(a);
        var total = Stopwatch.StartNew();
        var design = DesignOption.Parse(a);
        var cache = CacheOptions.Create(a, err);
        using var model = QuestionModel.Load(a, PackedDecoderOption.ParseOptIn(a), err);

        var processor = new SlowFastProcessor(model.Config);
        var input = VisualInputOptions.Parse(a, processor);
        var ids = model.QuestionPrompt(question, VisualInputOptions.HasVisual(a), a.String("system"));
        // Refuse an over-long request before decoding or encoding anything.
        model.CheckPromptFits(ids, VisualInputOptions.Frames(a, input), "ask", design);
        model.CheckMemory(ids, VisualInputOptions.Frames(a, input), "ask", design);

        var encoded = VisualInputOptions.EncodeOrLoad(a, model, processor, input, cache, err, cancel.Token);
        var video = encoded.Video?.ForDesign(design);

        // The prompt checked above is the one that runs: tokenized once.
        var result = model.Generate(ids, video, options,
            onText: json ? null : piece => { Console.Out.Write(piece); Console.Out.Flush(); },
            onPrefillDone: t => err.WriteLine($"prefill   {ids.Length - (video != null ? 1 : 0) + (video?.FastCount ?? 0)} positions in {t.TotalSeconds:F2} s"),
            cancellation: cancel.Token);
        if (!json) Console.Out.WriteLine();
        err.WriteLine($"generate  {result.TokenIds.Length} tokens in {result.DecodeTime.TotalSeconds:F2} s ({result.TokensPerSecond:F1} tokens/s), stopped by {result.FinishReason.ToString().ToLowerInvariant()}");

        if (json)
        {
            var o = new JsonObject
            {
                ["answer"] = result.Text,
                ["finish_reason"] = result.FinishReason.ToString().ToLowerInvariant(),
                ["precision"] = MatMul.EffectiveName(result.Precision),
                ["cached"] = encoded.Cached,
                ["tokens"] = new JsonObject
                {
                    ["text"] = ids.Length - (video != null ? 1 : 0),
                    ["fast"] = video?.FastCount ?? 0,
                    ["slow"] = video?.SlowCount ?? 0,
                    ["generated"] = result.TokenIds.Length,
                },
                ["timings"] = new JsonObject
                {
                    ["decode_s"] = Math.Round(encoded.Decode.TotalSeconds, 4),
                    ["vision_s"] = Math.Round(encoded.Vision.TotalSeconds, 4),
                    ["vision_packing_s"] = Math.Round(encoded.Packing.TotalSeconds, 4),
                    ["prefill_s"] = Math.Round(result.PrefillTime.TotalSeconds, 4),
                    ["generate_s"] = Math.Round(result.DecodeTime.TotalSeconds, 4),
                    ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 3),
                    ["total_s"] = Math.Round(total.Elapsed.TotalSeconds, 4),
                },
            };
            Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        }
        return 0;
    }
}

/// <summary>
/// The model of <c>ask</c> and <c>chat</c>: which checkpoint, in which arithmetic, with which weights packed or
/// quantized at load; loaded with its load line on stderr. Whether the decoder is packed is each command's
/// own option (<see cref="PackedDecoderOption"/>).
/// </summary>
internal static class QuestionModel
{
    public static readonly OptionSpec[] Options =
    [
        new("model", "DIR|ID", ModelArgument.Description + " (pulled into the hub cache on first use)", SlowFast.Hub.KnownModels.Default),
        PrecisionOption.Spec,
        QuantizeCommand.AtLoadOption,
        PackedVisionOption.Spec,
        VisionInt8Option.Spec,
    ];

    public static SlowFastModel Load(ParsedArgs a, bool packDecoder, TextWriter err)
    {
        var clock = Stopwatch.StartNew();
        var precision = PrecisionOption.Parse(a);
        PrecisionOption.Warn(precision, err);
        var model = SlowFastModel.Load(ModelArgument.Resolve(a.Required("model")), engine: new Model.Engine.EngineOptions
        {
            DefaultPrecision = precision, QuantizeWeights = QuantizeCommand.ParseAtLoad(a), PackVisionWeights = PackedVisionOption.Parse(a),
            PackDecoderWeights = packDecoder, VisionInt8 = VisionInt8Option.Parse(a, err),
        });
        err.WriteLine($"model     {model.Path} loaded in {clock.Elapsed.TotalSeconds:F1} s ({model.DecoderPacking})");
        return model;
    }
}

/// <summary>How <c>ask</c> and <c>chat</c> answer: sampling, length, the system prompt.</summary>
internal static class AnswerOptions
{
    public static readonly OptionSpec[] Options =
    [
        new("temperature", "T", "0 = greedy; above 0 samples from softmax(logits / T)", "0"),
        new("top-p", "P", "nucleus sampling: keep the most likely tokens up to probability P", "1"),
        new("top-k", "K", "keep only the K most likely tokens (0 = off)", "0"),
        new("seed", "S", "sampler seed (the same seed gives the same answer)", "0"),
        new("max-new-tokens", "N", "longest answer in tokens", "512"),
        new("repetition-penalty", "R", "HF repetition penalty over the generated tokens (1 = off)", "1"),
        new("attend-while-decoding", null, "let generated tokens attend to the slow tokens (default: the reference's decoding, where they do not)"),
        new("system", "TEXT", "system prompt", Model.Chat.ChatConversation.DefaultSystemPrompt),
    ];

    public static GenerationOptions Parse(ParsedArgs a)
    {
        var options = new GenerationOptions
        {
            Temperature = a.Double("temperature", 0, 100),
            TopP = a.Double("top-p", 0, 1),
            TopK = a.Int("top-k", 0),
            Seed = a.ULong("seed"),
            MaxNewTokens = a.Int("max-new-tokens", 1, 1_000_000),
            RepetitionPenalty = a.Double("repetition-penalty", 0.01, 100),
            AttendSlowTokensWhileDecoding = a.Flag("attend-while-decoding"),
        };
        options.Validate();
        return options;
    }
}

/// <summary><c>--precision auto|f32|bf16</c>, shared by <c>ask</c>, <c>forward</c> and <c>bench</c>.</summary>
internal static class PrecisionOption
{
    public static readonly OptionSpec Spec = new("precision", "auto|f32|bf16",
        "matrix-product arithmetic: auto (bf16 where the CPU has AVX512-BF16, else f32), f32 (float32, what the tests hold to the reference; " +
        "use it for exact comparisons) or bf16 (activations rounded to bfloat16 before each product with BF16 weights, like PyTorch's bf16 " +
        "inference; about 2x faster on CPUs with AVX512-BF16)", "auto");

    public static MatMulPrecision Parse(ParsedArgs a) => a.Required("precision").ToLowerInvariant() switch
    {
        "auto" => MatMul.BFloat16Supported ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32,
        "f32" or "float32" or "fp32" => MatMulPrecision.Float32,
        "bf16" or "bfloat16" => MatMulPrecision.BFloat16,
        var other => throw new UsageError($"{a.Command.Name}: --precision must be auto, f32 or bf16, not '{other}'"),
    };

    public static void Warn(MatMulPrecision precision, TextWriter log)
    {
        // auto never asks for what the CPU lacks, so this speaks only of an explicit bf16.
        if (MatMul.Effective(precision) != precision)
            log.WriteLine("precision bf16 asked, but this CPU has no AVX512-BF16 (or SLOWFAST_NO_JIT=1): computing in float32");
    }
}

/// <summary><c>--no-packed-vision</c>: the memory the tower's packed weights take, given back for some vision speed.</summary>
internal static class PackedVisionOption
{
    public static readonly OptionSpec Spec = new("no-packed-vision", null,
        "do not keep the vision tower's weights packed for the bf16 GEMM: about 1.7 GB less memory for ConvNeXt-XXL, slower vision");

    /// <summary>Whether the tower keeps its packed weights (<see cref="Model.Engine.EngineOptions.PackVisionWeights"/>).</summary>
    public static bool Parse(ParsedArgs a) => !a.Flag(Spec.Name);
}

/// <summary>
/// Whether loading packs the decoder's matrices for the bf16 GEMM (<see cref="Model.Engine.EngineOptions.PackDecoderWeights"/>):
/// <c>serve</c> and <c>chat</c>, which answer many questions a load, do unless <c>--no-packed-decoder</c>; <c>ask</c>,
/// one question a process, only with <c>--pack-decoder</c>.
/// </summary>
internal static class PackedDecoderOption
{
    public static readonly OptionSpec OptOutSpec = new("no-packed-decoder", null,
        "do not pack the decoder's matrices for the bf16 GEMM at load: they stay memory-mapped as stored (page cache rather than " +
        "process memory), and every bf16 product packs them again: slower prefill, above all of short prompts");

    public static readonly OptionSpec OptInSpec = new("pack-decoder", null,
        "pack the decoder's matrices for the bf16 GEMM at load, as serve does: faster prefill, but loading reads and packs " +
        "the whole decoder, and where memory has no room for both the packed copy pushes the checkpoint out of the page cache, so the next " +
        "process reads it from disk again");

    public static bool ParseOptOut(ParsedArgs a) => !a.Flag(OptOutSpec.Name);
    public static bool ParseOptIn(ParsedArgs a) => a.Flag(OptInSpec.Name);
}

/// <summary><c>--vision-int8</c>: the vision tower's MLP products in int8 (faster, other numbers; off by default).</summary>
internal static class VisionInt8Option
{
    public static readonly OptionSpec Spec = new("vision-int8", null,
        "run the vision tower's MLP products in int8, one scale per row and per channel (AVX512-VNNI): faster vision, " +
        "slightly different numbers (about 0.4% on the tower's output with random weights); encoded videos are cached apart");

    /// <summary>Whether the flag is given; says so on <paramref name="log"/> when this CPU cannot do it.</summary>
    public static bool Parse(ParsedArgs a, TextWriter log)
    {
        bool on = a.Flag(Spec.Name);
        if (on && !MatMul.Int8ChannelsSupported)
            log.WriteLine("vision int8 asked, but this CPU has no AVX512-VNNI (or SLOWFAST_NO_JIT=1): the tower's products keep their arithmetic");
        return on;
    }
}

/// <summary><c>--cache-dir DIR</c> and <c>--no-cache</c>: where <c>ask</c> keeps encoded videos (<see cref="VideoFeatureCache"/>).</summary>
internal static class CacheOptions
{
    public static readonly OptionSpec[] Options =
    [
        new("cache-dir", "DIR", $"where encoded videos are kept, so asking about the same video again skips decoding and the vision tower " +
            $"(default: ${VideoFeatureCache.DirectoryVariable}, else $XDG_CACHE_HOME/slowfast/features, else ~/.cache/slowfast/features)"),
        new("no-cache", null, "encode the video even if it was encoded before, and keep nothing"),
    ];

    /// <summary>The cache the options ask for; null with --no-cache. Problems with it are reported on <paramref name="log"/>, never fatal.</summary>
    public static VideoFeatureCache? Create(ParsedArgs a, TextWriter log)
    {
        if (a.Flag("no-cache"))
        {
            if (a.Has("cache-dir")) throw new UsageError($"{a.Command.Name}: --cache-dir and --no-cache exclude each other");
            return null;
        }
        string dir = a.String("cache-dir") ?? VideoFeatureCache.DefaultDirectory();
        if (File.Exists(dir)) throw new UserError($"{dir}: is a file; --cache-dir takes a directory");
        return new VideoFeatureCache(dir) { Warning = line => log.WriteLine($"cache     {line}") };
    }
}

/// <summary>
/// The visual input options shared by <c>ask</c>, <c>forward</c> and <c>encode</c>: --video (with --frames,
/// --fps, --start, --end), --image (several: the frames of one video), --pixels, or --features.
/// </summary>
internal static class VisualInputOptions
{
    public static readonly OptionSpec[] Options =
    [
        new("video", "FILE", "a video file (decoded with ffmpeg, frame by frame into the vision tower)"),
        new("image", "FILE", "a still image (JPEG, PNG, WebP); given several times, the images are the frames of one video, in order", Repeatable: true),
        new("pixels", "FILE", "a pixels file from `slowfast frames` (pixel_values [T,3,S,S])"),
        new("features", "FILE", "visual tokens saved by `slowfast encode` (no decoding, no vision tower)"),
        new("frames", "N", "frames sampled uniformly from --video (default: the model's training frame count, else 64); with --fps, the most frames"),
        new("fps", "R", "sample --video at R frames a second (the reference's fps sampling: every round(video fps / R)-th frame) instead of uniformly"),
        new("start", "S", "only frames of --video from S seconds on"),
        new("end", "S", "only frames of --video up to S seconds"),
    ];

    /// <summary>Visual tokens of the input (null: none), where they came from and what it took.</summary>
    /// <param name="Packing">The part of <paramref name="Vision"/> spent packing the tower's matrices (once per process).</param>
    public sealed record Encoded(VisualTokens? Video, TimeSpan Decode, TimeSpan Vision, bool Cached, TimeSpan Packing = default);

    /// <summary>Usage checks that need no model (run before loading one).</summary>
    public static void CheckExclusive(ParsedArgs a)
    {
        int given = new[] { "video", "image", "pixels", "features" }.Count(a.Has);
        if (given > 1) throw new UsageError($"{a.Command.Name}: give only one of --video, --image, --pixels, --features");
        foreach (var videoOnly in new[] { "frames", "fps", "start", "end" })
            if (a.Has(videoOnly) && !a.Has("video")) throw new UsageError($"{a.Command.Name}: --{videoOnly} applies to --video only");
        // The sampling options' ranges, so that a bad value is refused before a model is loaded.
        a.IntOrNull("frames", 1, VideoOptions.MaxFrames);
        if (a.Has("fps")) a.Double("fps", 1e-6, 1000);
        if (a.DoubleOrNull("start", 0) is double s && a.DoubleOrNull("end", 0) is double e && e < s)
            throw new UsageError($"{a.Command.Name}: --end {e} is before --start {s}");
    }

    /// <summary>Whether any visual input is given.</summary>
    public static bool HasVisual(ParsedArgs a) => new[] { "video", "image", "pixels", "features" }.Any(a.Has);

    /// <summary>Frames of the input, known before decoding (for fps sampling: the most it can give); 0 without one.</summary>
    public static int Frames(ParsedArgs a, VisualInput? input) => a.Has("features") ? FeatureFile.FramesOf(a.Required("features")) : input?.Frames ?? 0;

    /// <summary>Which input was given (null: none, or --features) and how many frames it will be, without decoding anything.</summary>
    public static VisualInput? Parse(ParsedArgs a, SlowFastProcessor processor)
    {
        CheckExclusive(a);
        if (a.Has("video"))
        {
            int? frames = a.IntOrNull("frames", 1, VideoOptions.MaxFrames);
            var options = processor.VideoOptionsFor(frames) with
            {
                Start = a.DoubleOrNull("start", 0), End = a.DoubleOrNull("end", 0),
            };
            if (a.Has("fps")) options = options with { Sampling = SamplingMode.Fps, TargetFps = a.Double("fps", 1e-6, 1000) };
            if (options.Start is double s && options.End is double e && e < s) throw new UsageError($"{a.Command.Name}: --end {e} is before --start {s}");
            return processor.Video(a.Required("video"), options: options);
        }
        if (a.Has("image"))
        {
            var images = a.All("image");
            return images.Count == 1 ? processor.Image(images[0]) : processor.Frames(images);
        }
        if (a.Has("pixels")) return processor.Pixels(a.Required("pixels"));
        return null;
    }

    /// <summary>The visual tokens of --features (checked against the model), or of the media input (see <see cref="Encode"/>).</summary>
    public static Encoded EncodeOrLoad(ParsedArgs a, SlowFastModel model, SlowFastProcessor processor, VisualInput? input, VideoFeatureCache? cache,
        TextWriter err, CancellationToken cancel)
    {
        if (!a.Has("features")) return Encode(model, processor, input, cache, err, cancel);
        var clock = Stopwatch.StartNew();
        var tokens = FeatureFile.Read(a.Required("features"), model.Config, CheckpointFingerprint.Of(model));
        err.WriteLine($"vision    from {a.Required("features")}: {tokens.Plan.Frames} frame(s) -> {tokens.FastCount} fast + {tokens.SlowCount} slow tokens ({clock.Elapsed.TotalSeconds:F2} s)");
        return new Encoded(tokens, TimeSpan.Zero, TimeSpan.Zero, true);
    }

    /// <summary>
    /// The input's visual tokens, reporting progress on <paramref name="err"/>: from <paramref name="cache"/>
    /// when it holds them (nothing is decoded or encoded then; the file is only hashed), else decoded
    /// frame by frame into the vision tower (never every frame's pixels at once) and put in the cache.
    /// </summary>
    public static Encoded Encode(SlowFastModel model, SlowFastProcessor processor, VisualInput? input, VideoFeatureCache? cache,
        TextWriter err, CancellationToken cancel)
    {
        if (input == null) return new Encoded(null, TimeSpan.Zero, TimeSpan.Zero, false);
        var clock = Stopwatch.StartNew();
        VideoFeatureKey? key = null;
        if (cache != null)
        {
            key = VideoFeatureKey.For(model, processor.MediaKey(input, cancel));
            if (cache.TryGet(key, out var cached))
            {
                err.WriteLine($"vision    cached: {cached.Plan.Frames} frame(s) -> {cached.FastCount} fast + {cached.SlowCount} slow tokens " +
                    $"(key {key.ShortDigest}, {clock.Elapsed.TotalSeconds:F2} s)");
                return new Encoded(cached, TimeSpan.Zero, TimeSpan.Zero, true);
            }
        }

        clock.Restart();
        var packedBefore = model.VisionPackingTime;
        using var frames = processor.Open(input, cancel);
        var progress = frames.FrameCount > 1 && !Console.IsErrorRedirected ? new FrameProgress(err, frames.FrameCount) : null;
        var video = model.EncodeVideo(frames, progress, cancel);
        if (progress != null) err.Write("\r");
        var decode = frames.DecodeTime;
        var vision = clock.Elapsed - decode;
        var packing = model.VisionPackingTime - packedBefore;
        err.WriteLine($"decode    {frames.FrameCount} frame(s) of {input.Path} in {decode.TotalSeconds:F2} s (frame by frame, as the vision tower takes them)");
        err.WriteLine($"vision    {frames.FrameCount} frame(s) -> {video.FastCount} fast + {video.SlowCount} slow tokens in {vision.TotalSeconds:F2} s" +
            (packing > TimeSpan.Zero ? $" ({packing.TotalSeconds:F2} s of it packing the tower's matrices, once)" : ""));
        if (cache != null && key != null && cache.Put(key, video))
            err.WriteLine($"cache     kept as {cache.PathFor(key)}");
        return new Encoded(video, decode, vision, false, packing);
    }
}

/// <summary>"vision    k/T frames" on one terminal line, updated as frames are encoded.</summary>
internal sealed class FrameProgress(TextWriter err, int total) : IProgress<int>
{
    public void Report(int done) => err.Write($"\rvision    {done}/{total} frames");
}
