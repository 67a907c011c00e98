using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using SlowFast.Media;

namespace SlowFast.Model;

/// <summary>Where the pixels of a visual input come from.</summary>
public enum VisualInputKind
{
    /// <summary>A video file, sampled and preprocessed (a still image given as a video is prepared like an image).</summary>
    Video,
    /// <summary>A still image: one frame.</summary>
    Image,
    /// <summary>A pixels file written by <c>slowfast frames</c> (<see cref="PixelsFile"/>): used as it is.</summary>
    Pixels,
    /// <summary>Several still images, the frames of one video in order (<see cref="VisualInput.FramePaths"/>), each prepared as a video frame.</summary>
    Frames,
}

/// <summary>
/// A visual input chosen but not yet decoded: the file, how it will be read and how many frames it
/// will give (for a video with fps sampling, the cap).
/// </summary>
/// <param name="FramePaths">For <see cref="VisualInputKind.Frames"/>: every image, in order (<paramref name="Path"/> is the first).</param>
public sealed record VisualInput(VisualInputKind Kind, string Path, int Frames, VideoOptions Options, IReadOnlyList<string>? FramePaths = null);

/// <summary>
/// The media part of a video-feature cache key: the file's SHA-256 and every option that changes
/// the pixels, as canonical "name=value" lines (<see cref="Text"/>).
/// </summary>
public sealed record MediaKey(string ContentSha256, string Text);

/// <summary>
/// The model's media processor, like a Hugging Face processor: built from a checkpoint's config, it
/// turns a video, an image or a pixels file into the pixel values the vision tower takes, with that
/// checkpoint's settings — input size (vision image_size), default frame count
/// (mm_training_video_frames, else 64), and how a non-square picture becomes square
/// (image_aspect_ratio "pad" pads images; video frames are always resized and centre-cropped, as the
/// reference's video path does).
/// </summary>
public sealed class SlowFastProcessor
{
    /// <summary>Frames sampled from a video when neither the caller nor the config says.</summary>
    public const int FallbackFrames = 64;

    /// <summary>Square input size of the vision tower, in pixels.</summary>
    public int ImageSize { get; }
    /// <summary>Frames sampled from a video by default.</summary>
    public int DefaultFrames { get; }
    /// <summary>How a still image becomes square (the config's image_aspect_ratio).</summary>
    public AspectMode ImageAspect { get; }
    /// <summary>How a video frame becomes square: the CLIP processor's resize and centre crop, whatever the config says.</summary>
    public AspectMode VideoAspect => AspectMode.Crop;

    public SlowFastProcessor(SlowFastConfig config)
    {
        ImageSize = config.Vision.ImageSize;
        DefaultFrames = config.MmTrainingVideoFrames ?? FallbackFrames;
        ImageAspect = config.ImageAspectRatio == "pad" ? AspectMode.Pad : AspectMode.Crop;
    }

    /// <summary>The released checkpoints' processor (576 px, 64 frames, padded images): the settings without a model.</summary>
    public static SlowFastProcessor Released { get; } = new(Presets.SevenB());

    /// <summary>Sampling and preprocessing options with this model's settings; <paramref name="frames"/> null: the default count.</summary>
    public VideoOptions VideoOptionsFor(int? frames = null) => new()
    {
        Frames = frames ?? DefaultFrames,
        Size = ImageSize,
        Aspect = VideoAspect,
        ImageAspect = ImageAspect,
    };

    // ------------------------------------------------------------------ choosing an input (no decoding)

    /// <summary>A video input with this model's settings (or <paramref name="options"/>, e.g. fps sampling or a time range).</summary>
    public VisualInput Video(string path, int? frames = null, VideoOptions? options = null)
    {
        RequireFile(path);
        options ??= VideoOptionsFor(frames);
        if (options.Frames < 1 || options.Frames > Media.VideoOptions.MaxFrames)
            throw new UserError($"frames must be 1..{Media.VideoOptions.MaxFrames} (got {options.Frames})");
        return new VisualInput(VisualInputKind.Video, path, options.Frames, options);
    }

    /// <summary>A still image: one frame, made square the model's way for images.</summary>
    public VisualInput Image(string path)
    {
        RequireFile(path);
        return new VisualInput(VisualInputKind.Image, path, 1, VideoOptionsFor(1) with { Aspect = ImageAspect });
    }

    /// <summary>
    /// Several still images as the frames of one video, as the reference's evaluation wrapper stacks a
    /// sample's images: each made square as a video frame is (resize and centre crop).
    /// </summary>
    public VisualInput Frames(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw new UserError("no images given");
        if (paths.Count > Media.VideoOptions.MaxFrames) throw new UserError($"{paths.Count} images; at most {Media.VideoOptions.MaxFrames} frames");
        foreach (var p in paths) RequireFile(p);
        return new VisualInput(VisualInputKind.Frames, paths[0], paths.Count, VideoOptionsFor(paths.Count) with { Aspect = VideoAspect }, paths.ToArray());
    }

    /// <summary>A pixels file; its frame count is read from the header (the file is only mapped).</summary>
    public VisualInput Pixels(string path)
    {
        RequireFile(path);
        using var file = Tensors.IO.SafetensorsFile.Open(path);
        if (!file.TryGetEntry("pixel_values", out var e) || e.Shape.Length != 4)
            throw new UserError($"{path}: no pixel_values [T, 3, S, S] tensor (make one with `slowfast frames`)");
        return new VisualInput(VisualInputKind.Pixels, path, (int)Math.Min(int.MaxValue, e.Shape[0]), VideoOptionsFor());
    }

    // ------------------------------------------------------------------ loading

    /// <summary>Decodes and preprocesses <paramref name="input"/>; the frames are checked to be the tower's size.</summary>
    public VideoInput Load(VisualInput input, CancellationToken cancel = default)
    {
        if (input.Kind == VisualInputKind.Frames)
            throw new InvalidOperationException("several images are read frame by frame: use Open");
        var pixels = input.Kind switch
        {
            VisualInputKind.Video => MediaLoader.LoadVideo(input.Path, input.Options, cancel),
            VisualInputKind.Image => MediaLoader.LoadImage(input.Path, input.Options.Size, input.Options.Aspect, input.Options.Limits, cancel),
            _ => PixelsFile.Read(input.Path),
        };
        if (pixels.Size != ImageSize)
            throw new UserError($"{input.Path}: frames are {pixels.Size}x{pixels.Size} but the model's vision tower takes {ImageSize}x{ImageSize}");
        return pixels;
    }

    /// <summary>
    /// The input's frames one at a time (<see cref="FrameStream"/>): a video is decoded and preprocessed
    /// frame by frame as they are read, so its pixels are never all in memory. Dispose it when done.
    /// </summary>
    public FrameStream Open(VisualInput input, CancellationToken cancel = default)
    {
        var stream = input.Kind switch
        {
            VisualInputKind.Video => FrameStream.OpenVideo(input.Path, input.Options, cancel),
            VisualInputKind.Frames => FrameStream.FromImages(input.FramePaths!, input.Options, cancel),
            _ => FrameStream.FromPixels(Load(input, cancel)),
        };
        if (stream.Size != ImageSize)
        {
            stream.Dispose();
            throw new UserError($"{input.Path}: frames are {stream.Size}x{stream.Size} but the model's vision tower takes {ImageSize}x{ImageSize}");
        }
        return stream;
    }

    /// <summary>A video (or a still image as one frame) decoded with this model's settings.</summary>
    public VideoInput LoadVideo(string path, int? frames = null, CancellationToken cancel = default) => Load(Video(path, frames), cancel);

    /// <summary>A still image as one frame with this model's settings.</summary>
    public VideoInput LoadImage(string path, CancellationToken cancel = default) => Load(Image(path), cancel);

    // ------------------------------------------------------------------ cache key

    /// <summary>
    /// The media part of a feature-cache key: SHA-256 of the file's bytes (the file is read once; nothing
    /// is decoded) and the options that change the pixels. The decoding strategy and limits are left
    /// out: they change how fast the pixels come, not what they are.
    /// </summary>
    public MediaKey MediaKey(VisualInput input, CancellationToken cancel = default)
    {
        string sha = input.Kind == VisualInputKind.Frames
            ? HashFiles(input.FramePaths!, cancel)
            : HashFile(input.Path, cancel);
        var o = input.Options;
        var text = new StringBuilder();
        void Line(string name, object value) => text.Append(name).Append('=').Append(Convert.ToString(value, CultureInfo.InvariantCulture)).Append('\n');
        Line("media.sha256", sha);
        Line("media.kind", input.Kind.ToString().ToLowerInvariant());
        if (input.Kind != VisualInputKind.Pixels) // a pixels file is its own pixels
        {
            Line("media.size", o.Size);
            Line("media.aspect", o.Aspect.ToString().ToLowerInvariant());
        }
        if (input.Kind == VisualInputKind.Frames) Line("media.frames", o.Frames);
        if (input.Kind == VisualInputKind.Video)
        {
            Line("media.image_aspect", (o.ImageAspect ?? o.Aspect).ToString().ToLowerInvariant());
            Line("media.frames", o.Frames);
            Line("media.sampling", o.Sampling.ToString().ToLowerInvariant());
            if (o.Sampling == SamplingMode.Fps) Line("media.target_fps", o.TargetFps.ToString("R", CultureInfo.InvariantCulture));
            if (o.Start is { } start) Line("media.start", start.ToString("R", CultureInfo.InvariantCulture));
            if (o.End is { } end) Line("media.end", end.ToString("R", CultureInfo.InvariantCulture));
        }
        return new MediaKey(sha, text.ToString());
    }

    /// <summary>SHA-256 over several files: each file's length and bytes, in order.</summary>
    private static string HashFiles(IReadOnlyList<string> paths, CancellationToken cancel)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in paths)
        {
            sha.AppendData(BitConverter.GetBytes(new FileInfo(p).Length));
            sha.AppendData(Convert.FromHexString(HashFile(p, cancel)));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Lower-case hex SHA-256 of a file's bytes.</summary>
    public static string HashFile(string path, CancellationToken cancel = default)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 20];
            int read;
            while ((read = stream.Read(buffer)) > 0)
            {
                cancel.ThrowIfCancellationRequested();
                sha.AppendData(buffer, 0, read);
            }
            return Convert.ToHexStringLower(sha.GetHashAndReset());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{path}: cannot read ({e.Message})");
        }
    }

    private static void RequireFile(string path)
    {
        if (Directory.Exists(path)) throw new UserError($"{path}: is a directory, not a media file");
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
    }
}
