using System.Runtime.InteropServices;
using System.Text;

namespace SlowFast.Model.Tokenization;

/// <summary>
/// Turns generated ids into text one id at a time. A token can end in the middle of a UTF-8
/// character (an emoji is often two or three byte tokens), so the decoder holds back an
/// incomplete trailing sequence until the bytes that finish it arrive. The concatenation of
/// everything <see cref="Push"/> and <see cref="Flush"/> return equals
/// <see cref="QwenTokenizer.Decode"/> of all the ids. Not thread-safe (one per generation).
/// </summary>
public sealed class StreamingDecoder
{
    private readonly QwenTokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<byte> _pending = new();

    internal StreamingDecoder(QwenTokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one id; returns the text it completes (often empty while a character is split).</summary>
    public string Push(int id)
    {
        _tokenizer.AppendBytes(id, _skipSpecialTokens, _pending);
        var bytes = CollectionsMarshal.AsSpan(_pending);
        int ready = bytes.Length - IncompleteTailLength(bytes);
        if (ready == 0)
            return "";
        string text = Encoding.UTF8.GetString(bytes[..ready]);
        _pending.RemoveRange(0, ready);
        return text;
    }

    /// <summary>Returns whatever is held back (as U+FFFD if it never completed) and resets.</summary>
    public string Flush()
    {
        string text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(_pending));
        _pending.Clear();
        return text;
    }

    /// <summary>
    /// Length of the trailing bytes that begin a UTF-8 sequence which more bytes could still
    /// complete validly (0 when the buffer ends on a boundary or on bytes that are invalid anyway).
    /// </summary>
    internal static int IncompleteTailLength(ReadOnlySpan<byte> bytes)
    {
        // A sequence is at most 4 bytes, so an incomplete one starts within the last 3.
        for (int tail = 1; tail <= Math.Min(3, bytes.Length); tail++)
        {
            byte lead = bytes[^tail];
            if ((lead & 0xC0) == 0x80)
                continue; // continuation byte: the lead is further back
            int needed = lead switch
            {
                >= 0xC2 and <= 0xDF => 2,
                >= 0xE0 and <= 0xEF => 3,
                >= 0xF0 and <= 0xF4 => 4,
                _ => 1, // ASCII, or a byte that can never lead a sequence
            };
            if (needed <= tail)
                return 0;
            // The bytes after the lead must be a valid start of its sequence (Unicode Table 3-7).
            if (tail >= 2)
            {
                byte second = bytes[^(tail - 1)];
                (byte low, byte high) = lead switch
                {
                    0xE0 => ((byte)0xA0, (byte)0xBF),
                    0xED => ((byte)0x80, (byte)0x9F),
                    0xF0 => ((byte)0x90, (byte)0xBF),
                    0xF4 => ((byte)0x80, (byte)0x8F),
                    _ => ((byte)0x80, (byte)0xBF),
                };
                if (second < low || second > high)
                    return 0;
            }
            return tail;
        }
        return 0;
    }
}
