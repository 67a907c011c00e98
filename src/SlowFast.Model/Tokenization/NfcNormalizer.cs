using System.Text;

namespace SlowFast.Model.Tokenization;

/// <summary>
/// Unicode Normalization Form C (canonical decomposition, canonical reordering, canonical
/// composition), as the tokenizer's "NFC" normalizer applies it. Carried here because
/// <see cref="string.Normalize()"/> silently returns its input under InvariantGlobalization.
/// Tables: <see cref="NfcData"/>, generated from Unicode data by tools/tokenizer/gen_nfc_tables.py.
/// </summary>
internal static class NfcNormalizer
{
    // Hangul syllables compose and decompose arithmetically (Unicode 3.12).
    private const int HangulSBase = 0xAC00, HangulLBase = 0x1100, HangulVBase = 0x1161, HangulTBase = 0x11A7;
    private const int HangulLCount = 19, HangulVCount = 21, HangulTCount = 28;
    private const int HangulNCount = HangulVCount * HangulTCount, HangulSCount = HangulLCount * HangulNCount;

    /// <summary>Below this code point every character is already in NFC and never composes
    /// with its neighbour (composition second parts start at U+0300).</summary>
    private const char FirstInterestingChar = '\u0300';

    private static readonly Dictionary<int, byte> CombiningClassOf = BuildCombiningClasses();
    private static readonly Dictionary<int, (int Start, int Length)> DecompositionOf = BuildDecompositions(out DecompositionPool);
    private static readonly int[] DecompositionPool;
    private static readonly Dictionary<long, int> CompositeOf = BuildCompositions();

    public static string Normalize(string text)
    {
        int firstInteresting = text.AsSpan().IndexOfAnyInRange(FirstInterestingChar, char.MaxValue);
        if (firstInteresting < 0)
            return text;

        // Work in code points. Lone surrogates become U+FFFD, as they would on their way to UTF-8.
        var codePoints = new List<int>(text.Length + 8);
        int i = 0;
        var span = text.AsSpan();
        while (i < span.Length)
        {
            Rune.DecodeFromUtf16(span[i..], out Rune rune, out int consumed);
            AppendDecomposed(rune.Value, codePoints);
            i += consumed;
        }
        ReorderCombiningMarks(codePoints);
        Compose(codePoints);

        var builder = new StringBuilder(text.Length);
        foreach (int cp in codePoints)
            builder.Append(new Rune(cp).ToString());
        return builder.ToString();
    }

    public static int CombiningClass(int codePoint) =>
        codePoint < FirstInterestingChar ? 0 : CombiningClassOf.GetValueOrDefault(codePoint);

    private static void AppendDecomposed(int codePoint, List<int> output)
    {
        int sIndex = codePoint - HangulSBase;
        if ((uint)sIndex < HangulSCount)
        {
            output.Add(HangulLBase + sIndex / HangulNCount);
            output.Add(HangulVBase + sIndex % HangulNCount / HangulTCount);
            int t = sIndex % HangulTCount;
            if (t != 0)
                output.Add(HangulTBase + t);
            return;
        }
        if (codePoint >= FirstInterestingChar && DecompositionOf.TryGetValue(codePoint, out var slice))
        {
            for (int k = 0; k < slice.Length; k++)
                output.Add(DecompositionPool[slice.Start + k]);
            return;
        }
        output.Add(codePoint);
    }

    /// <summary>Canonical ordering: a stable sort of each run of non-starters by combining class.</summary>
    private static void ReorderCombiningMarks(List<int> codePoints)
    {
        for (int i = 1; i < codePoints.Count; i++)
        {
            int ccc = CombiningClass(codePoints[i]);
            if (ccc == 0)
                continue;
            // Insertion sort step: move it left past marks with a higher class (runs are short).
            int j = i;
            int moving = codePoints[i];
            while (j > 0)
            {
                int previousClass = CombiningClass(codePoints[j - 1]);
                if (previousClass <= ccc)
                    break;
                codePoints[j] = codePoints[j - 1];
                j--;
            }
            codePoints[j] = moving;
        }
    }

    /// <summary>Canonical composition (Unicode 3.11, D117), in place.</summary>
    private static void Compose(List<int> codePoints)
    {
        if (codePoints.Count == 0)
            return;
        int starterIndex = CombiningClass(codePoints[0]) == 0 ? 0 : -1;
        int lastClass = starterIndex == 0 ? 0 : 256;
        int write = 1;
        for (int read = 1; read < codePoints.Count; read++)
        {
            int cp = codePoints[read];
            int ccc = CombiningClass(cp);
            // Blocked from the last starter unless it is adjacent (lastClass == 0) or every
            // character in between has a lower class than this one.
            bool blocked = starterIndex < 0 || !(lastClass == 0 || lastClass < ccc);
            if (!blocked && TryCompose(codePoints[starterIndex], cp, out int composite))
            {
                codePoints[starterIndex] = composite;
                continue;
            }
            if (ccc == 0)
            {
                starterIndex = write;
            }
            lastClass = ccc;
            codePoints[write++] = cp;
        }
        codePoints.RemoveRange(write, codePoints.Count - write);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int lIndex = first - HangulLBase;
        if ((uint)lIndex < HangulLCount)
        {
            int vIndex = second - HangulVBase;
            if ((uint)vIndex < HangulVCount)
            {
                composite = HangulSBase + (lIndex * HangulVCount + vIndex) * HangulTCount;
                return true;
            }
        }
        int sIndex = first - HangulSBase;
        if ((uint)sIndex < HangulSCount && sIndex % HangulTCount == 0)
        {
            int tIndex = second - HangulTBase;
            if (tIndex > 0 && tIndex < HangulTCount)
            {
                composite = first + tIndex;
                return true;
            }
        }
        return CompositeOf.TryGetValue(PairKey(first, second), out composite);
    }

    private static long PairKey(int first, int second) => ((long)first << 21) | (uint)second;

    private static Dictionary<int, byte> BuildCombiningClasses()
    {
        var table = NfcData.CombiningClasses;
        var map = new Dictionary<int, byte>(table.Length / 2);
        for (int i = 0; i < table.Length; i += 2)
            map[table[i]] = (byte)table[i + 1];
        return map;
    }

    private static Dictionary<int, (int, int)> BuildDecompositions(out int[] pool)
    {
        var table = NfcData.Decompositions;
        var map = new Dictionary<int, (int, int)>();
        var values = new List<int>();
        for (int i = 0; i < table.Length;)
        {
            int codePoint = table[i], length = table[i + 1];
            map[codePoint] = (values.Count, length);
            for (int k = 0; k < length; k++)
                values.Add(table[i + 2 + k]);
            i += 2 + length;
        }
        pool = values.ToArray();
        return map;
    }

    private static Dictionary<long, int> BuildCompositions()
    {
        var table = NfcData.Compositions;
        var map = new Dictionary<long, int>(table.Length / 3);
        for (int i = 0; i < table.Length; i += 3)
            map[PairKey(table[i], table[i + 1])] = table[i + 2];
        return map;
    }
}
