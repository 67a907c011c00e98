using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Media;
using SlowFast.Model;
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
            new("model", "DIR|ID", ModelArgument.Description + " (pulled into the hub cache on first use)", SlowFast.Hub.KnownModels.Default),
            .. VisualInputOptions.Options,
            PrecisionOption.Spec,
            new("temperature", "T", "0 = greedy; above 0 samples from softmax(logits / T)", "0"),
            new("top-p", "P", "nucleus sampling: keep the most likely tokens up to probability P", "1"),
            new("top-k", "K", "keep only the K most likely tokens (0 = off)", "0"),
            new("seed", "S", "sampler seed (the same seed gives the same answer)", "0"),
            new("max-new-tokens", "N", "longest answer in tokens", "512"),
            new("repetition-penalty", "R", "HF repetition penalty over the generated tokens (1 = off)", "1"),
            new("attend-while-decoding", null, "let generated tokens attend to the slow tokens (default: the reference's decoding, where they do not)"),
            new("system", "TEXT", "system prompt", Model.Chat.ChatConversation.DefaultSystemPrompt),
            new("json", null, "print one JSON object {answer, tokens, timings} instead of streaming"),
        ],
        Run,
        Positional: "QUESTION", PositionalDescription: "the question (quote it)");

    private static int Run(ParsedArgs a)
    {
        string question = string.Join(' ', a.Positionals);
        if (string.IsNullOrWhiteSpace(question)) throw new UsageError("ask: a question is required");
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
        bool json = a.Flag("json");
        var err = Console.Error;
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };

        VisualInputOptions.CheckExclusive(a);
        var clock = Stopwatch.StartNew();
        var precision = PrecisionOption.Parse(a);
        PrecisionOption.Warn(precision, err);
        using var model = SlowFastModel.Load(ModelArgument.Resolve(a.Required("model")), engine: new Model.Engine.EngineOptions { DefaultPrecision = precision });
        err.WriteLine($"model     {model.Path} loaded in {clock.Elapsed.TotalSeconds:F1} s");

        var input = VisualInputOptions.Parse(a, model.Config);
        var ids = model.QuestionPrompt(question, input != null, a.String("system"));
        // Refuse an over-long request before decoding or encoding anything.
        model.CheckPromptFits(ids, input?.Frames ?? 0, "ask");

        var (video, decodeTime, visionTime) = VisualInputOptions.Encode(model, input, err, cancel.Token);
        var chat = model.StartConversation(video, a.String("system"));

        clock.Restart();
        var result = chat.Ask(question, options,
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
                ["tokens"] = new JsonObject
                {
                    ["text"] = ids.Length - (video != null ? 1 : 0),
                    ["fast"] = video?.FastCount ?? 0,
                    ["slow"] = video?.SlowCount ?? 0,
                    ["generated"] = result.TokenIds.Length,
                },
                ["timings"] = new JsonObject
                {
                    ["decode_s"] = Math.Round(decodeTime.TotalSeconds, 4),
                    ["vision_s"] = Math.Round(visionTime.TotalSeconds, 4),
                    ["prefill_s"] = Math.Round(result.PrefillTime.TotalSeconds, 4),
                    ["generate_s"] = Math.Round(result.DecodeTime.TotalSeconds, 4),
                    ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 3),
                },
            };
            Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        }
        return 0;
    }
}

/// <summary><c>--precision f32|bf16</c>, shared by <c>ask</c> and <c>forward</c>.</summary>
internal static class PrecisionOption
{
    public static readonly OptionSpec Spec = new("precision", "f32|bf16",
        "matrix-product arithmetic: f32 (float32, what the tests hold to the reference) or bf16 (activations rounded to bfloat16 " +
        "before each product with BF16 weights, like PyTorch's bf16 inference; about 2x faster on CPUs with AVX512-BF16)", "f32");

    public static MatMulPrecision Parse(ParsedArgs a) => a.Required("precision").ToLowerInvariant() switch
    {
        "f32" or "float32" or "fp32" => MatMulPrecision.Float32,
        "bf16" or "bfloat16" => MatMulPrecision.BFloat16,
        var other => throw new UsageError($"{a.Command.Name}: --precision must be f32 or bf16, not '{other}'"),
    };

    public static void Warn(MatMulPrecision precision, TextWriter log)
    {
        if (MatMul.Effective(precision) != precision)
            log.WriteLine("precision bf16 asked, but this CPU has no AVX512-BF16 (or SLOWFAST_NO_JIT=1): computing in float32");
    }
}

/// <summary>The visual input options shared by <c>ask</c> and <c>forward</c>: --video, --image or --pixels.</summary>
internal static class VisualInputOptions
{
    public static readonly OptionSpec[] Options =
    [
        new("video", "FILE", "a video file (decoded with ffmpeg)"),
        new("image", "FILE", "a still image (JPEG, PNG, WebP)"),
        new("pixels", "FILE", "a pixels file from `slowfast frames` (pixel_values [T,3,S,S])"),
        new("frames", "N", "frames sampled uniformly from --video (default: the model's training frame count, else 64)"),
    ];

    public sealed record Input(string Kind, string Path, int Frames);

    /// <summary>Usage checks that need no model (run before loading one).</summary>
    public static void CheckExclusive(ParsedArgs a)
    {
        int given = new[] { "video", "image", "pixels" }.Count(a.Has);
        if (given > 1) throw new UsageError($"{a.Command.Name}: give only one of --video, --image, --pixels");
        if (a.Has("frames") && !a.Has("video")) throw new UsageError($"{a.Command.Name}: --frames applies to --video only");
    }

    /// <summary>Which input was given (null: none) and how many frames it will be, without decoding anything.</summary>
    public static Input? Parse(ParsedArgs a, SlowFastConfig config)
    {
        var given = new[] { "video", "image", "pixels" }.Where(a.Has).ToList();
        if (given.Count > 1) throw new UsageError($"{a.Command.Name}: give only one of --video, --image, --pixels");
        if (given.Count == 0)
        {
            if (a.Has("frames")) throw new UsageError($"{a.Command.Name}: --frames needs --video");
            return null;
        }
        string kind = given[0], path = a.Required(kind);
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        int frames = kind switch
        {
            "video" => a.IntOrNull("frames", 1, VideoOptions.MaxFrames) ?? config.MmTrainingVideoFrames ?? 64,
            "image" => 1,
            _ => PixelFrames(path),
        };
        if (kind != "video" && a.Has("frames")) throw new UsageError($"{a.Command.Name}: --frames applies to --video only");
        return new Input(kind, path, frames);
    }

    /// <summary>Frame count from a pixels file's header (cheap: the file is only mapped).</summary>
    private static int PixelFrames(string path)
    {
        using var file = Tensors.IO.SafetensorsFile.Open(path);
        if (!file.TryGetEntry("pixel_values", out var e) || e.Shape.Length != 4)
            throw new UserError($"{path}: no pixel_values [T, 3, S, S] tensor (make one with `slowfast frames`)");
        return (int)Math.Min(int.MaxValue, e.Shape[0]);
    }

    /// <summary>Decodes and encodes the input, reporting progress on <paramref name="err"/>.</summary>
    public static (VisualTokens? Video, TimeSpan Decode, TimeSpan Vision) Encode(SlowFastModel model, Input? input, TextWriter err, CancellationToken cancel)
    {
        if (input == null) return (null, TimeSpan.Zero, TimeSpan.Zero);
        int size = model.Config.Vision.ImageSize;
        var clock = Stopwatch.StartNew();
        var pixels = input.Kind switch
        {
            "video" => MediaLoader.LoadVideo(input.Path, new VideoOptions { Frames = input.Frames, Size = size }, cancel),
            "image" => MediaLoader.LoadImage(input.Path, size, model.Config.ImageAspectRatio == "pad" ? AspectMode.Pad : AspectMode.Crop, cancel: cancel),
            _ => PixelsFile.Read(input.Path),
        };
        if (pixels.Size != size)
            throw new UserError($"{input.Path}: frames are {pixels.Size}x{pixels.Size} but the model's vision tower takes {size}x{size}");
        var decode = clock.Elapsed;
        err.WriteLine($"decode    {pixels.FrameCount} frame(s) of {input.Path} in {decode.TotalSeconds:F2} s");

        clock.Restart();
        var progress = pixels.FrameCount > 1 && !Console.IsErrorRedirected ? new FrameProgress(err, pixels.FrameCount) : null;
        var video = model.EncodeVideo(pixels.PixelValues, pixels.FrameCount, progress, cancel);
        if (progress != null) err.Write("\r");
        var vision = clock.Elapsed;
        err.WriteLine($"vision    {pixels.FrameCount} frame(s) -> {video.FastCount} fast + {video.SlowCount} slow tokens in {vision.TotalSeconds:F2} s");
        return (video, decode, vision);
    }
}

/// <summary>"vision    k/T frames" on one terminal line, updated as frames are encoded.</summary>
internal sealed class FrameProgress(TextWriter err, int total) : IProgress<int>
{
    public void Report(int done) => err.Write($"\rvision    {done}/{total} frames");
}
