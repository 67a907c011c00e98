using System.Text.Json;

namespace SlowFast.Model.Tokenization;

/// <summary>What <see cref="TokenizerJsonReader"/> takes out of a tokenizer.json.</summary>
internal sealed record TokenizerDefinition(
    Dictionary<string, int> Vocab,
    List<(string Left, string Right)> Merges,
    List<AddedToken> AddedTokens,
    bool NormalizeNfc,
    string SplitPattern);

/// <summary>
/// Reads a Hugging Face tokenizer.json for a byte-level BPE model (Qwen2's layout: NFC normalizer,
/// one regex Split then ByteLevel without its own regex, ByteLevel decoder), rejecting with a
/// <see cref="UserError"/> what this engine does not implement.
/// </summary>
internal static class TokenizerJsonReader
{
    /// <summary>GPT-2's pattern, which a ByteLevel pre-tokenizer with use_regex = true applies.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static TokenizerDefinition Read(string path)
    {
        string name = Path.GetFileName(path);
        if (!File.Exists(path))
            throw new UserError($"{path}: tokenizer file not found");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{path}: cannot read the tokenizer file ({e.Message})", e);
        }

        try
        {
            return Parse(bytes, path);
        }
        catch (JsonException e)
        {
            throw new UserError($"{path}: {name} is not valid JSON ({FirstLine(e.Message)})", e);
        }
        catch (InvalidOperationException e)
        {
            // Reader and element accessors throw this on a value of the wrong JSON type.
            throw new UserError($"{path}: unexpected value type in {name} ({FirstLine(e.Message)})", e);
        }
        catch (KeyNotFoundException e)
        {
            throw new UserError($"{path}: a required field is missing in {name} ({FirstLine(e.Message)})", e);
        }
        catch (FormatException e)
        {
            throw new UserError($"{path}: unexpected number in {name} ({FirstLine(e.Message)})", e);
        }
    }

    /// <summary>
    /// One streaming pass: the model's vocabulary and merges (almost all of the 11 MB) are read
    /// token by token; the small sections are parsed into elements.
    /// </summary>
    private static TokenizerDefinition Parse(byte[] bytes, string path)
    {
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 64 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            throw new UserError($"{path}: expected a JSON object at the top level");

        ModelSection? model = null;
        var sections = new Dictionary<string, JsonElement>();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string property = reader.GetString()!;
            reader.Read();
            if (property == "model" && reader.TokenType == JsonTokenType.StartObject)
            {
                model = ReadModel(ref reader, path);
            }
            else
            {
                using var value = JsonDocument.ParseValue(ref reader);
                sections[property] = value.RootElement.Clone();
            }
        }

        if (model is null)
            throw new UserError($"{path}: no \"model\" section (is this a Hugging Face tokenizer.json?)");
        if (model.Type != "BPE")
            throw new UserError($"{path}: model type \"{model.Type}\" is not supported (byte-level BPE only)");
        if (model.UnsupportedOption is not null)
            throw new UserError($"{path}: BPE option \"{model.UnsupportedOption}\" is not supported");
        if (model.Vocab is null)
            throw new UserError($"{path}: the model has no \"vocab\" object");

        var added = new List<AddedToken>();
        if (sections.TryGetValue("added_tokens", out var addedJson) && addedJson.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in addedJson.EnumerateArray())
            {
                added.Add(new AddedToken(
                    Id: token.GetProperty("id").GetInt32(),
                    Content: token.GetProperty("content").GetString() ?? "",
                    Special: OptionalBool(token, "special", false),
                    SingleWord: OptionalBool(token, "single_word", false),
                    LeftStrip: OptionalBool(token, "lstrip", false),
                    RightStrip: OptionalBool(token, "rstrip", false),
                    Normalized: OptionalBool(token, "normalized", true)));
            }
        }

        bool nfc = ReadNormalizer(sections.GetValueOrDefault("normalizer"), path);
        string pattern = ReadSplitPattern(sections.GetValueOrDefault("pre_tokenizer"), path);
        return new TokenizerDefinition(model.Vocab, model.Merges, added, nfc, pattern);
    }

    private sealed class ModelSection
    {
        public string Type = "BPE";
        public string? UnsupportedOption;
        public Dictionary<string, int>? Vocab;
        public List<(string, string)> Merges = new();
    }

    /// <summary>Reads the "model" object; the reader is on its StartObject and ends on its EndObject.</summary>
    private static ModelSection ReadModel(ref Utf8JsonReader reader, string path)
    {
        var model = new ModelSection();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string property = reader.GetString()!;
            reader.Read();
            switch (property)
            {
                case "type" when reader.TokenType == JsonTokenType.String:
                    model.Type = reader.GetString()!;
                    break;
                case "continuing_subword_prefix" or "end_of_word_suffix":
                    if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                        model.UnsupportedOption = property;
                    reader.Skip();
                    break;
                case "vocab" when reader.TokenType == JsonTokenType.StartObject:
                    model.Vocab = ReadVocab(ref reader, path);
                    break;
                case "merges" when reader.TokenType == JsonTokenType.StartArray:
                    ReadMerges(ref reader, model.Merges, path);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }
        return model;
    }

    private static Dictionary<string, int> ReadVocab(ref Utf8JsonReader reader, string path)
    {
        var vocab = new Dictionary<string, int>(capacity: 160_000, StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string token = reader.GetString()!;
            reader.Read();
            int id = reader.GetInt32();
            if (id < 0)
                throw new UserError($"{path}: negative id {id} for token \"{token}\"");
            vocab[token] = id;
        }
        return vocab;
    }

    /// <summary>Merges as ["left", "right"] pairs, or in the older layout as "left right" strings.</summary>
    private static void ReadMerges(ref Utf8JsonReader reader, List<(string, string)> merges, string path)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.String)
            {
                merges.Add(SplitMergeString(reader.GetString()!, path));
                continue;
            }
            if (reader.TokenType != JsonTokenType.StartArray)
                throw new UserError($"{path}: malformed merge #{merges.Count} (expected a pair of strings)");
            string? left = null, right = null;
            int count = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                string? part = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                if (count == 0) left = part; else right = part;
                count++;
            }
            if (count != 2 || left is null || right is null)
                throw new UserError($"{path}: malformed merge #{merges.Count} (expected a pair of strings)");
            merges.Add((left, right));
        }
    }

    private static (string, string) SplitMergeString(string text, string path)
    {
        // Byte-level tokens never contain a space, so the space separates the two parts.
        int space = text.IndexOf(' ');
        if (space > 0 && space < text.Length - 1 && text.IndexOf(' ', space + 1) < 0)
            return (text[..space], text[(space + 1)..]);
        throw new UserError($"{path}: malformed merge \"{text}\"");
    }

    private static bool ReadNormalizer(JsonElement normalizer, string path)
    {
        if (normalizer.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
            return false;
        string? type = OptionalString(normalizer, "type");
        if (type == "NFC")
            return true;
        if (type == "Sequence" && normalizer.TryGetProperty("normalizers", out var list)
            && list.ValueKind == JsonValueKind.Array && list.GetArrayLength() <= 1)
        {
            if (list.GetArrayLength() == 0)
                return false;
            if (OptionalString(list[0], "type") == "NFC")
                return true;
        }
        throw new UserError($"{path}: normalizer {Describe(normalizer)} is not supported (NFC or none only)");
    }

    /// <summary>The split regex: Sequence[Split(regex, Isolated), ByteLevel(use_regex = false)], or a
    /// lone ByteLevel with use_regex = true (GPT-2's pattern).</summary>
    private static string ReadSplitPattern(JsonElement pre, string path)
    {
        if (pre.ValueKind != JsonValueKind.Object)
            throw new UserError($"{path}: no \"pre_tokenizer\" section");
        string? type = OptionalString(pre, "type");
        if (type == "ByteLevel" && !OptionalBool(pre, "add_prefix_space", false) && OptionalBool(pre, "use_regex", true))
            return Gpt2Pattern;
        if (type == "Sequence" && pre.TryGetProperty("pretokenizers", out var steps)
            && steps.ValueKind == JsonValueKind.Array && steps.GetArrayLength() == 2)
        {
            var split = steps[0];
            var byteLevel = steps[1];
            bool splitOk = OptionalString(split, "type") == "Split"
                && OptionalString(split, "behavior") == "Isolated"
                && !OptionalBool(split, "invert", false)
                && split.TryGetProperty("pattern", out var pattern)
                && pattern.ValueKind == JsonValueKind.Object
                && pattern.TryGetProperty("Regex", out var regex)
                && regex.ValueKind == JsonValueKind.String;
            bool byteLevelOk = OptionalString(byteLevel, "type") == "ByteLevel"
                && !OptionalBool(byteLevel, "add_prefix_space", false)
                && !OptionalBool(byteLevel, "use_regex", true);
            if (splitOk && byteLevelOk)
                return split.GetProperty("pattern").GetProperty("Regex").GetString()!;
        }
        throw new UserError($"{path}: pre_tokenizer {Describe(pre)} is not supported (Qwen2/GPT-2 byte-level layouts only)");
    }

    private static string? OptionalString(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString() : null;

    private static bool OptionalBool(JsonElement obj, string name, bool fallback) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v)
            && v.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? v.GetBoolean() : fallback;

    private static string Describe(JsonElement element)
    {
        string raw = element.GetRawText().ReplaceLineEndings(" ");
        return raw.Length <= 120 ? raw : raw[..117] + "...";
    }

    private static string FirstLine(string message)
    {
        int newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : message[..newline];
    }
}
