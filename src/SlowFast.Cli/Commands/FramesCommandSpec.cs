using SlowFast.Model;

namespace SlowFast.Cli.Commands;

/// <summary>Argument parsing for <c>slowfast frames</c>; the work is in <see cref="FramesCommand"/>.</summary>
public static class FramesCommandSpec
{
    public static readonly CommandSpec Spec = new("frames",
        "Decode, sample and preprocess a video (or image) exactly as the model sees it; write a pixels file.",
        [
            new("video", "FILE", "input video, or a still image (JPEG, PNG, WebP) as one frame, prepared as `ask --image` prepares it", Required: true),
            new("model", "DIR|ID", "take the input size, frame count and image aspect mode from this checkpoint's config.json " +
                "(default: the released checkpoints' settings: 576 px, 64 frames, images padded to square)"),
            new("frames", "N", "frames to sample (the cap for --sampling fps; default: the model's)"),
            new("size", "S", "square input size of the vision tower (default: the model's)"),
            new("out", "FILE", "pixels file to write (.safetensors: pixel_values [T,3,S,S], frame_indices, timestamps)", Required: true),
            new("sampling", "MODE", "uniform (indices floor(linspace(0, total-1, N))) or fps", "uniform"),
            new("fps", "RATE", "target frame rate for --sampling fps", "1"),
            new("start", "SECONDS", "only frames from this time"),
            new("end", "SECONDS", "only frames up to this time"),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        int? frames = a.IntOrNull("frames", 1, 10_000), size = a.IntOrNull("size", 1, 4096);
        double? fps = a.Has("fps") ? a.Double("fps", 0.001, 1000) : null;
        var start = a.DoubleOrNull("start", 0);
        var end = a.DoubleOrNull("end", 0);
        // Only config.json is read: the weights are not needed to know how the model sees its input.
        var processor = a.Has("model")
            ? new SlowFastProcessor(SlowFastConfig.Load(Path.Combine(ModelArgument.Resolve(a.Required("model")), "config.json")))
            : SlowFastProcessor.Released;
        return FramesCommand.Run(a.Required("video"), processor, frames, size, a.Required("out"), a.Required("sampling"), fps, start, end, Console.Error);
    }
}
