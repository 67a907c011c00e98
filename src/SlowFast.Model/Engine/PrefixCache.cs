using SlowFast.Model.Decoder;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Engine;

/// <summary>
/// What one position of a decoder input is, for deciding whether its cached keys/values can be
/// reused: the token (a text id, or the index of a fast visual token), whether the hybrid layers'
/// cross-attention ran on it, and which visual tokens it depends on.
/// </summary>
/// <remarks>
/// A position's keys and values depend on every position up to it (causal attention), on whether
/// it read the slow tokens, and on which slow tokens those were; nothing after it changes them. So a
/// new prompt may take over a cached prompt's first L positions exactly when, for every position
/// below L, the tokens agree, the cross-attention flags agree and — wherever a position is visual or
/// read the slow tokens — the visual input is the same, and both ran in the same arithmetic.
/// </remarks>
internal sealed class PromptPositions
{
    /// <summary>Text token ids as they are; the fast visual token i as <see cref="VisualBase"/> + i.</summary>
    public required long[] Keys { get; init; }
    public required bool[] ReadsSlowTokens { get; init; }
    public required VisualTokens? Visual { get; init; }
    public required MatMulPrecision Precision { get; init; }
    public int Length => Keys.Length;

    public const long VisualBase = long.MinValue;

    public static PromptPositions For(DecoderPrompt prompt, int[] crossAttentionRows, VisualTokens? visual, MatMulPrecision precision)
    {
        var keys = new long[prompt.Length];
        int row = 0, fast = 0;
        foreach (int id in prompt.InputIds)
        {
            if (id == DecoderPrompt.ImagePlaceholder)
                for (int i = 0; i < prompt.FastTokens; i++) keys[row++] = VisualBase + fast++;
            else keys[row++] = id;
        }
        var reads = new bool[prompt.Length];
        foreach (int r in crossAttentionRows) reads[r] = true;
        return new PromptPositions { Keys = keys, ReadsSlowTokens = reads, Visual = visual, Precision = precision };
    }

    /// <summary>The first <paramref name="length"/> positions: what a cache holding only those serves.</summary>
    public PromptPositions Prefix(int length) => new()
    {
        Keys = Keys[..length], ReadsSlowTokens = ReadsSlowTokens[..length], Visual = Visual, Precision = Precision,
    };

    /// <summary>
    /// These positions followed by the first <paramref name="count"/> of <paramref name="tokens"/> (text ids
    /// that were generated and run), each reading the slow tokens or not as <paramref name="readSlowTokens"/> says.
    /// </summary>
    public PromptPositions Append(IReadOnlyList<int> tokens, int count, bool readSlowTokens)
    {
        var keys = new long[Length + count];
        var reads = new bool[Length + count];
        Keys.CopyTo(keys, 0);
        ReadsSlowTokens.CopyTo(reads, 0);
        for (int i = 0; i < count; i++) (keys[Length + i], reads[Length + i]) = (tokens[i], readSlowTokens);
        return new() { Keys = keys, ReadsSlowTokens = reads, Visual = Visual, Precision = Precision };
    }

    /// <summary>How many leading positions <paramref name="other"/>'s cached keys/values serve for this prompt.</summary>
    public int SharedPrefix(PromptPositions other)
    {
        if (MatMul.Effective(Precision) != MatMul.Effective(other.Precision)) return 0;
        bool sameVisual = ReferenceEquals(Visual, other.Visual);
        int n = Math.Min(Length, other.Length), l = 0;
        while (l < n && Keys[l] == other.Keys[l] && ReadsSlowTokens[l] == other.ReadsSlowTokens[l]
               && (sameVisual || (!ReadsSlowTokens[l] && Keys[l] >= 0)))
            l++;
        return l;
    }
}

/// <summary>
/// Finished prompts' KV caches, kept for later prompts that start the same way, bounded by bytes
/// (least recently used evicted). Used by the engine's loop thread only.
/// </summary>
internal sealed class PrefixCache(long capacityBytes)
{
    private sealed record Entry(PromptPositions Prompt, KvCache Cache, long Bytes);

    private readonly LinkedList<Entry> _entries = new();   // most recently used first

    public long CapacityBytes { get; } = capacityBytes;
    public long Bytes { get; private set; }
    public int Count => _entries.Count;

    /// <summary>
    /// The cache holding the longest prefix of <paramref name="prompt"/>, and its length (0 and null when
    /// nothing matches). The entry becomes the most recently used.
    /// </summary>
    public (KvCache? Cache, int Positions) Lookup(PromptPositions prompt)
    {
        LinkedListNode<Entry>? best = null;
        int bestLength = 0;
        for (var node = _entries.First; node != null; node = node.Next)
        {
            int l = prompt.SharedPrefix(node.Value.Prompt);
            if (l > bestLength) (best, bestLength) = (node, l);
        }
        if (best == null) return (null, 0);
        _entries.Remove(best);
        _entries.AddFirst(best);
        return (best.Value.Cache, bestLength);
    }

    /// <summary>
    /// Keeps <paramref name="cache"/>'s first <paramref name="prompt"/>.Length positions for reuse (the
    /// cache is handed over: nobody may write to it afterwards). Entries that the new one fully covers
    /// are dropped; the oldest go until the pool fits.
    /// </summary>
    public void Add(PromptPositions prompt, KvCache cache)
    {
        // The entry keeps its video's tokens alive too, so they count against the pool.
        long bytes = cache.Bytes + (prompt.Visual is { } v ? ((long)v.Fast.Length + v.Slow.Length) * sizeof(float) : 0);
        if (bytes > CapacityBytes || prompt.Length == 0 || cache.Length < prompt.Length) return;
        for (var node = _entries.First; node != null;)
        {
            var next = node.Next;
            if (node.Value.Prompt.Length <= prompt.Length && prompt.SharedPrefix(node.Value.Prompt) == node.Value.Prompt.Length)
                Remove(node);
            node = next;
        }
        while (Bytes + bytes > CapacityBytes && _entries.Last != null) Remove(_entries.Last);
        _entries.AddFirst(new Entry(prompt, cache, bytes));
        Bytes += bytes;
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _entries.Remove(node);
        Bytes -= node.Value.Bytes;
    }
}
