using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Model.Caching;

/// <summary>
/// A cheap identity of the part of a checkpoint that video features depend on: SHA-256 over
/// config.json's bytes and, for every vision-tower and projector tensor (by name, in ordinal order),
/// its name, dtype, shape and <see cref="SampleBytes"/> bytes sampled evenly from its stored bytes
/// (all of them for a smaller tensor). The language model's weights do not change the visual tokens
/// and are not read.
/// </summary>
/// <remarks>
/// Hashing the whole 17 GB checkpoint every run is what this avoids: it reads a few KiB a tensor
/// (about 2 MB for the 7b vision tower). Two checkpoints that differ only in weights the samples
/// miss would get the same identity; random-weight checkpoints of different seeds, re-exports in
/// another dtype and fine-tuned towers differ in every sample.
/// </remarks>
public static class CheckpointFingerprint
{
    /// <summary>Bytes hashed from each tensor larger than this: <see cref="SampleChunks"/> chunks spread evenly over it.</summary>
    public const int SampleBytes = 4096;
    public const int SampleChunks = 8;

    private static readonly ConditionalWeakTable<SlowFastModel, string> OfLoadedModel = new();

    /// <summary>The fingerprint of a loaded model's checkpoint, computed once per model instance.</summary>
    public static string Of(SlowFastModel model) => OfLoadedModel.GetValue(model, m => Of(m.Path));

    /// <summary>Lower-case hex SHA-256 fingerprint of the checkpoint directory <paramref name="modelDir"/>.</summary>
    public static unsafe string Of(string modelDir)
    {
        string configPath = Path.Combine(modelDir, "config.json");
        byte[] config;
        try { config = File.ReadAllBytes(configPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{configPath}: cannot read ({e.Message})");
        }
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendField(sha, "config.json");
        AppendField(sha, config);

        using var weights = SafetensorsCheckpoint.Open(modelDir);
        var visual = weights.Entries
            .Where(e => ModelDirectory.PartOf(e.Name) is ModelPart.VisionTower or ModelPart.Projector)
            .OrderBy(e => e.Name, StringComparer.Ordinal);
        foreach (var entry in visual)
        {
            AppendField(sha, entry.Name);
            AppendField(sha, entry.DType.ToSafetensorsName());
            AppendField(sha, string.Join(",", entry.Shape));
            var view = weights.Get(entry.Name);
            long length = entry.ByteLength;
            if (length <= SampleBytes)
            {
                sha.AppendData(new ReadOnlySpan<byte>(view.Data, (int)length));
                continue;
            }
            const int chunk = SampleBytes / SampleChunks;
            for (int i = 0; i < SampleChunks; i++)
            {
                // Chunk i starts at i/(n-1) of the way: the first and last bytes are always sampled.
                long offset = (length - chunk) * i / (SampleChunks - 1);
                sha.AppendData(new ReadOnlySpan<byte>(view.Data + offset, chunk));
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Length-prefixed, so no two different sequences of fields hash the same bytes.</summary>
    private static void AppendField(IncrementalHash sha, string value) => AppendField(sha, Encoding.UTF8.GetBytes(value));

    private static void AppendField(IncrementalHash sha, ReadOnlySpan<byte> value)
    {
        Span<byte> length = stackalloc byte[8];
        BitConverter.TryWriteBytes(length, (long)value.Length);
        sha.AppendData(length);
        sha.AppendData(value);
    }
}
