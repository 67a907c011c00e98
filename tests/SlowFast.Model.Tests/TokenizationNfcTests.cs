using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>The C# NFC normalizer against Python's unicodedata (Fixtures/qwen-tokenizer/nfc-cases.jsonl,
/// from tools/tokenizer/gen_nfc_cases.py).</summary>
public class TokenizationNfcTests
{
    [Fact]
    public void Matches_python_unicodedata_on_every_fixture_case()
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var entry in TokenizationTestSupport.ReadJsonLines("nfc-cases.jsonl"))
        {
            string text = entry.GetProperty("text").GetString()!;
            string expected = entry.GetProperty("nfc").GetString()!;
            string actual = NfcNormalizer.Normalize(text);
            if (actual != expected)
                failures.Add($"{Hex(text)}: expected {Hex(expected)}, got {Hex(actual)}");
            count++;
        }
        Assert.True(count > 1000, $"only {count} cases read");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
    }

    [Theory]
    [InlineData("e\u0301", "\u00E9")]
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]            // Hangul L V T -> one syllable
    [InlineData("\u212B", "\u00C5")]                         // Angstrom sign is a singleton
    [InlineData("a\u0323\u0302", "\u1EAD")]                  // ậ: reorder, then compose twice
    [InlineData("a\u0302\u0323", "\u1EAD")]
    [InlineData("\uFB01", "\uFB01")]                         // compatibility ligature stays (NFKC would split it)
    [InlineData("abc", "abc")]
    public void Known_compositions(string input, string expected) =>
        Assert.Equal(expected, NfcNormalizer.Normalize(input));

    [Fact]
    public void Lone_surrogate_becomes_replacement_character() =>
        Assert.Equal("a\uFFFDb\u00E9", NfcNormalizer.Normalize("a\uD800be\u0301"));

    private static string Hex(string s) => string.Join(" ", s.EnumerateRunes().Select(r => r.Value.ToString("X4")));
}
