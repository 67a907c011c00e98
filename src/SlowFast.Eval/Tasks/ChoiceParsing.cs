using System.Text;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// The multiple-choice answer parser several of the reference's tasks share (lmms-eval's port of MMMU's
/// <c>parse_multi_choice_response</c>), in the two variants the reference's task files carry. Both trim stray
/// punctuation, pad the response with spaces, look for letters written "(B)", "B " or "B.", and when no letter is
/// there and the response is longer than five words, look for an option's text. When several candidates are found
/// one variant takes the earliest, the other the latest. Letters are matched case-sensitively, as in the reference.
/// </summary>
internal static class ChoiceParsing
{
    private static readonly char[] TrimmedOneByOne = [',', '.', '!', '?', ';', ':', '\''];

    /// <summary>
    /// The variant in LongVideoBench's and NExT-QA's utilities: each way of writing a letter is tried only when the one
    /// before found nothing, and among several candidates the one occurring last wins (for "B " and "B." candidates
    /// the position of " B " is compared, which is -1 for "B." and so loses to any " B ").
    /// </summary>
    public static string ParseLastMention(string response, IReadOnlyList<string> choices, IReadOnlyList<string> optionTexts, string sampleId)
    {
        var padded = Pad(response);
        var candidates = new List<string>();
        var withBrackets = false;
        foreach (var c in choices)
            if (padded.Contains($"({c})", StringComparison.Ordinal)) { candidates.Add(c); withBrackets = true; }
        if (candidates.Count == 0)
            foreach (var c in choices)
                if (padded.Contains($"{c} ", StringComparison.Ordinal)) candidates.Add(c);
        if (candidates.Count == 0)
            foreach (var c in choices)
                if (padded.Contains($"{c}.", StringComparison.Ordinal)) candidates.Add(c);
        var byText = false;
        if (candidates.Count == 0 && WordCount(padded) > 5)
        {
            for (var i = 0; i < choices.Count; i++)
                if (padded.ToLowerInvariant().Contains(optionTexts[i].ToLowerInvariant(), StringComparison.Ordinal)) candidates.Add(choices[i]);
            byText = candidates.Count > 0;
        }

        if (candidates.Count == 0) return StableRandomChoice(choices, sampleId);
        if (candidates.Count == 1) return candidates[0];
        var positions = candidates.Select(c => byText
            ? padded.ToLowerInvariant().LastIndexOf(optionTexts[choices.ToList().IndexOf(c)].ToLowerInvariant(), StringComparison.Ordinal)
            : padded.LastIndexOf(withBrackets ? $"({c})" : $" {c} ", StringComparison.Ordinal)).ToList();
        return candidates[positions.IndexOf(positions.Max())];
    }

    /// <summary>
    /// The variant in EgoSchema's utilities: "(B)", "B " and "B." candidates are all collected (not only when the
    /// previous way found none), the one whose last occurrence starts earliest wins, and the brackets and dot are then
    /// stripped off. Option texts are compared as the annotation states them (with their "B." prefix, if any).
    /// </summary>
    public static string ParseFirstMention(string response, IReadOnlyList<string> choices, IReadOnlyList<string> optionTexts, string sampleId)
    {
        var padded = Pad(response);
        var candidates = new List<string>();
        foreach (var c in choices)
            if (padded.Contains($"({c})", StringComparison.Ordinal)) candidates.Add($"({c})");
        foreach (var c in choices)
            if (padded.Contains($"{c} ", StringComparison.Ordinal)) candidates.Add($"{c} ");
        foreach (var c in choices)
            if (padded.Contains($"{c}.", StringComparison.Ordinal)) candidates.Add($"{c}.");
        var byText = false;
        if (candidates.Count == 0 && WordCount(padded) > 5)
        {
            for (var i = 0; i < choices.Count; i++)
                if (padded.ToLowerInvariant().Contains(optionTexts[i].ToLowerInvariant(), StringComparison.Ordinal)) candidates.Add(choices[i]);
            byText = candidates.Count > 0;
        }

        if (candidates.Count == 0) return StableRandomChoice(choices, sampleId);
        var chosen = candidates[0];
        if (candidates.Count > 1)
        {
            var positions = candidates.Select(c => byText
                ? padded.ToLowerInvariant().LastIndexOf(optionTexts[choices.ToList().IndexOf(c)].ToLowerInvariant(), StringComparison.Ordinal)
                : padded.LastIndexOf(c, StringComparison.Ordinal)).ToList();
            chosen = candidates[positions.IndexOf(positions.Min())];
        }
        return chosen.Replace("(", "").Replace(")", "").Replace(".", "").Trim();
    }

    /// <summary>
    /// When nothing in the response names an option, the reference picks one with Python's <c>random.choice</c>, so a
    /// blank or off-topic answer still scores 1/N on average. We keep that expectation but make the pick a function
    /// of the sample id (FNV-1a), so reruns, resumed runs and shards agree exactly.
    /// </summary>
    public static string StableRandomChoice(IReadOnlyList<string> choices, string sampleId)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(sampleId))
            hash = (hash ^ b) * 16777619u;
        return choices[(int)(hash % (uint)choices.Count)];
    }

    /// <summary>Python's <c>for ch in ",.!?;:'": s = s.strip(ch)</c>, then one space either side.</summary>
    private static string Pad(string response)
    {
        foreach (var ch in TrimmedOneByOne) response = response.Trim(ch);
        return " " + response + " ";
    }

    private static int WordCount(string s) => s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
}
