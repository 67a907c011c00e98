namespace SlowFast.Cli.Commands;

/// <summary>Argument parsing for <c>slowfast frames</c>; the work is in <see cref="FramesCommand"/>.</summary>
public static class FramesCommandSpec
{
    public static readonly CommandSpec Spec = new("frames",
        "Decode, sample and preprocess a video (or image) exactly as the model sees it; write a pixels file.",
        [
            new("video", "FILE", "input video, or a still image (JPEG, PNG, WebP) as one frame", Required: true),
            new("frames", "N", "frames to sample (the cap for --sampling fps)", "64"),
            new("size", "S", "square input size of the vision tower", "576"),
            new("out", "FILE", "pixels file to write (.safetensors: pixel_values [T,3,S,S], frame_indices, timestamps)", Required: true),
            new("sampling", "MODE", "uniform (indices floor(linspace(0, total-1, N))) or fps", "uniform"),
            new("fps", "RATE", "target frame rate for --sampling fps", "1"),
            new("start", "SECONDS", "only frames from this time"),
            new("end", "SECONDS", "only frames up to this time"),
        ],
        Run);

    private static int Run(ParsedArgs a) => FramesCommand.Run(
        a.Required("video"), a.Int("frames", 1, 10_000), a.Int("size", 1, 4096), a.Required("out"),
        a.Required("sampling"), a.Has("fps") ? a.Double("fps", 0.001, 1000) : null,
        a.DoubleOrNull("start", 0), a.DoubleOrNull("end", 0), Console.Error);
}
