using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using Parquet;
using Parquet.Serialization;

namespace SlowFast.Eval.Data;

/// <summary>One record of an annotation file: field name → value (strings, numbers, booleans, lists, nested objects).</summary>
public sealed class AnnotationRow
{
    private readonly JsonObject _fields;

    public AnnotationRow(JsonObject fields, string source, long index)
    {
        _fields = fields;
        Source = source;
        Index = index;
    }

    /// <summary>The file this row came from, and its 0-based position there (for error messages).</summary>
    public string Source { get; }

    /// <inheritdoc cref="Source"/>
    public long Index { get; }

    public IEnumerable<string> Keys => _fields.Select(f => f.Key);

    public bool Has(string key) => _fields.TryGetPropertyValue(key, out var v) && v != null;

    public JsonNode? this[string key] => _fields.TryGetPropertyValue(key, out var v) ? v : null;

    /// <summary>The field as text (numbers and booleans written invariantly); throws a <see cref="UserError"/> when it is missing.</summary>
    public string String(string key) =>
        StringOrNull(key) ?? throw new UserError($"{Source}: record {Index} has no '{key}' field");

    /// <summary>The field as text, or null when it is missing or null.</summary>
    public string? StringOrNull(string key) => this[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v => v.ToJsonString(),
        var other => other.ToJsonString(),
    };

    /// <summary>
    /// The field as a list of strings: a JSON/Parquet list, or text holding a JSON list (CSV files often store lists
    /// that way). Throws a <see cref="UserError"/> when it is missing or not a list.
    /// </summary>
    public IReadOnlyList<string> StringList(string key)
    {
        var node = this[key] ?? throw new UserError($"{Source}: record {Index} has no '{key}' field");
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            try { node = JsonNode.Parse(v.GetValue<string>()); }
            catch (JsonException) { node = null; }
        }
        if (node is not JsonArray array)
            throw new UserError($"{Source}: record {Index}: '{key}' is not a list");
        return array.Select(e => e switch
        {
            null => "",
            JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
            var x => x.ToJsonString(),
        }).ToList();
    }

    /// <summary>The field as a number (also from text), or null when missing.</summary>
    public double? NumberOrNull(string key)
    {
        var text = StringOrNull(key);
        if (text == null || text.Length == 0) return null;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return d;
        throw new UserError($"{Source}: record {Index}: '{key}' is not a number ({Truncate(text)})");
    }

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "…";
}

/// <summary>
/// Reads benchmark annotation files in the forms they are distributed in: a JSON array (or an object whose values are
/// records or arrays of records), JSON Lines, CSV and TSV (CsvHelper), and Parquet (Parquet.Net, as Hugging Face
/// datasets store them). Every format comes back as the same rows, so a task reads fields by name whatever the file.
/// </summary>
public static class AnnotationFile
{
    /// <summary>The extensions <see cref="Read"/> understands.</summary>
    public static readonly IReadOnlyList<string> Extensions = [".json", ".jsonl", ".csv", ".tsv", ".parquet"];

    /// <summary>Reads every record of <paramref name="path"/>; the format is chosen by its extension.</summary>
    public static IReadOnlyList<AnnotationRow> Read(string path)
    {
        if (!File.Exists(path))
            throw new UserError($"{path}: annotation file not found");
        try
        {
            return Path.GetExtension(path).ToLowerInvariant() switch
            {
                ".json" => ReadJson(path),
                ".jsonl" => ReadJsonLines(path),
                ".csv" => ReadDelimited(path, ','),
                ".tsv" => ReadDelimited(path, '\t'),
                ".parquet" => ReadParquet(path),
                var ext => throw new UserError($"{path}: unknown annotation format '{ext}' (expected {string.Join(", ", Extensions)})"),
            };
        }
        catch (JsonException e)
        {
            throw new UserError($"{path}: not valid JSON ({e.Message})", e);
        }
        catch (CsvFormatException e)
        {
            throw new UserError($"{path}: not a valid {Path.GetExtension(path).TrimStart('.').ToUpperInvariant()} file ({FirstLine(e.Message)})", e);
        }
        catch (Exception e) when (e is IOException or ParquetException or InvalidDataException or NotSupportedException)
        {
            throw new UserError($"{path}: cannot read ({FirstLine(e.Message)})", e);
        }
    }

    /// <summary>
    /// The first of <paramref name="names"/> (relative to <paramref name="dataDir"/>, any extension of
    /// <see cref="Extensions"/> when a name has none) that exists; a <see cref="UserError"/> listing them all when none does.
    /// </summary>
    public static string Find(string dataDir, params string[] names)
    {
        if (!Directory.Exists(dataDir))
            throw new UserError($"{dataDir}: data directory not found");
        var tried = new List<string>();
        foreach (var name in names)
        {
            var candidates = Path.HasExtension(name) ? [name] : Extensions.Select(e => name + e);
            foreach (var c in candidates)
            {
                tried.Add(c);
                var full = Path.Combine(dataDir, c);
                if (File.Exists(full)) return full;
            }
        }
        throw new UserError($"{dataDir}: no annotation file (looked for {string.Join(", ", tried)})");
    }

    // A key given twice in one record is malformed (a JsonException, so a one-line error), not a crash later.
    private static readonly JsonDocumentOptions JsonOptions = new() { AllowTrailingCommas = true, AllowDuplicateProperties = false };

    private static List<AnnotationRow> ReadJson(string path)
    {
        var root = JsonNode.Parse(File.ReadAllText(path), documentOptions: JsonOptions);
        var rows = new List<AnnotationRow>();
        switch (root)
        {
            case JsonArray array:
                foreach (var item in array) rows.Add(Row(item, path, rows.Count));
                break;
            // {"id": {...}, ...} (keyed records) or {"split": [...]}: the records are the values.
            case JsonObject obj:
                foreach (var (key, value) in obj)
                {
                    if (value is JsonArray inner)
                        foreach (var item in inner) rows.Add(Row(item, path, rows.Count));
                    else if (value is JsonObject record)
                    {
                        var copy = (JsonObject)record.DeepClone();
                        copy.TryAdd("_key", key);
                        rows.Add(new AnnotationRow(copy, path, rows.Count));
                    }
                    else throw new UserError($"{path}: '{key}' is neither a record nor a list of records");
                }
                break;
            default:
                throw new UserError($"{path}: expected a JSON array or object of records");
        }
        return rows;
    }

    private static List<AnnotationRow> ReadJsonLines(string path)
    {
        var rows = new List<AnnotationRow>();
        var lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line, documentOptions: JsonOptions); }
            catch (JsonException e) { throw new UserError($"{path}: line {lineNo} is not valid JSON ({e.Message})", e); }
            rows.Add(Row(node, path, rows.Count));
        }
        return rows;
    }

    private static AnnotationRow Row(JsonNode? node, string path, int index) => node is JsonObject obj
        ? new AnnotationRow((JsonObject)obj.DeepClone(), path, index)
        : throw new UserError($"{path}: record {index} is not an object");

    private static List<AnnotationRow> ReadDelimited(string path, char separator)
    {
        using var csv = CsvReader.FromFile(path, new CsvReaderOptions { Separator = separator });
        var rows = new List<AnnotationRow>();
        while (csv.Read())
        {
            var header = csv.Headers;
            var obj = new JsonObject();
            for (var i = 0; i < header.Count; i++)
                obj[header[i]] = i < csv.FieldCount ? csv.GetString(i) : null;
            rows.Add(new AnnotationRow(obj, path, rows.Count));
        }
        return rows;
    }

    private static List<AnnotationRow> ReadParquet(string path)
    {
        // Parquet.Net is asynchronous; annotation files are small and read once, so waiting here is fine.
        return ReadParquetAsync(path).GetAwaiter().GetResult();
    }

    private static async Task<List<AnnotationRow>> ReadParquetAsync(string path)
    {
        await using var stream = File.OpenRead(path);
        var result = await ParquetSerializer.DeserializeUntypedAsync(stream);
        var rows = new List<AnnotationRow>();
        foreach (var record in result.Data)
            rows.Add(new AnnotationRow((JsonObject)ToNode(record)!, path, rows.Count));
        return rows;
    }

    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        ReadOnlyMemory<char> text => JsonValue.Create(text.ToString()),
        ReadOnlyMemory<byte> utf8 => JsonValue.Create(System.Text.Encoding.UTF8.GetString(utf8.Span)),
        DateTime t => JsonValue.Create(t.ToString("o", CultureInfo.InvariantCulture)),
        DateTimeOffset t => JsonValue.Create(t.ToString("o", CultureInfo.InvariantCulture)),
        System.Collections.IDictionary map => new JsonObject(map.Keys.Cast<object>().Select(k =>
            KeyValuePair.Create(Convert.ToString(k, CultureInfo.InvariantCulture) ?? "", ToNode(map[k])))),
        System.Collections.IEnumerable list => new JsonArray(list.Cast<object?>().Select(ToNode).ToArray()),
        IConvertible c when c.GetTypeCode() is >= TypeCode.SByte and <= TypeCode.Decimal =>
            JsonValue.Create(Convert.ToDouble(c, CultureInfo.InvariantCulture)),
        var other => JsonValue.Create(Convert.ToString(other, CultureInfo.InvariantCulture)),
    };

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
