using System.Text.Json;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>
/// BPE merge order and loader options on tiny hand-made tokenizer.json files, where the expected
/// ids follow directly from the merge ranks.
/// </summary>
public sealed class TokenizationSyntheticTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("slowfast-tok-syn-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Ids 0..255 are the byte-level alphabet (id = byte value); extra tokens follow.</summary>
    private string WriteTokenizer(string[] extraTokens, string[][] merges, object? normalizer = null, object? preTokenizer = null)
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++)
            vocab[ByteLevelAlphabet.ToChar((byte)b).ToString()] = b;
        foreach (string token in extraTokens)
            vocab[token] = vocab.Count;
        int next = vocab.Count;
        var added = new[] { "<|endoftext|>", "<|im_start|>", "<|im_end|>" }
            .Select((content, i) => new { id = next + i, content, single_word = false, lstrip = false, rstrip = false, normalized = false, special = true })
            .ToArray();
        var json = new
        {
            version = "1.0",
            added_tokens = added,
            normalizer = normalizer ?? new { type = "NFC" },
            pre_tokenizer = preTokenizer ?? new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = Qwen2PreTokenizer.Pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = false, use_regex = false },
                },
            },
            decoder = new { type = "ByteLevel" },
            model = new { type = "BPE", vocab, merges },
        };
        string path = Path.Combine(_dir, $"tokenizer-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(json));
        return path;
    }

    [Fact]
    public void Lowest_rank_merges_first()
    {
        // "abc": (b,c) has rank 0, so "bc" forms first and then (a,bc) -> "abc", although (a,b) also exists.
        var tokenizer = QwenTokenizer.FromFile(WriteTokenizer(["bc", "ab", "abc"], [["b", "c"], ["a", "b"], ["a", "bc"]]));
        Assert.Equal(new[] { 258 }, tokenizer.Encode("abc"));
        Assert.Equal(new[] { 257, 'd' }, tokenizer.Encode("abd"));
    }

    [Fact]
    public void Equal_ranks_merge_leftmost_first()
    {
        var tokenizer = QwenTokenizer.FromFile(WriteTokenizer(["aa"], [["a", "a"]]));
        Assert.Equal(new[] { 256, 'a' }, tokenizer.Encode("aaa"));
        Assert.Equal(new[] { 256, 256, 'a' }, tokenizer.Encode("aaaaa"));
    }

    [Fact]
    public void Older_string_merges_are_accepted()
    {
        string path = WriteTokenizer(["aa"], []);
        string text = File.ReadAllText(path).Replace("\"merges\":[]", "\"merges\":[\"a a\"]");
        File.WriteAllText(path, text);
        Assert.Equal(new[] { 256 }, QwenTokenizer.FromFile(path).Encode("aa"));
    }

    [Fact]
    public void Gpt2_byte_level_pre_tokenizer_uses_the_gpt2_pattern()
    {
        string path = WriteTokenizer([], [], normalizer: new { type = "Sequence", normalizers = Array.Empty<object>() },
            preTokenizer: new { type = "ByteLevel", add_prefix_space = false, use_regex = true });
        var tokenizer = QwenTokenizer.FromFile(path);
        Assert.Equal("a  b's 12", tokenizer.Decode(tokenizer.Encode("a  b's 12")));
        var pieces = new List<TextPiece>();
        PreTokenizer.ForPattern(TokenizerJsonReader.Gpt2Pattern).Split("a  b's 12", pieces);
        Assert.Equal(new[] { "a", " ", " b", "'s", " 12" }, pieces.Select(p => "a  b's 12".Substring(p.Start, p.Length)));
    }

    [Fact]
    public void Merge_with_unknown_token_is_a_user_error()
    {
        string path = WriteTokenizer([], [["a", "zz"]]);
        var error = Assert.Throws<UserError>(() => QwenTokenizer.FromFile(path));
        Assert.Contains(Path.GetFileName(path), error.Message);
        Assert.Contains("merge #0", error.Message);
    }

    [Fact]
    public void Unsupported_normalizer_is_a_user_error()
    {
        string path = WriteTokenizer([], [], normalizer: new { type = "Lowercase" });
        var error = Assert.Throws<UserError>(() => QwenTokenizer.FromFile(path));
        Assert.Contains("normalizer", error.Message);
    }

    [Fact]
    public void Qwen_pattern_selects_the_hand_written_matcher()
    {
        Assert.IsType<Qwen2PreTokenizer>(PreTokenizer.ForPattern(Qwen2PreTokenizer.Pattern));
        Assert.IsType<RegexPreTokenizer>(PreTokenizer.ForPattern(TokenizerJsonReader.Gpt2Pattern));
    }
}
