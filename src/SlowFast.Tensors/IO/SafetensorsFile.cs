using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace SlowFast.Tensors.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record TensorEntry(string Name, DType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => End - Begin;
}

/// <summary>
/// A memory-mapped, validated safetensors file: 8-byte little-endian header length, a JSON header,
/// then the raw tensor bytes. Tensors stay in their stored dtype; nothing is copied at open.
/// Validation: the header fits in the file and is a JSON object; every entry has a known dtype, a
/// non-negative shape and offsets [begin, end) inside the data section; end - begin equals
/// elements × dtype size; no two tensors overlap; no name repeats.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers beyond this are refused (the reference implementation caps them at 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorEntry> _entries;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Entries in the order of their offsets.</summary>
    public IReadOnlyList<TensorEntry> Entries { get; }
    public long FileLength { get; }

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr,
        long fileLength, long dataStart, List<TensorEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePtr;
        FileLength = fileLength;
        _dataStart = dataStart;
        Entries = entries;
        _entries = entries.ToDictionary(e => e.Name);
        Metadata = metadata;
    }

    public static SafetensorsFile Open(string path)
    {
        if (Directory.Exists(path)) throw new UserError($"{path}: is a directory, not a safetensors file");
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        // Open through a stream, not FileInfo: Hugging Face caches hold symbolic links, and the
        // length must be the target's.
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{path}: cannot open: {e.Message}");
        }
        long length = stream.Length;
        if (length < 8)
        {
            stream.Dispose();
            throw new UserError($"{path}: not a safetensors file (only {length} bytes; the 8-byte header length is missing)");
        }
        var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        p += view.PointerOffset;
        // Before the first touch: pages read in from disk then come in 2 MiB folios mapped as huge pages.
        HugePages.Advise(p, length);
        try
        {
            ulong headerLen = *(ulong*)p; // little-endian on every platform .NET supports here
            if (headerLen > (ulong)MaxHeaderBytes)
                throw new UserError($"{path}: safetensors header length {headerLen} is larger than the {MaxHeaderBytes}-byte limit (corrupt file?)");
            if (8 + (long)headerLen > length)
                throw new UserError($"{path}: safetensors header length {headerLen} runs past the end of the {length}-byte file (truncated file?)");
            var headerBytes = new ReadOnlySpan<byte>(p + 8, (int)headerLen);
            long dataStart = 8 + (long)headerLen;
            var (entries, metadata) = ParseHeader(path, headerBytes, length - dataStart);
            return new SafetensorsFile(path, map, view, p, length, dataStart, entries, metadata);
        }
        catch
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>Parses and validates a header against a data section of <paramref name="dataLength"/> bytes.</summary>
    public static (List<TensorEntry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new UserError($"{path}: safetensors header is not valid JSON ({FirstLine(e.Message)})");
        }
        using (doc)
        {
            try { return ReadHeader(path, doc.RootElement, dataLength); }
            catch (InvalidOperationException e)
            {
                // JsonDocument checks text only when it is read: invalid UTF-8, or an escaped lone surrogate.
                throw new UserError($"{path}: safetensors header holds text that is not valid Unicode ({FirstLine(e.Message)})");
            }
        }
    }

    private static (List<TensorEntry> Entries, Dictionary<string, string> Metadata) ReadHeader(string path, JsonElement root, long dataLength)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new UserError($"{path}: safetensors header is not a JSON object");
        var entries = new List<TensorEntry>();
        var metadata = new Dictionary<string, string>();
        var seen = new HashSet<string>();
        foreach (var prop in root.EnumerateObject())
        {
            if (!seen.Add(prop.Name))
                throw new UserError($"{path}: safetensors header names tensor '{prop.Name}' twice");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object)
                    throw new UserError($"{path}: safetensors __metadata__ is not an object");
                foreach (var m in prop.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String)
                        throw new UserError($"{path}: safetensors __metadata__ value '{m.Name}' is not a string");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            entries.Add(ParseEntry(path, prop.Name, prop.Value, dataLength));
        }
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        for (int i = 1; i < entries.Count; i++)
        {
            var prev = entries[i - 1];
            var cur = entries[i];
            if (cur.Begin < prev.End && cur.ByteLength > 0 && prev.ByteLength > 0)
                throw new UserError($"{path}: tensors '{prev.Name}' [{prev.Begin}, {prev.End}) and '{cur.Name}' [{cur.Begin}, {cur.End}) overlap");
        }
        return (entries, metadata);
    }

    private static TensorEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        string Where() => $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw new UserError($"{Where()}: header entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new UserError($"{Where()}: header entry has no dtype");
        if (!DTypes.TryParse(dt.GetString()!, out var dtype))
            throw new UserError($"{Where()}: unknown dtype '{dt.GetString()}'");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new UserError($"{Where()}: header entry has no shape");
        var shape = new long[sh.GetArrayLength()];
        int i = 0;
        long count = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new UserError($"{Where()}: shape has a dimension that is not a non-negative integer");
            shape[i++] = v;
            try { count = checked(count * v); }
            catch (OverflowException) { throw new UserError($"{Where()}: shape [{string.Join(", ", shape)}] is too large"); }
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new UserError($"{Where()}: header entry has no data_offsets [begin, end]");
        if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new UserError($"{Where()}: data_offsets are not 0 <= begin <= end");
        if (end > dataLength)
            throw new UserError($"{Where()}: data_offsets [{begin}, {end}) run past the end of the data ({dataLength} bytes; truncated file?)");
        long expected;
        try { expected = checked(count * dtype.SizeOf()); }
        catch (OverflowException) { throw new UserError($"{Where()}: shape is too large"); }
        if (end - begin != expected)
            throw new UserError($"{Where()}: shape [{string.Join(", ", shape)}] of {dtype} needs {expected} bytes but data_offsets give {end - begin}");
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    public bool Contains(string name) => _entries.ContainsKey(name);

    public bool TryGetEntry(string name, out TensorEntry entry) => _entries.TryGetValue(name, out entry!);

    public TensorView Get(string name)
    {
        if (!_entries.TryGetValue(name, out var e))
            throw new UserError($"{Path}: no tensor named '{name}'");
        return View(e);
    }

    public TensorView View(TensorEntry e) => new(e.Name, _base + _dataStart + e.Begin, e.DType, e.Shape);

    public void Dispose()
    {
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
