using System.Text;
using System.Text.RegularExpressions;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>
/// The hand-written Qwen2 split matcher. Inside the BMP, .NET's backtracking regex engine runs the
/// same pattern with the same semantics as Oniguruma (the Rust tokenizer's engine), so it serves
/// as the reference on random text; outside the BMP the expectations are derived by hand.
/// </summary>
public class TokenizationPreTokenizerTests
{
    private static readonly Regex Reference = new(Qwen2PreTokenizer.Pattern, RegexOptions.CultureInvariant);

    // Every character class the pattern distinguishes, with contraction letters, both newlines,
    // Unicode spaces (NBSP, ideographic), non-ASCII letters/digits/numbers and combining marks.
    private static readonly string[] Alphabet =
    [
        "a", "Z", "s", "S", "t", "r", "e", "E", "v", "m", "l", "L", "d", "x", "'", "'", " ", " ", " ",
        "\t", "\n", "\r", "\u00A0", "\u3000", "\u2028", "\u000B", "0", "7", "\u0663", "\u216B", "\u00BD",
        ".", ",", "!", "-", "_", "(", "\"", "中", "é", "ß", "\u0301", "\u0915", "\u093F", "ー",
    ];

    [Fact]
    public void Matches_regex_reference_on_random_bmp_text()
    {
        var random = new Random(1234);
        var splitter = new Qwen2PreTokenizer();
        var pieces = new List<TextPiece>();
        for (int trial = 0; trial < 20_000; trial++)
        {
            var builder = new StringBuilder();
            int length = random.Next(1, 16);
            for (int i = 0; i < length; i++)
                builder.Append(Alphabet[random.Next(Alphabet.Length)]);
            string text = builder.ToString();

            pieces.Clear();
            splitter.Split(text, pieces);
            var actual = pieces.Select(p => text.Substring(p.Start, p.Length)).ToArray();
            var expected = Reference.Matches(text).Select(m => m.Value).ToArray();
            Assert.True(expected.SequenceEqual(actual),
                $"text {Escape(text)}: expected [{string.Join(" | ", expected.Select(Escape))}], got [{string.Join(" | ", actual.Select(Escape))}]");
        }
    }

    [Theory]
    [InlineData("Hello world", new[] { "Hello", " world" })]
    [InlineData("a  b   c", new[] { "a", " ", " b", "  ", " c" })]
    [InlineData("they'll we'd've I'M", new[] { "they", "'ll", " we", "'d", "'ve", " I", "'M" })]
    [InlineData("'sam", new[] { "'s", "am" })]
    [InlineData("'xyz", new[] { "'xyz" })]
    [InlineData("12345", new[] { "1", "2", "3", "4", "5" })]
    [InlineData("x**2  # sq\n", new[] { "x", "**", "2", " ", " #", " sq", "\n" })]
    [InlineData("end.\r\n\r\nNext", new[] { "end", ".\r\n\r\n", "Next" })]
    [InlineData("a \n\n b", new[] { "a", " \n\n", " b" })]
    [InlineData("trailing   ", new[] { "trailing", "   " })]
    [InlineData("\tindent", new[] { "\tindent" })]
    [InlineData("'ſ", new[] { "'ſ" })]   // (?i) case folding: U+017F folds to 's'
    public void Splits_known_cases(string text, string[] expected) =>
        Assert.Equal(expected, Split(text));

    [Fact]
    public void Characters_outside_the_bmp_are_single_characters()
    {
        // An emoji is a symbol, so it is the optional A2 prefix of the letters after it
        // (.NET's regex would see two surrogates and split "😀" | "abc").
        Assert.Equal(new[] { "😀abc" }, Split("😀abc"));
        Assert.Equal(new[] { " 😀🎬", " x" }, Split(" 😀🎬 x"));
        // U+1D400 MATHEMATICAL BOLD CAPITAL A is a letter; U+1D7CE MATHEMATICAL BOLD DIGIT ZERO a number.
        Assert.Equal(new[] { " 𝐀𝐁", "𝟎", "𝟏" }, Split(" 𝐀𝐁𝟎𝟏"));
        // CJK Extension B ideographs are letters.
        Assert.Equal(new[] { "𠀀𠀁", " x" }, Split("𠀀𠀁 x"));
    }

    [Fact]
    public void Lone_surrogate_is_a_symbol()
    {
        Assert.Equal(new[] { "a", " \uD800", " b" }, Split("a \uD800 b"));
    }

    private static string[] Split(string text)
    {
        var pieces = new List<TextPiece>();
        new Qwen2PreTokenizer().Split(text, pieces);
        return pieces.Select(p => text.Substring(p.Start, p.Length)).ToArray();
    }

    private static string Escape(string s) =>
        string.Concat(s.Select(c => c < 128 && !char.IsControl(c) ? c.ToString() : $"\\u{(int)c:X4}"));
}
