using System.Globalization;
using SlowFast.Media;
using SlowFast.Model;

namespace SlowFast.Cli.Commands;

/// <summary>
/// `slowfast frames`: sample and preprocess a video or image exactly as the model will see it and
/// write the pixels file (see <see cref="PixelsFile"/>). Argument parsing belongs to the CLI; this
/// takes parsed values.
/// </summary>
public static class FramesCommand
{
    /// <param name="video">Input video or image file.</param>
    /// <param name="processor">The model's media settings (size, frame count, how images and frames become square).</param>
    /// <param name="frames">Frames to sample (the cap for fps sampling); null: the processor's default.</param>
    /// <param name="size">Square input size; null: the processor's (576 for ConvNeXt-XXL).</param>
    /// <param name="outPath">The .safetensors file to write.</param>
    /// <param name="sampling">"uniform" (default) or "fps".</param>
    /// <param name="fps">Target rate for fps sampling (default 1, the reference reader's default).</param>
    /// <param name="start">Only frames from this many seconds.</param>
    /// <param name="end">Only frames up to this many seconds.</param>
    /// <returns>0 on success, 1 after printing a one-line error.</returns>
    public static int Run(string video, SlowFastProcessor processor, int? frames, int? size, string outPath, string sampling, double? fps, double? start, double? end, TextWriter stderr)
    {
        try
        {
            var mode = (sampling ?? "uniform").ToLowerInvariant() switch
            {
                "" or "uniform" => SamplingMode.Uniform,
                "fps" => SamplingMode.Fps,
                _ => throw new UserError($"unknown sampling '{sampling}' (expected uniform or fps)"),
            };
            if (fps is not null && mode != SamplingMode.Fps) throw new UserError("--fps applies to --sampling fps only");
            if (size is < 1 or > 4096) throw new UserError($"size must be 1..4096 (got {size})");
            if (string.IsNullOrWhiteSpace(outPath)) throw new UserError("--out is required");
            // The model's options (as `ask` uses them, a still image included), then what was asked.
            var options = processor.VideoOptionsFor(frames) with
            {
                Size = size ?? processor.ImageSize,
                Sampling = mode,
                TargetFps = fps ?? 1,
                Start = start,
                End = end,
            };
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var input = MediaLoader.LoadVideo(video, options);
            PixelsFile.Write(outPath, input);
            var inv = CultureInfo.InvariantCulture;
            string source = input.SamplingName == "image"
                ? "still image"
                : string.Format(inv, "{0} sampling over {1} frames, {2:0.###} fps, {3:0.###} s", input.SamplingName, input.TotalFrames, input.FrameRate, input.Duration);
            stderr.WriteLine(string.Format(inv, "wrote {0}: pixel_values [{1}, 3, {2}, {2}] from {3} ({4}) in {5:0.00} s",
                outPath, input.FrameCount, input.Size, video, source, watch.Elapsed.TotalSeconds));
            if (input.TimeInstruction.Length > 0) stderr.WriteLine(input.TimeInstruction);
            return 0;
        }
        catch (UserError e)
        {
            stderr.WriteLine($"slowfast frames: {e.Message}");
            return 1;
        }
    }
}
