using System.Text;

namespace SlowFast.Extensions.AI;

/// <summary>
/// The answer text as the engine streams it, cut at the first stop sequence. Text that could still
/// turn out to be the start of a stop sequence is held back (at most the longest stop sequence less
/// one character), so what has been released never has to be taken back: the streamed pieces always
/// add up to the final answer.
/// </summary>
internal sealed class StopSequenceFilter
{
    private readonly string[] _stops;
    private readonly int _holdBack;
    private readonly StringBuilder _text = new();
    private int _released;
    private int _end = -1;

    public StopSequenceFilter(IEnumerable<string>? stops)
    {
        _stops = stops?.Where(s => !string.IsNullOrEmpty(s)).Distinct(StringComparer.Ordinal).ToArray() ?? [];
        _holdBack = _stops.Length == 0 ? 0 : _stops.Max(s => s.Length) - 1;
    }

    /// <summary>True once a stop sequence has appeared; later text is ignored.</summary>
    public bool Stopped => _end >= 0;

    /// <summary>Everything the model generated up to here, the stop sequence and any text after it included.</summary>
    public string Generated => _text.ToString();

    /// <summary>Adds a generated piece; returns the text that can be released now ("" if none).</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        int searchFrom = _released;
        _text.Append(piece);
        if (_stops.Length > 0)
        {
            string tail = _text.ToString(searchFrom, _text.Length - searchFrom);
            int first = -1;
            foreach (var stop in _stops)
            {
                int at = tail.IndexOf(stop, StringComparison.Ordinal);
                if (at >= 0 && (first < 0 || at < first)) first = at;
            }
            if (first >= 0)
            {
                _end = searchFrom + first;
                return Release(_end);
            }
        }
        return Release(Math.Max(_released, _text.Length - _holdBack));
    }

    /// <summary>The rest of the answer once generation is over.</summary>
    public string Flush() => Release(Stopped ? _end : _text.Length);

    /// <summary>The whole answer (up to, not including, the stop sequence).</summary>
    public string Answer => Stopped ? _text.ToString(0, _end) : _text.ToString();

    private string Release(int upTo)
    {
        if (upTo <= _released) return "";
        string piece = _text.ToString(_released, upTo - _released);
        _released = upTo;
        return piece;
    }
}
