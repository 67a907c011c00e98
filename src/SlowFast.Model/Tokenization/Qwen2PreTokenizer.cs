using System.Globalization;
using System.Text;

namespace SlowFast.Model.Tokenization;

/// <summary>
/// Qwen2's split pattern, matched by hand over Unicode code points exactly as the Rust tokenizer's
/// backtracking regex engine (Oniguruma) matches it, in linear time:
/// <code>
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)        A1 contraction
/// |[^\r\n\p{L}\p{N}]?\p{L}+           A2 letters, with one optional non-letter/number/newline before
/// |\p{N}                              A3 one number character
/// | ?[^\s\p{L}\p{N}]+[\r\n]*          A4 symbols, with an optional space before and newlines after
/// |\s*[\r\n]+                         A5 whitespace up to and including its last newline run
/// |\s+(?!\S)                          A6 whitespace not followed by a non-space (all but the last
///                                        character of a run that precedes text)
/// |\s+                                A7 whitespace
/// </code>
/// Alternatives are tried in order at each position and the first that matches wins. Every
/// character starts some alternative, so the matches tile the text. Why not .NET's Regex: it
/// matches UTF-16 units, which splits "😀abc" differently (the emoji is the optional A2 prefix
/// for Oniguruma, but two lone surrogates for .NET) and misses letters and digits outside the BMP.
/// \s is Unicode White_Space (.NET's char.IsWhiteSpace); \p{L} and \p{N} are general categories;
/// (?i) also lets 's' match U+017F 'ſ' (Unicode case folding), no other letter gains a variant.
/// </summary>
internal sealed class Qwen2PreTokenizer : PreTokenizer
{
    public const string Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    [Flags]
    private enum CharKind : byte
    {
        Other = 0,
        Letter = 1,
        Number = 2,
        Space = 4,     // \s
        Newline = 8,   // \r or \n (always with Space)
    }

    private static readonly CharKind[] AsciiKinds = BuildAsciiKinds();

    public override void Split(ReadOnlySpan<char> text, List<TextPiece> pieces)
    {
        int position = 0;
        while (position < text.Length)
        {
            int end = MatchAt(text, position);
            pieces.Add(new TextPiece(position, end - position));
            position = end;
        }
    }

    /// <summary>The end of the match that starts at <paramref name="i"/> (always past i).</summary>
    private static int MatchAt(ReadOnlySpan<char> text, int i)
    {
        var first = KindAt(text, i, out int firstLength);
        int afterFirst = i + firstLength;

        // A1: contractions, ASCII-case-insensitive.
        if (text[i] == '\'' && afterFirst < text.Length)
        {
            int contractionEnd = MatchContraction(text, afterFirst);
            if (contractionEnd > 0)
                return contractionEnd;
        }

        // A2: letters, optionally after one character that is not a newline, letter or number.
        if (first == CharKind.Letter)
            return SkipWhile(text, i, CharKind.Letter);
        if ((first & (CharKind.Newline | CharKind.Number)) == 0 && afterFirst < text.Length
            && KindAt(text, afterFirst, out _) == CharKind.Letter)
            return SkipWhile(text, afterFirst, CharKind.Letter);

        // A3: a single number character.
        if (first == CharKind.Number)
            return afterFirst;

        // A4: symbols (neither space, letter nor number), optionally after one ' ', then newlines.
        int symbolsStart = -1;
        if (first == CharKind.Other)
            symbolsStart = i;
        else if (text[i] == ' ' && afterFirst < text.Length && KindAt(text, afterFirst, out _) == CharKind.Other)
            symbolsStart = afterFirst;
        if (symbolsStart >= 0)
        {
            int end = SkipWhile(text, symbolsStart, CharKind.Other);
            while (end < text.Length && text[end] is '\r' or '\n')
                end++;
            return end;
        }

        // Only whitespace is left. All White_Space characters are in the BMP: one char each.
        int runEnd = i;
        int lastNewline = -1;
        while (runEnd < text.Length && (KindOfChar(text[runEnd]) & CharKind.Space) != 0)
        {
            if (text[runEnd] is '\r' or '\n')
                lastNewline = runEnd;
            runEnd++;
        }

        // A5: \s* backtracks to the run's last newline; [\r\n]+ then takes just that one
        // (the next character, if any in the run, is not a newline).
        if (lastNewline >= 0)
            return lastNewline + 1;

        // A6: at the end of the text the whole run; before text, all but its last character.
        if (runEnd == text.Length)
            return runEnd;
        if (runEnd - i >= 2)
            return runEnd - 1;

        // A7: a single whitespace character before text.
        return runEnd;
    }

    /// <summary>End of a contraction ('s 't 're 've 'm 'll 'd) whose apostrophe precedes
    /// <paramref name="j"/>, or 0 when there is none.</summary>
    private static int MatchContraction(ReadOnlySpan<char> text, int j)
    {
        char c = text[j];
        switch (c)
        {
            case 's' or 'S' or '\u017F' or 't' or 'T' or 'm' or 'M' or 'd' or 'D':
                return j + 1;
            case 'r' or 'R' or 'v' or 'V':
                return j + 1 < text.Length && text[j + 1] is 'e' or 'E' ? j + 2 : 0;
            case 'l' or 'L':
                return j + 1 < text.Length && text[j + 1] is 'l' or 'L' ? j + 2 : 0;
            default:
                return 0;
        }
    }

    private static int SkipWhile(ReadOnlySpan<char> text, int i, CharKind kind)
    {
        while (i < text.Length)
        {
            if (KindAt(text, i, out int length) != kind)
                break;
            i += length;
        }
        return i;
    }

    /// <summary>The kind of the code point at <paramref name="i"/> and its UTF-16 length. A lone
    /// surrogate counts as U+FFFD (what it becomes in UTF-8), a symbol.</summary>
    private static CharKind KindAt(ReadOnlySpan<char> text, int i, out int length)
    {
        char c = text[i];
        if (!char.IsSurrogate(c))
        {
            length = 1;
            return KindOfChar(c);
        }
        if (Rune.DecodeFromUtf16(text[i..], out Rune rune, out length) != System.Buffers.OperationStatus.Done)
            return CharKind.Other;
        return KindOfCategory(Rune.GetUnicodeCategory(rune));
    }

    private static CharKind KindOfChar(char c)
    {
        if (c < 128)
            return AsciiKinds[c];
        if (char.IsWhiteSpace(c))
            return CharKind.Space;
        return KindOfCategory(CharUnicodeInfo.GetUnicodeCategory(c));
    }

    private static CharKind KindOfCategory(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharKind.Letter,
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharKind.Number,
        _ => CharKind.Other,
    };

    private static CharKind[] BuildAsciiKinds()
    {
        var kinds = new CharKind[128];
        for (int c = 0; c < 128; c++)
        {
            kinds[c] = c switch
            {
                '\r' or '\n' => CharKind.Space | CharKind.Newline,
                '\t' or '\v' or '\f' or ' ' => CharKind.Space,
                >= 'a' and <= 'z' or >= 'A' and <= 'Z' => CharKind.Letter,
                >= '0' and <= '9' => CharKind.Number,
                _ => CharKind.Other,
            };
        }
        return kinds;
    }
}
