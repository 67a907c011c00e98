using System.Text.Json;

namespace SlowFast.Tensors.IO;

/// <summary>
/// All the weights of a checkpoint directory: <c>model.safetensors.index.json</c> with its shards, or a
/// single <c>model.safetensors</c>, or (as some exports have) every <c>*.safetensors</c> file in the
/// directory. Every tensor stays memory-mapped in its stored dtype.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files = new();
    private readonly Dictionary<string, (SafetensorsFile File, TensorEntry Entry)> _tensors = new(StringComparer.Ordinal);

    public string Directory { get; }
    public IReadOnlyList<SafetensorsFile> Files => _files;
    public IEnumerable<string> Names => _tensors.Keys;
    public int Count => _tensors.Count;

    private SafetensorsCheckpoint(string dir) => Directory = dir;

    public static SafetensorsCheckpoint Open(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) throw new UserError($"{dir}: checkpoint directory not found");
        var ck = new SafetensorsCheckpoint(dir);
        try
        {
            string index = Path.Combine(dir, CheckpointWriter.IndexFileName);
            string single = Path.Combine(dir, CheckpointWriter.SingleFileName);
            if (File.Exists(index)) ck.LoadIndex(index);
            else if (File.Exists(single)) ck.AddFile(single, null);
            else
            {
                var all = System.IO.Directory.GetFiles(dir, "*.safetensors").Order(StringComparer.Ordinal).ToList();
                if (all.Count == 0) throw new UserError($"{dir}: no model.safetensors, {CheckpointWriter.IndexFileName} or other *.safetensors file");
                foreach (var f in all) ck.AddFile(f, null);
            }
            return ck;
        }
        catch
        {
            ck.Dispose();
            throw;
        }
    }

    private void LoadIndex(string indexPath)
    {
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new UserError($"{indexPath}: no weight_map object");
            weightMap = new();
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw new UserError($"{indexPath}: weight_map entry '{p.Name}' is not a file name");
                string file = p.Value.GetString()!;
                if (file.Contains('/') || file.Contains('\\') || file.Contains(".."))
                    throw new UserError($"{indexPath}: weight_map entry '{p.Name}' points outside the directory ('{file}')");
                weightMap[p.Name] = file;
            }
        }
        catch (JsonException e)
        {
            throw new UserError($"{indexPath}: not valid JSON ({e.Message.Split('\n')[0]})");
        }
        catch (InvalidOperationException e)
        {
            // JsonDocument checks text only when it is read: invalid UTF-8, or an escaped lone surrogate.
            throw new UserError($"{indexPath}: holds text that is not valid Unicode ({e.Message.Split('\n')[0]})");
        }
        foreach (var group in weightMap.GroupBy(kv => kv.Value).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            string shard = Path.Combine(Directory, group.Key);
            if (!File.Exists(shard)) throw new UserError($"{indexPath}: shard '{group.Key}' is missing");
            AddFile(shard, group.Select(kv => kv.Key).ToHashSet());
        }
    }

    private void AddFile(string path, HashSet<string>? expected)
    {
        var f = SafetensorsFile.Open(path);
        _files.Add(f);
        foreach (var e in f.Entries)
        {
            if (expected != null && !expected.Contains(e.Name)) continue; // the index decides where a tensor lives
            if (!_tensors.TryAdd(e.Name, (f, e)))
                throw new UserError($"{path}: tensor '{e.Name}' also appears in {_tensors[e.Name].File.Path}");
        }
        if (expected != null)
            foreach (var name in expected)
                if (!f.Contains(name)) throw new UserError($"{path}: the index places tensor '{name}' here but the file does not have it");
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public bool TryGet(string name, out TensorView view)
    {
        if (_tensors.TryGetValue(name, out var t)) { view = t.File.View(t.Entry); return true; }
        view = default;
        return false;
    }

    public TensorView Get(string name)
    {
        if (!_tensors.TryGetValue(name, out var t))
            throw new UserError($"{Directory}: checkpoint has no tensor '{name}'");
        return t.File.View(t.Entry);
    }

    public TensorEntry Entry(string name) => _tensors.TryGetValue(name, out var t) ? t.Entry
        : throw new UserError($"{Directory}: checkpoint has no tensor '{name}'");

    public IEnumerable<TensorEntry> Entries => _tensors.Values.Select(t => t.Entry);

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
