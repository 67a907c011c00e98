using System.Text.RegularExpressions;

namespace SlowFast.Model.Tokenization;

/// <summary>A piece of the normalized text that BPE encodes on its own: [Start, Start + Length).</summary>
internal readonly record struct TextPiece(int Start, int Length);

/// <summary>
/// Splits normalized text into pieces that BPE encodes independently (the tokenizer.json
/// "pre_tokenizer" Split step, behaviour "Isolated": matches and the gaps between them are pieces).
/// </summary>
internal abstract class PreTokenizer
{
    /// <summary>Appends the pieces of <paramref name="text"/>, in order, covering all of it.</summary>
    public abstract void Split(ReadOnlySpan<char> text, List<TextPiece> pieces);

    /// <summary>The hand-written matcher when the pattern is Qwen2's, otherwise a .NET regex.</summary>
    public static PreTokenizer ForPattern(string pattern) =>
        pattern == Qwen2PreTokenizer.Pattern ? new Qwen2PreTokenizer() : new RegexPreTokenizer(pattern);
}

/// <summary>
/// Any split pattern, run with .NET's regex engine. Close to, but not exactly, the Rust tokenizer's
/// Oniguruma: .NET matches UTF-16 code units, so characters outside the BMP (emoji, rare CJK) are
/// two "characters" to it. Qwen2's pattern never comes here; see <see cref="Qwen2PreTokenizer"/>.
/// </summary>
internal sealed class RegexPreTokenizer : PreTokenizer
{
    private readonly Regex _regex;

    public RegexPreTokenizer(string pattern)
    {
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    public override void Split(ReadOnlySpan<char> text, List<TextPiece> pieces)
    {
        int position = 0;
        foreach (var match in _regex.EnumerateMatches(text))
        {
            if (match.Length == 0)
                continue;
            if (match.Index > position)
                pieces.Add(new TextPiece(position, match.Index - position));
            pieces.Add(new TextPiece(match.Index, match.Length));
            position = match.Index + match.Length;
        }
        if (position < text.Length)
            pieces.Add(new TextPiece(position, text.Length - position));
    }
}
