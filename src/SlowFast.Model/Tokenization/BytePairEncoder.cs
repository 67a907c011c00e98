using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace SlowFast.Model.Tokenization;

/// <summary>
/// Byte-level BPE: a piece's UTF-8 bytes start as one token each (the byte-level alphabet is in
/// the vocabulary), then the adjacent pair with the lowest merge rank is merged, leftmost first,
/// until no adjacent pair has a merge. Equivalent to the Rust tokenizer's priority-queue loop;
/// O(n log n) in the piece's length, with a cache of recent pieces.
/// </summary>
internal sealed class BytePairEncoder
{
    /// <summary>Pieces up to this many chars are cached (longer ones rarely repeat).</summary>
    private const int MaxCachedPieceLength = 128;
    private const int MaxCacheEntries = 100_000;

    private readonly int[] _tokenOfByte;
    private readonly Dictionary<long, Merge> _merges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private int _cacheAdds;

    [ThreadStatic] private static Workspace? t_workspace;

    /// <param name="tokenOfByte">For each byte value, the id of its one-character token.</param>
    /// <param name="merges">Keyed by <see cref="PairKey"/>: the merge's rank and resulting id.</param>
    public BytePairEncoder(int[] tokenOfByte, Dictionary<long, Merge> merges)
    {
        _tokenOfByte = tokenOfByte;
        _merges = merges;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public readonly record struct Merge(int Rank, int MergedId);

    public static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// Hashes pair keys well. long's own hash (high ^ low half) sends every pair of equal ids,
    /// and many others, to the same bucket, which made loading and merging quadratic.
    /// </summary>
    public sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public static readonly PairKeyComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long key)
        {
            ulong h = (ulong)key * 0x9E3779B97F4A7C15UL;  // Fibonacci hashing: mix, keep the high bits
            return (int)(h >> 32);
        }
    }

    /// <summary>Appends the token ids of one pre-tokenized piece.</summary>
    public void Encode(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (piece.IsEmpty)
            return;
        bool cacheable = piece.Length <= MaxCachedPieceLength;
        if (cacheable && _cacheBySpan.TryGetValue(piece, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }

        int start = ids.Count;
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rented = null;
        Span<byte> bytes = maxBytes <= 512 ? stackalloc byte[maxBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        int byteCount = Encoding.UTF8.GetBytes(piece, bytes);
        MergeBytes(bytes[..byteCount], ids);
        if (rented is not null)
            ArrayPool<byte>.Shared.Return(rented);

        if (cacheable)
        {
            // Bounded memory: start over when full (an approximate count is enough).
            if (Interlocked.Increment(ref _cacheAdds) > MaxCacheEntries)
            {
                _cache.Clear();
                Interlocked.Exchange(ref _cacheAdds, 0);
            }
            _cache.TryAdd(piece.ToString(), ids.GetRange(start, ids.Count - start).ToArray());
        }
    }

    private void MergeBytes(ReadOnlySpan<byte> bytes, List<int> ids)
    {
        int n = bytes.Length;
        if (n == 1)
        {
            ids.Add(_tokenOfByte[bytes[0]]);
            return;
        }

        var work = t_workspace ??= new Workspace();
        work.EnsureCapacity(n);
        int[] token = work.Token, next = work.Next, prev = work.Prev;
        var queue = work.Queue;
        queue.Clear();

        // Symbols form a doubly linked list over positions; a merged-away symbol gets token -1.
        for (int i = 0; i < n; i++)
        {
            token[i] = _tokenOfByte[bytes[i]];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        for (int i = 0; i + 1 < n; i++)
            EnqueuePair(queue, i, token[i], token[i + 1]);

        // Lowest rank first, then leftmost: the priority packs (rank, position).
        while (queue.TryDequeue(out int left, out long priority))
        {
            int right = next[left];
            if (token[left] < 0 || right < 0)
                continue;
            int rank = (int)(priority >> 32);
            if (!_merges.TryGetValue(PairKey(token[left], token[right]), out var merge) || merge.Rank != rank)
                continue; // stale: one side changed since this pair was queued

            token[left] = merge.MergedId;
            token[right] = -1;
            int afterRight = next[right];
            next[left] = afterRight;
            if (afterRight >= 0)
                prev[afterRight] = left;

            if (prev[left] >= 0)
                EnqueuePair(queue, prev[left], token[prev[left]], token[left]);
            if (afterRight >= 0)
                EnqueuePair(queue, left, token[left], token[afterRight]);
        }

        for (int i = 0; i >= 0; i = next[i])
            ids.Add(token[i]);
    }

    private void EnqueuePair(PriorityQueue<int, long> queue, int position, int left, int right)
    {
        if (_merges.TryGetValue(PairKey(left, right), out var merge))
            queue.Enqueue(position, ((long)merge.Rank << 32) | (uint)position);
    }

    /// <summary>Per-thread scratch arrays, grown on demand, so encoding allocates little.</summary>
    private sealed class Workspace
    {
        public int[] Token = new int[64], Next = new int[64], Prev = new int[64];
        public readonly PriorityQueue<int, long> Queue = new();

        public void EnsureCapacity(int n)
        {
            if (Token.Length >= n)
                return;
            int size = Math.Max(n, Token.Length * 2);
            Token = new int[size];
            Next = new int[size];
            Prev = new int[size];
        }
    }
}
