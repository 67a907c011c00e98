using System.Text;

namespace SlowFast.Model.Tokenization;

/// <summary>
/// Qwen2's byte-level BPE tokenizer, loaded from a Hugging Face tokenizer.json and producing the
/// same ids as the Rust <c>tokenizers</c> library: added tokens are cut out of the raw text first,
/// the rest is NFC-normalized, split by the pre-tokenizer pattern, and each piece's UTF-8 bytes
/// are BPE-merged. Immutable after loading and safe to use from several threads.
/// </summary>
public sealed class QwenTokenizer
{
    private readonly Dictionary<string, int> _idOfToken;
    private readonly string?[] _tokenOfId;
    private readonly byte[] _bytesPool;            // decoded bytes of every id, back to back
    private readonly int[] _bytesStart;            // id -> [start, start of id + 1) in _bytesPool
    private readonly bool[] _isSpecial;
    private readonly AddedTokenSplitter _rawAddedTokens;
    private readonly AddedTokenSplitter _normalizedAddedTokens;
    private readonly bool _normalizeNfc;
    private readonly PreTokenizer _preTokenizer;
    private readonly BytePairEncoder _bpe;

    private QwenTokenizer(TokenizerDefinition definition, string path)
    {
        var vocab = definition.Vocab;
        _idOfToken = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        foreach (var added in definition.AddedTokens)
            _idOfToken[added.Content] = added.Id;

        int idCount = 0;
        foreach (int id in _idOfToken.Values)
            idCount = Math.Max(idCount, id + 1);
        _tokenOfId = new string?[idCount];
        foreach (var (token, id) in vocab)
            _tokenOfId[id] = token;
        _isSpecial = new bool[idCount];
        foreach (var added in definition.AddedTokens)
        {
            _tokenOfId[added.Id] = added.Content;
            _isSpecial[added.Id] = added.Special;
        }
        VocabSize = _tokenOfId.Count(t => t is not null);
        AddedTokens = definition.AddedTokens.ToArray();

        var addedIds = definition.AddedTokens.Select(t => t.Id).ToHashSet();
        (_bytesPool, _bytesStart) = BuildDecodedBytes(_tokenOfId, addedIds);

        _rawAddedTokens = new AddedTokenSplitter(definition.AddedTokens.Where(t => !t.Normalized));
        _normalizedAddedTokens = new AddedTokenSplitter(definition.AddedTokens.Where(t => t.Normalized));
        _normalizeNfc = definition.NormalizeNfc;
        try { _preTokenizer = PreTokenizer.ForPattern(definition.SplitPattern); }
        catch (ArgumentException e)
        {
            throw new UserError($"{path}: the pre_tokenizer's split pattern is not a regular expression .NET can read ({e.Message.Split('\n')[0]})", e);
        }
        _bpe = new BytePairEncoder(TokenOfEachByte(vocab, path), BuildMerges(definition.Merges, vocab, path));

        ImStartId = RequiredId("<|im_start|>", path);
        ImEndId = RequiredId("<|im_end|>", path);
        EndOfTextId = RequiredId("<|endoftext|>", path);
    }

    /// <summary>Loads a tokenizer.json; a missing, unreadable or malformed file is a <see cref="UserError"/>.</summary>
    public static QwenTokenizer FromFile(string tokenizerJsonPath)
    {
        var definition = TokenizerJsonReader.Read(tokenizerJsonPath);
        return new QwenTokenizer(definition, tokenizerJsonPath);
    }

    /// <summary>Regular plus added tokens (151,669 for Qwen's published tokenizer.json).</summary>
    public int VocabSize { get; }

    public int ImStartId { get; }
    public int ImEndId { get; }
    public int EndOfTextId { get; }

    public IReadOnlyList<AddedToken> AddedTokens { get; }

    public int? TokenToId(string token) => _idOfToken.TryGetValue(token, out int id) ? id : null;

    /// <summary>The vocabulary string of an id (byte-level spelling, e.g. "Ġworld"), or null.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_tokenOfId.Length ? _tokenOfId[id] : null;

    public bool IsSpecial(int id) => (uint)id < (uint)_isSpecial.Length && _isSpecial[id];

    /// <summary>Token ids of <paramref name="text"/>, without any BOS/EOS (Hugging Face's
    /// add_special_tokens = false; Qwen adds none either way). Added tokens in the text, such as
    /// "&lt;|im_start|&gt;", become their ids.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var pieces = new List<TextPiece>();
        foreach (var segment in SplitAddedTokens(_rawAddedTokens, text))
        {
            if (segment.IsAddedToken)
            {
                ids.Add(segment.AddedTokenId);
                continue;
            }
            string plain = text.Substring(segment.Start, segment.Length);
            string normalized = _normalizeNfc ? NfcNormalizer.Normalize(plain) : plain;
            foreach (var inner in SplitAddedTokens(_normalizedAddedTokens, normalized))
            {
                if (inner.IsAddedToken)
                {
                    ids.Add(inner.AddedTokenId);
                    continue;
                }
                var span = normalized.AsSpan(inner.Start, inner.Length);
                pieces.Clear();
                _preTokenizer.Split(span, pieces);
                foreach (var piece in pieces)
                    _bpe.Encode(span.Slice(piece.Start, piece.Length), ids);
            }
        }
        return ids.ToArray();
    }

    /// <summary>Text of <paramref name="ids"/>. Byte sequences that are not valid UTF-8 become
    /// U+FFFD, as in Hugging Face's decode. Unknown ids are skipped. With
    /// <paramref name="skipSpecialTokens"/>, tokens marked special (&lt;|im_end|&gt;...) are dropped.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>(ids.Length * 4);
        foreach (int id in ids)
            AppendBytes(id, skipSpecialTokens, bytes);
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    /// <summary>A decoder that turns ids into text as they are generated.</summary>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>Appends the bytes that <paramref name="id"/> stands for (nothing for unknown ids,
    /// or for special ones when skipping them).</summary>
    internal void AppendBytes(int id, bool skipSpecialTokens, List<byte> bytes)
    {
        if ((uint)id >= (uint)_tokenOfId.Length || _tokenOfId[id] is null)
            return;
        if (skipSpecialTokens && _isSpecial[id])
            return;
        int start = _bytesStart[id];
        bytes.AddRange(_bytesPool.AsSpan(start, _bytesStart[id + 1] - start));
    }

    private static List<TextSegment> SplitAddedTokens(AddedTokenSplitter splitter, string text)
    {
        var segments = new List<TextSegment>();
        if (splitter.IsEmpty)
        {
            if (text.Length > 0)
                segments.Add(new TextSegment(0, text.Length, -1));
        }
        else
        {
            splitter.Split(text, segments);
        }
        return segments;
    }

    private int RequiredId(string token, string path) =>
        TokenToId(token) ?? throw new UserError($"{path}: the tokenizer has no \"{token}\" token (not a Qwen tokenizer?)");

    /// <summary>
    /// The bytes each id decodes to, as the ByteLevel decoder does it: a token whose characters are
    /// all in the byte-level alphabet stands for those bytes; any other (an added token with
    /// characters outside it) stands for its own UTF-8.
    /// </summary>
    private static (byte[] Pool, int[] Start) BuildDecodedBytes(string?[] tokenOfId, HashSet<int> addedIds)
    {
        var pool = new List<byte>(tokenOfId.Length * 7);
        var start = new int[tokenOfId.Length + 1];
        for (int id = 0; id < tokenOfId.Length; id++)
        {
            start[id] = pool.Count;
            string? token = tokenOfId[id];
            if (token is null)
                continue;
            bool allMapped = true;
            foreach (char c in token)
            {
                int b = ByteLevelAlphabet.ToByte(c);
                if (b < 0)
                {
                    allMapped = false;
                    break;
                }
                pool.Add((byte)b);
            }
            if (!allMapped)
            {
                pool.RemoveRange(start[id], pool.Count - start[id]);
                pool.AddRange(Encoding.UTF8.GetBytes(token));
            }
        }
        start[tokenOfId.Length] = pool.Count;
        return (pool.ToArray(), start);
    }

    private static int[] TokenOfEachByte(Dictionary<string, int> vocab, string path)
    {
        var tokenOfByte = new int[256];
        for (int b = 0; b < 256; b++)
        {
            string spelling = ByteLevelAlphabet.ToChar((byte)b).ToString();
            if (!vocab.TryGetValue(spelling, out tokenOfByte[b]))
                throw new UserError($"{path}: the vocabulary lacks byte 0x{b:X2} (\"{spelling}\"); not a byte-level BPE tokenizer");
        }
        return tokenOfByte;
    }

    private static Dictionary<long, BytePairEncoder.Merge> BuildMerges(
        List<(string Left, string Right)> merges, Dictionary<string, int> vocab, string path)
    {
        var table = new Dictionary<long, BytePairEncoder.Merge>(merges.Count, BytePairEncoder.PairKeyComparer.Instance);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocab.TryGetValue(left, out int leftId) || !vocab.TryGetValue(right, out int rightId)
                || !vocab.TryGetValue(string.Concat(left, right), out int mergedId))
                throw new UserError($"{path}: merge #{rank} \"{left} {right}\" uses a token missing from the vocabulary");
            // A repeated pair ends with its last rank, as the Rust loader's map collection does.
            table[BytePairEncoder.PairKey(leftId, rightId)] = new BytePairEncoder.Merge(rank, mergedId);
        }
        return table;
    }
}
