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
            using var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
            return Parse(document.RootElement, path);
        }
        catch (JsonException e)
        {
            throw new UserError($"{path}: {name} is not valid JSON ({FirstLine(e.Message)})", e);
        }
        catch (InvalidOperationException e)
        {
            // JsonElement accessors throw this on a value of the wrong JSON type.
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

    private static TokenizerDefinition Parse(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new UserError($"{path}: expected a JSON object at the top level");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new UserError($"{path}: no \"model\" section (is this a Hugging Face tokenizer.json?)");
        string modelType = OptionalString(model, "type") ?? "BPE";
        if (modelType != "BPE")
            throw new UserError($"{path}: model type \"{modelType}\" is not supported (byte-level BPE only)");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (!string.IsNullOrEmpty(OptionalString(model, affix)))
                throw new UserError($"{path}: BPE option \"{affix}\" is not supported");
        }

        if (!model.TryGetProperty("vocab", out var vocabJson) || vocabJson.ValueKind != JsonValueKind.Object)
            throw new UserError($"{path}: the model has no \"vocab\" object");
        var vocab = new Dictionary<string, int>(capacity: 160_000, StringComparer.Ordinal);
        foreach (var entry in vocabJson.EnumerateObject())
        {
            int id = entry.Value.GetInt32();
            if (id < 0)
                throw new UserError($"{path}: negative id {id} for token \"{entry.Name}\"");
            vocab[entry.Name] = id;
        }

        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesJson) && mergesJson.ValueKind == JsonValueKind.Array)
        {
            foreach (var merge in mergesJson.EnumerateArray())
                merges.Add(ParseMerge(merge, path));
        }

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedJson) && addedJson.ValueKind == JsonValueKind.Array)
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

        bool nfc = ReadNormalizer(root, path);
        string pattern = ReadSplitPattern(root, path);
        return new TokenizerDefinition(vocab, merges, added, nfc, pattern);
    }

    private static (string, string) ParseMerge(JsonElement merge, string path)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            // Older layout: "left right" (byte-level tokens never contain a space).
            string text = merge.GetString()!;
            int space = text.IndexOf(' ');
            if (space > 0 && space < text.Length - 1 && text.IndexOf(' ', space + 1) < 0)
                return (text[..space], text[(space + 1)..]);
        }
        else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2)
        {
            return (merge[0].GetString() ?? "", merge[1].GetString() ?? "");
        }
        throw new UserError($"{path}: malformed merge {merge.GetRawText()}");
    }

    private static bool ReadNormalizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null)
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
    private static string ReadSplitPattern(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
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
