using System.Security.Cryptography;
using System.Text;
using SlowFast.Media;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Caching;

/// <summary>
/// What a video's visual tokens depend on, as canonical "name=value" lines (<see cref="Text"/>) and
/// their SHA-256 (<see cref="Digest"/>, the cache file's name): the media (file content and every
/// option that changes the pixels, <see cref="MediaKey"/>), the checkpoint
/// (<see cref="CheckpointFingerprint"/>), the matrix-product arithmetic the machine really uses
/// (<see cref="MatMul.Effective"/>), and the code that computes them.
/// </summary>
public sealed record VideoFeatureKey(string Digest, string Text)
{
    /// <summary>The cache file format; a new layout of the file gets a new tag.</summary>
    public const string Format = "slowfast-features/1";

    /// <summary>The first 12 hex digits of <see cref="Digest"/>, for messages.</summary>
    public string ShortDigest => Digest[..12];

    /// <summary>
    /// The code that turns pixels into visual tokens and files into pixels: the module version ids of
    /// the model, tensor and media assemblies. The build is deterministic, so an id is a hash of the
    /// compiled code: the same build shares its entries, and a changed kernel or preprocessor (which
    /// may compute other values) never reads features an older one wrote.
    /// </summary>
    public static string EngineIdentity { get; } = string.Join(",",
        new[] { typeof(VisionEncoder), typeof(MatMul), typeof(MediaLoader) }.Select(t => t.Assembly.ManifestModule.ModuleVersionId.ToString("N")));

    /// <summary>
    /// The key of <paramref name="media"/> encoded by the checkpoint with <paramref name="checkpointFingerprint"/> at
    /// <paramref name="precision"/>, with the tower's MLPs in int8 when <paramref name="visionInt8"/> (as it runs on this CPU).
    /// </summary>
    public static VideoFeatureKey For(MediaKey media, string checkpointFingerprint, MatMulPrecision precision, bool visionInt8 = false)
    {
        var text = new StringBuilder()
            .Append("format=").Append(Format).Append('\n')
            .Append("engine=").Append(EngineIdentity).Append('\n')
            .Append("checkpoint=").Append(checkpointFingerprint).Append('\n')
            // The arithmetic actually used: bf16 asked on a CPU without AVX512-BF16 computes float32.
            .Append("precision=").Append(MatMul.EffectiveName(precision)).Append('\n')
            // Only when on, so that every key written before this option existed still reads.
            .Append(visionInt8 && MatMul.Int8ChannelsSupported ? "vision_int8=1\n" : "")
            .Append(media.Text);
        string canonical = text.ToString();
        return new VideoFeatureKey(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical))), canonical);
    }

    /// <summary>
    /// The key of <paramref name="media"/> encoded by <paramref name="model"/> in <paramref name="precision"/>
    /// (null: the engine's default, what <c>SlowFastModel.EncodeVideo</c> uses when given none).
    /// </summary>
    public static VideoFeatureKey For(SlowFastModel model, MediaKey media, MatMulPrecision? precision = null) =>
        For(media, CheckpointFingerprint.Of(model), precision ?? model.Engine.Options.DefaultPrecision, model.Engine.Options.VisionInt8);
}
