using System.Globalization;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Model.Caching;

/// <summary>
/// A video's visual tokens saved by <c>slowfast encode</c> and read back by <c>--features</c>: one
/// safetensors file holding the slow tokens [frames × SlowTokensPerFrame, hidden] in BF16 (half the
/// bytes of float32; the fast tokens are pooled from them when the file is read, as the vision
/// encoder does), with the frame count, the checkpoint's fingerprint and the media description in its
/// metadata.
/// </summary>
/// <remarks>
/// Written frame by frame and resumable: the header (sized for every frame) is written first, then
/// each frame's tokens in place; <c>FILE.progress</c> holds the number of frames written and flushed.
/// A run that stops leaves both; the next run with the same video, options and checkpoint continues
/// after the last complete frame. The file is complete when the progress file is gone.
/// </remarks>
public sealed class FeatureFile : IDisposable
{
    public const string Format = "slowfast-visual-tokens/1";
    public const string TensorName = "slow_tokens";

    private readonly FileStream _stream;
    private readonly long _dataStart;
    private readonly string _progressPath;
    private readonly byte[] _frameBytes;

    public string Path { get; }
    public VisualTokenPlan Plan { get; }
    public int Hidden { get; }
    /// <summary>Frames already in the file (read back when resuming).</summary>
    public int FramesWritten { get; private set; }
    public bool Complete => FramesWritten == Plan.Frames;

    private FeatureFile(string path, FileStream stream, long dataStart, VisualTokenPlan plan, int hidden, int framesWritten)
    {
        Path = path;
        _stream = stream;
        _dataStart = dataStart;
        _progressPath = path + ".progress";
        Plan = plan;
        Hidden = hidden;
        FramesWritten = framesWritten;
        _frameBytes = new byte[(long)plan.SlowTokensPerFrame * hidden * 2];
    }

    private static Dictionary<string, string> Metadata(SlowFastConfig config, VisualTokenPlan plan, string checkpoint, string media) => new()
    {
        ["format"] = Format,
        ["frames"] = plan.Frames.ToString(CultureInfo.InvariantCulture),
        ["slow_tokens_per_frame"] = plan.SlowTokensPerFrame.ToString(CultureInfo.InvariantCulture),
        ["hidden_size"] = config.HiddenSize.ToString(CultureInfo.InvariantCulture),
        ["checkpoint"] = checkpoint,
        ["media"] = media,
    };

    /// <summary>
    /// Opens <paramref name="path"/> for writing a video's tokens: a new file, or — when a progress file
    /// shows an interrupted run with the same metadata — the existing one, to continue after its last
    /// complete frame. A complete file with the same metadata is opened with every frame written.
    /// </summary>
    /// <param name="checkpoint">The checkpoint's fingerprint (<see cref="CheckpointFingerprint"/>).</param>
    /// <param name="media">What the tokens are of: the media key text (file hash, sampling options) and the arithmetic.</param>
    public static FeatureFile OpenForWriting(string path, SlowFastConfig config, int frames, string checkpoint, string media)
    {
        var plan = VisualTokenPlan.For(config, frames);
        var metadata = Metadata(config, plan, checkpoint, media);
        var spec = new TensorSpec(TensorName, DType.BF16, [plan.SlowTokens, config.HiddenSize]);
        byte[] header = SafetensorsWriter.BuildHeader([spec], metadata);
        long dataStart = 8 + header.Length;
        string progressPath = path + ".progress";

        if (File.Exists(path) && SameHeader(path, header))
        {
            int done = File.Exists(progressPath) ? ReadProgress(progressPath, frames) : frames;
            var existing = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            if (existing.Length == dataStart + spec.ByteLength) return new FeatureFile(path, existing, dataStart, plan, config.HiddenSize, done);
            existing.Dispose();
        }
        try
        {
            var stream = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
            stream.Write(BitConverter.GetBytes((ulong)header.Length));
            stream.Write(header);
            stream.SetLength(dataStart + spec.ByteLength);
            stream.Flush(flushToDisk: true);
            File.WriteAllText(progressPath, "0");
            return new FeatureFile(path, stream, dataStart, plan, config.HiddenSize, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{path}: cannot write ({e.Message})");
        }
    }

    /// <summary>Writes the next frame's slow tokens [SlowTokensPerFrame, hidden], then records it as done.</summary>
    public void WriteFrame(ReadOnlySpan<float> slow)
    {
        if (Complete) throw new InvalidOperationException("every frame is written");
        TensorEncoding.Encode(slow, DType.BF16, _frameBytes);
        _stream.Position = _dataStart + (long)FramesWritten * _frameBytes.Length;
        _stream.Write(_frameBytes);
        _stream.Flush(flushToDisk: true);
        FramesWritten++;
        if (Complete) File.Delete(_progressPath);
        else File.WriteAllText(_progressPath, FramesWritten.ToString(CultureInfo.InvariantCulture));
    }

    public void Dispose() => _stream.Dispose();

    private static bool SameHeader(string path, byte[] header)
    {
        try
        {
            using var f = File.OpenRead(path);
            var lengthBytes = new byte[8];
            if (f.Read(lengthBytes) != 8 || BitConverter.ToUInt64(lengthBytes) != (ulong)header.Length) return false;
            var existing = new byte[header.Length];
            return f.Read(existing) == header.Length && existing.AsSpan().SequenceEqual(header);
        }
        catch (IOException) { return false; }
    }

    private static int ReadProgress(string path, int frames) =>
        int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 0 && n <= frames ? n : 0;

    /// <summary>
    /// Reads a complete file as visual tokens for <paramref name="config"/>'s model: the slow tokens
    /// widened to float32, the fast tokens pooled from them. A file of another checkpoint (other
    /// fingerprint), another hidden size, or an unfinished one is refused with a one-line error.
    /// </summary>
    public static VisualTokens Read(string path, SlowFastConfig config, string checkpoint)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        if (File.Exists(path + ".progress"))
            throw new UserError($"{path}: unfinished (run `slowfast encode` again with the same arguments to complete it)");
        using var file = SafetensorsFile.Open(path);
        string Meta(string key) => file.Metadata.TryGetValue(key, out var v) ? v : throw new UserError($"{path}: not a `slowfast encode` features file (no {key})");
        if (Meta("format") != Format) throw new UserError($"{path}: format '{Meta("format")}', expected {Format}");
        if (Meta("checkpoint") != checkpoint)
            throw new UserError($"{path}: these tokens were made by another checkpoint (fingerprint {Meta("checkpoint")[..12]}, this model's {checkpoint[..12]})");
        int frames = int.Parse(Meta("frames"), CultureInfo.InvariantCulture);
        var plan = VisualTokenPlan.For(config, frames);
        if (int.Parse(Meta("hidden_size"), CultureInfo.InvariantCulture) != config.HiddenSize || int.Parse(Meta("slow_tokens_per_frame"), CultureInfo.InvariantCulture) != plan.SlowTokensPerFrame)
            throw new UserError($"{path}: tokens of hidden size {Meta("hidden_size")}, {Meta("slow_tokens_per_frame")} a frame do not fit this model ({config.HiddenSize}, {plan.SlowTokensPerFrame})");
        if (!file.TryGetEntry(TensorName, out var entry) || entry.DType != DType.BF16 || entry.Shape.Length != 2
            || entry.Shape[0] != plan.SlowTokens || entry.Shape[1] != config.HiddenSize)
            throw new UserError($"{path}: no {TensorName} BF16 [{plan.SlowTokens}, {config.HiddenSize}] tensor");
        var slow = file.View(entry).ToFloatArray();
        return VisualTokenBuilder.WithFast(config, plan, slow, config.HiddenSize, null, null);
    }

    /// <summary>The frame count and metadata of a features file, without reading its tokens.</summary>
    public static int FramesOf(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        using var file = SafetensorsFile.Open(path);
        return file.Metadata.TryGetValue("format", out var f) && f == Format && file.Metadata.TryGetValue("frames", out var n)
            && int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out int frames) && frames > 0
            ? frames
            : throw new UserError($"{path}: not a `slowfast encode` features file");
    }
}
