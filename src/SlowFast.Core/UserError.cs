using System.Text;

namespace SlowFast;

/// <summary>
/// An error the user can fix: bad input, a wrong file, a malformed checkpoint. The command line
/// prints <see cref="Exception.Message"/> as one line and exits non-zero, without a stack trace.
/// Messages name the file (or request) and the problem.
/// </summary>
/// <remarks>
/// Messages quote names and values from the files and requests they are about, which a stranger may have
/// written. A line break or other control character in them is shown escaped (<see cref="OneLine"/>), so the
/// message stays one printable line and cannot move a terminal's cursor.
/// </remarks>
public class UserError : Exception
{
    public UserError(string message) : base(OneLine(message)) { }
    public UserError(string message, Exception inner) : base(OneLine(message), inner) { }

    /// <summary>
    /// <paramref name="text"/> with control characters (C0, DEL, C1) and the Unicode line and paragraph
    /// separators escaped: "\n", "\r", "\t", else "\uXXXX". Text without them is returned as it is.
    /// </summary>
    public static string OneLine(string text)
    {
        if (!text.Any(NeedsEscape)) return text;
        var sb = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (!NeedsEscape(c)) sb.Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else sb.Append("\\u").Append(((int)c).ToString("x4"));
        }
        return sb.ToString();
    }

    private static bool NeedsEscape(char c) => c < 0x20 || c is >= '\x7f' and <= '\x9f' or '\u2028' or '\u2029';
}
