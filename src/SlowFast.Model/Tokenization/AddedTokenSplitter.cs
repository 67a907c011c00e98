using System.Buffers;
using System.Text;

namespace SlowFast.Model.Tokenization;

/// <summary>A stretch of text: either plain text for the BPE pipeline, or one added token.</summary>
internal readonly record struct TextSegment(int Start, int Length, int AddedTokenId)
{
    public bool IsAddedToken => AddedTokenId >= 0;
}

/// <summary>
/// Finds added tokens in text the way the Rust tokenizer does: scanning left to right, at the
/// leftmost position where any token occurs the longest one wins (Aho-Corasick "leftmost
/// longest"); a single_word token inside a word is left as text; lstrip/rstrip tokens also take
/// the whitespace beside them.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly AddedToken[] _tokens;              // longest first, so the first hit is the longest
    private readonly SearchValues<char> _firstChars;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        _tokens = tokens.Where(t => t.Content.Length > 0).OrderByDescending(t => t.Content.Length).ToArray();
        _firstChars = SearchValues.Create(_tokens.Select(t => t.Content[0]).Distinct().ToArray());
    }

    public bool IsEmpty => _tokens.Length == 0;

    public void Split(ReadOnlySpan<char> text, List<TextSegment> segments)
    {
        int textStart = 0;   // start of the pending plain text
        int searchFrom = 0;
        while (searchFrom < text.Length)
        {
            int offset = text[searchFrom..].IndexOfAny(_firstChars);
            if (offset < 0)
                break;
            int start = searchFrom + offset;
            var token = LongestAt(text, start);
            if (token is null)
            {
                searchFrom = start + 1;
                continue;
            }
            int end = start + token.Content.Length;
            searchFrom = end;
            if (token.SingleWord && (EndsWithWordChar(text[..start]) || StartsWithWordChar(text[end..])))
                continue;
            if (token.LeftStrip)
            {
                while (start > textStart && Rune.IsWhiteSpace(RuneBefore(text, start, out int length)))
                    start -= length;
            }
            if (token.RightStrip)
            {
                while (end < text.Length && Rune.IsWhiteSpace(RuneAt(text, end, out int length)))
                    end += length;
                searchFrom = end;
            }
            if (start > textStart)
                segments.Add(new TextSegment(textStart, start - textStart, -1));
            segments.Add(new TextSegment(start, end - start, token.Id));
            textStart = end;
        }
        if (textStart < text.Length)
            segments.Add(new TextSegment(textStart, text.Length - textStart, -1));
    }

    private AddedToken? LongestAt(ReadOnlySpan<char> text, int start)
    {
        var rest = text[start..];
        foreach (var token in _tokens)
        {
            if (rest.StartsWith(token.Content, StringComparison.Ordinal))
                return token;
        }
        return null;
    }

    private static bool IsWordChar(Rune r) => Rune.IsLetterOrDigit(r) || r.Value == '_';

    private static bool EndsWithWordChar(ReadOnlySpan<char> before) =>
        !before.IsEmpty && IsWordChar(RuneBefore(before, before.Length, out _));

    private static bool StartsWithWordChar(ReadOnlySpan<char> after) =>
        !after.IsEmpty && IsWordChar(RuneAt(after, 0, out _));

    private static Rune RuneAt(ReadOnlySpan<char> text, int index, out int length)
    {
        Rune.DecodeFromUtf16(text[index..], out Rune rune, out length);
        return rune;
    }

    private static Rune RuneBefore(ReadOnlySpan<char> text, int end, out int length)
    {
        Rune.DecodeLastFromUtf16(text[..end], out Rune rune, out length);
        return rune;
    }
}
