using System.Text;
using System.Text.Json.Nodes;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Model;

/// <summary>
/// Writes a complete checkpoint directory with random weights: config.json, safetensors (sharded
/// above <see cref="DefaultMaxShardBytes"/>, with an index), tokenizer files. Weights are generated
/// tensor by tensor in small chunks from a counter-based hash of (seed, tensor name, element index),
/// so the same seed gives the same bytes on every machine, chunks can be made in parallel, and a
/// 17 GB checkpoint is written without ever holding more than a few MB of it in memory.
/// </summary>
public static class ModelCreator
{
    public const long DefaultMaxShardBytes = 4_000_000_000;
    private const int ChunkElements = 1 << 20;

    public sealed record Options(string OutDir, DType DType, ulong Seed, string TokenizerJson, long MaxShardBytes = DefaultMaxShardBytes);

    public static void Create(SlowFastConfig config, Options o, TextWriter? progress = null)
    {
        if (o.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new UserError($"create-model: dtype {o.DType} is not supported (f32, bf16 or f16)");
        if (File.Exists(o.OutDir)) throw new UserError($"{o.OutDir}: exists and is a file, not a directory");
        Directory.CreateDirectory(o.OutDir);

        config.TorchDtype = o.DType switch { DType.F32 => "float32", DType.BF16 => "bfloat16", _ => "float16" };
        var layout = CheckpointLayout.For(config);
        var byName = layout.ToDictionary(w => w.Name);
        var specs = layout.Select(w => new TensorSpec(w.Name, o.DType, w.Shape)).ToList();
        long total = specs.Sum(s => s.ByteLength), done = 0;
        var started = System.Diagnostics.Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;

        CheckpointWriter.Write(o.OutDir, specs, (spec, stream) =>
        {
            WriteRandom(byName[spec.Name], o.DType, o.Seed, stream);
            done += spec.ByteLength;
            if (progress != null && (started.Elapsed - lastReport).TotalSeconds >= 2)
            {
                lastReport = started.Elapsed;
                progress.WriteLine($"  {done / 1e9:F2} / {total / 1e9:F2} GB written ({done * 100.0 / total:F0}%, {done / 1e6 / started.Elapsed.TotalSeconds:F0} MB/s)");
            }
        }, o.MaxShardBytes, path => progress?.WriteLine($"  wrote {Path.GetFileName(path)}"));

        File.WriteAllText(Path.Combine(o.OutDir, "config.json"), config.ToJson(), new UTF8Encoding(false));
        WriteTokenizerFiles(config, o);
    }

    private static void WriteTokenizerFiles(SlowFastConfig config, Options o)
    {
        File.Copy(o.TokenizerJson, Path.Combine(o.OutDir, "tokenizer.json"), overwrite: true);
        // Qwen2-Instruct's tokenizer settings (no BOS; <|im_end|> ends a turn; <|endoftext|> pads).
        var tokenizerConfig = new JsonObject
        {
            ["tokenizer_class"] = "Qwen2Tokenizer",
            ["bos_token"] = null,
            ["eos_token"] = "<|im_end|>",
            ["pad_token"] = "<|endoftext|>",
            ["unk_token"] = null,
            ["model_max_length"] = config.TokenizerModelMaxLength ?? config.MaxPositionEmbeddings,
            ["padding_side"] = config.TokenizerPaddingSide,
            ["add_prefix_space"] = false,
            ["clean_up_tokenization_spaces"] = false,
            ["errors"] = "replace",
            ["split_special_tokens"] = false,
        };
        File.WriteAllText(Path.Combine(o.OutDir, "tokenizer_config.json"), tokenizerConfig.ToJsonString(new() { WriteIndented = true }), new UTF8Encoding(false));
        var generation = new JsonObject
        {
            ["bos_token_id"] = config.BosTokenId,
            ["eos_token_id"] = new JsonArray(151645, 151643),
            ["pad_token_id"] = 151643,
            ["do_sample"] = false,
        };
        File.WriteAllText(Path.Combine(o.OutDir, "generation_config.json"), generation.ToJsonString(new() { WriteIndented = true }), new UTF8Encoding(false));
    }

    /// <summary>Streams one tensor's random values, generating chunks in parallel and writing them in order.</summary>
    private static void WriteRandom(WeightSpec w, DType dtype, ulong seed, Stream stream)
    {
        long n = w.ElementCount;
        ulong key = Hash(seed ^ StableHash(w.Name));
        var (offset, scale) = Distribution(w);
        int chunks = (int)((n + ChunkElements - 1) / ChunkElements);
        int batch = Math.Max(1, Environment.ProcessorCount * 2);
        int elemSize = dtype.SizeOf();
        var buffers = new byte[Math.Min(batch, chunks)][];
        for (int first = 0; first < chunks; first += batch)
        {
            int count = Math.Min(batch, chunks - first);
            Parallel.For(0, count, j =>
            {
                long start = (long)(first + j) * ChunkElements;
                int len = (int)Math.Min(ChunkElements, n - start);
                var floats = new float[len];
                FillUniform(key, start, offset, scale, floats);
                var bytes = buffers[j] is { } b && b.Length == len * elemSize ? b : new byte[len * elemSize];
                TensorEncoding.Encode(floats, dtype, bytes);
                buffers[j] = bytes;
            });
            for (int j = 0; j < count; j++) stream.Write(buffers[j]);
        }
    }

    /// <summary>
    /// Values are offset + scale × U(-1, 1). Linear layers use PyTorch's default bound 1/sqrt(fan_in);
    /// norms sit near 1 and gates well away from 0, so that a test checkpoint exercises every path
    /// (a real warm-up gate starts at 0, which would hide the cross-attention branch entirely).
    /// </summary>
    private static (float Offset, float Scale) Distribution(WeightSpec w) => w.Init switch
    {
        WeightInit.Linear => (0f, 1f / MathF.Sqrt(w.Shape.Skip(1).Aggregate(1L, (a, b) => a * b))),
        WeightInit.Embedding => (0f, 0.05f),
        WeightInit.Bias => (0f, 0.1f),
        WeightInit.NormWeight => (1f, 0.2f),
        WeightInit.NormBias => (0f, 0.1f),
        WeightInit.LayerScale => (0.2f, 0.1f),
        WeightInit.Gate => (0.5f, 0.3f),
        _ => throw new ArgumentOutOfRangeException(nameof(w)),
    };

    private static void FillUniform(ulong key, long start, float offset, float scale, Span<float> dst)
    {
        const float inv = 1f / (1 << 23);
        for (int i = 0; i < dst.Length; i++)
        {
            ulong h = Hash(key + (ulong)(start + i) * 0x9E3779B97F4A7C15UL);
            float u = (h >> 40) * inv - 1f; // 24 random bits -> [-1, 1)
            dst[i] = offset + scale * u;
        }
    }

    /// <summary>SplitMix64's finalizer: a good 64-bit mixer.</summary>
    private static ulong Hash(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>FNV-1a over the UTF-8 name: stable across runs and platforms (string.GetHashCode is not).</summary>
    private static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(s)) { h ^= b; h *= 1099511628211UL; }
        return h;
    }
}
