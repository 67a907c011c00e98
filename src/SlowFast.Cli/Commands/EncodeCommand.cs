using System.Diagnostics;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Caching;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Cli.Commands;

/// <summary>
/// <c>slowfast encode</c>: a video's visual tokens into a file, frame by frame and resumable, for
/// <c>ask --features</c> / <c>forward --features</c> (long videos: the vision tower's hours are spent once).
/// </summary>
public static class EncodeCommand
{
    public static readonly CommandSpec Spec = new("encode",
        "Save a video's visual tokens (slow tokens, BF16) to a file, frame by frame; an interrupted run continues where it stopped. Use them with ask/forward --features.",
        [
            new("model", "DIR|ID", ModelArgument.Description + " (pulled into the hub cache on first use)", SlowFast.Hub.KnownModels.Default),
            .. VisualInputOptions.Options.Where(o => o.Name != "features"),
            PrecisionOption.Spec,
            VisionInt8Option.Spec,
            new("out", "FILE", "the features file (.safetensors); FILE.progress marks an unfinished one", Required: true),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        var err = Console.Error;
        string outPath = a.Required("out");
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        VisualInputOptions.CheckExclusive(a);
        if (!VisualInputOptions.HasVisual(a)) throw new UsageError("encode: give --video, --image or --pixels");
        var precision = PrecisionOption.Parse(a);
        PrecisionOption.Warn(precision, err);

        string dir = ModelArgument.Resolve(a.Required("model"));
        using var model = ModelDirectory.Open(dir);
        var processor = new SlowFastProcessor(model.Config);
        var input = VisualInputOptions.Parse(a, processor)!;
        var vision = new VisionEncoder(model);
        vision.Tower.MlpInt8 = VisionInt8Option.Parse(a, err);
        using var frames = processor.Open(input, cancel.Token);
        var plan = VisualTokenPlan.For(model.Config, frames.FrameCount);
        string media = processor.MediaKey(input, cancel.Token).Text + $"precision={MatMul.EffectiveName(precision)}\n" +
            (vision.Tower.MlpInt8 && MatMul.Int8ChannelsSupported ? "vision_int8=1\n" : "");
        using var file = FeatureFile.OpenForWriting(outPath, model.Config, frames.FrameCount, CheckpointFingerprint.Of(dir), media);
        if (file.FramesWritten > 0)
            err.WriteLine($"resume    {file.FramesWritten} of {frames.FrameCount} frames already in {outPath}");

        var chw = new float[frames.FrameLength];
        var slow = new float[plan.SlowTokensPerFrame * model.Config.HiddenSize];
        // Frames already written are decoded again (cheap) but not encoded.
        for (int f = 0; f < file.FramesWritten; f++) frames.ReadNext(chw);
        var clock = Stopwatch.StartNew();
        int start = file.FramesWritten;
        while (!file.Complete)
        {
            cancel.Token.ThrowIfCancellationRequested();
            frames.ReadNext(chw);
            vision.EncodeSlowFrame(plan, chw, slow, precision, cancel.Token);
            file.WriteFrame(slow);
            if (!Console.IsErrorRedirected) err.Write($"\rvision    {file.FramesWritten}/{frames.FrameCount} frames");
        }
        if (!Console.IsErrorRedirected) err.Write("\r");
        string packing = vision.Tower.PackingTime > TimeSpan.Zero ? $", packing the tower's matrices once {vision.Tower.PackingTime.TotalSeconds:F2} s" : "";
        err.WriteLine($"vision    {file.FramesWritten - start} frame(s) encoded in {clock.Elapsed.TotalSeconds:F2} s (decoding {frames.DecodeTime.TotalSeconds:F2} s of it{packing}); " +
            $"{plan.SlowTokens} slow tokens ({plan.SlowTokensPerFrame} a frame), {plan.FastTokens} fast tokens when read");
        err.WriteLine($"wrote     {outPath}");
        return 0;
    }
}
