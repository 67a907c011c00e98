using System.Text;
using System.Text.Json;

namespace SlowFast.Tensors.IO;

/// <summary>What a tensor will be: name, element type and shape (its bytes come later).</summary>
public sealed record TensorSpec(string Name, DType DType, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => ElementCount * DType.SizeOf();
}

/// <summary>
/// Writes safetensors files tensor by tensor, so a caller can produce each tensor's bytes on demand
/// and never hold a whole checkpoint in memory. Files are written under a temporary name and renamed
/// into place once complete, so an interrupted write never leaves a file that looks whole.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes <paramref name="specs"/> in order; <paramref name="writeTensor"/> must write exactly
    /// <see cref="TensorSpec.ByteLength"/> bytes of the tensor to the stream it is given.
    /// </summary>
    public static void Write(string path, IReadOnlyList<TensorSpec> specs, Action<TensorSpec, Stream> writeTensor,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        byte[] header = BuildHeader(specs, metadata);
        string tmp = path + ".partial";
        try
        {
            // Whole aligned pieces, so the file is cached in huge pages for the process that maps it next.
            using (var file = new HugePageAlignedWriter(new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0)))
            {
                Span<byte> len = stackalloc byte[8];
                BitConverter.TryWriteBytes(len, (ulong)header.Length);
                file.Write(len);
                file.Write(header);
                var counting = new CountingStream(file);
                foreach (var spec in specs)
                {
                    long before = counting.Written;
                    writeTensor(spec, counting);
                    long wrote = counting.Written - before;
                    if (wrote != spec.ByteLength)
                        throw new InvalidOperationException($"tensor '{spec.Name}': writer produced {wrote} bytes, expected {spec.ByteLength}");
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Writes tensors whose bytes are already in memory.</summary>
    public static void Write(string path, IEnumerable<(TensorSpec Spec, byte[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var byName = list.ToDictionary(t => t.Spec.Name, t => t.Data);
        Write(path, list.Select(t => t.Spec).ToList(), (spec, s) => s.Write(byName[spec.Name]), metadata);
    }

    /// <summary>The JSON header, padded with spaces to a multiple of 8 bytes as the reference writer does.</summary>
    public static byte[] BuildHeader(IReadOnlyList<TensorSpec> specs, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            var names = new HashSet<string>();
            foreach (var s in specs)
            {
                if (!names.Add(s.Name)) throw new ArgumentException($"tensor '{s.Name}' appears twice");
                w.WriteStartObject(s.Name);
                w.WriteString("dtype", s.DType.ToSafetensorsName());
                w.WriteStartArray("shape");
                foreach (var d in s.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + s.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += s.ByteLength;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - ms.Length % 8) % 8);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) { inner.Write(buffer, offset, count); Written += count; }
        public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Written += buffer.Length; }
    }
}

/// <summary>Float32 values encoded into a stored dtype.</summary>
public static class TensorEncoding
{
    public static void Encode(ReadOnlySpan<float> src, DType dtype, Span<byte> dst)
    {
        switch (dtype)
        {
            case DType.F32:
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(src).CopyTo(dst);
                break;
            case DType.BF16:
                for (int i = 0; i < src.Length; i++)
                    BitConverter.TryWriteBytes(dst.Slice(2 * i, 2), DTypes.FloatToBF16(src[i]));
                break;
            case DType.F16:
                for (int i = 0; i < src.Length; i++)
                    BitConverter.TryWriteBytes(dst.Slice(2 * i, 2), (Half)src[i]);
                break;
            default:
                throw new ArgumentException($"cannot encode floats as {dtype}");
        }
    }

    public static byte[] Encode(ReadOnlySpan<float> src, DType dtype)
    {
        var b = new byte[src.Length * dtype.SizeOf()];
        Encode(src, dtype, b);
        return b;
    }
}

/// <summary>
/// Writes a checkpoint's weights as Hugging Face does: one <c>model.safetensors</c>, or, above
/// <c>maxShardBytes</c>, shards <c>model-0000i-of-0000n.safetensors</c> plus
/// <c>model.safetensors.index.json</c> mapping each tensor to its shard.
/// </summary>
public static class CheckpointWriter
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    public static IReadOnlyList<string> Write(string dir, IReadOnlyList<TensorSpec> specs, Action<TensorSpec, Stream> writeTensor,
        long maxShardBytes = 5_000_000_000, Action<string>? onShardWritten = null)
    {
        Directory.CreateDirectory(dir);
        var shards = new List<List<TensorSpec>> { new() };
        long cur = 0;
        foreach (var s in specs)
        {
            if (cur > 0 && cur + s.ByteLength > maxShardBytes)
            {
                shards.Add(new());
                cur = 0;
            }
            shards[^1].Add(s);
            cur += s.ByteLength;
        }
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (shards.Count == 1)
        {
            string path = System.IO.Path.Combine(dir, SingleFileName);
            SafetensorsWriter.Write(path, shards[0], writeTensor, metadata);
            onShardWritten?.Invoke(path);
            return [path];
        }
        var files = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            string path = System.IO.Path.Combine(dir, name);
            SafetensorsWriter.Write(path, shards[i], writeTensor, metadata);
            foreach (var s in shards[i]) weightMap[s.Name] = name;
            files.Add(path);
            onShardWritten?.Invoke(path);
        }
        var index = new
        {
            metadata = new { total_size = specs.Sum(s => s.ByteLength) },
            weight_map = weightMap,
        };
        string indexPath = System.IO.Path.Combine(dir, IndexFileName);
        File.WriteAllText(indexPath + ".partial", JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }), new UTF8Encoding(false));
        File.Move(indexPath + ".partial", indexPath, overwrite: true);
        files.Add(indexPath);
        return files;
    }
}
