using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Model.Caching;

/// <summary>Where a lookup found the tokens.</summary>
public enum CacheSource { None, Memory, Disk }

/// <summary>
/// Encoded videos kept for later requests: the fast and slow tokens of <see cref="VisualTokens"/>,
/// keyed by <see cref="VideoFeatureKey"/>, in memory (least recently used first out, bounded by
/// bytes) and optionally on disk (one safetensors file per key, bounded by bytes).
/// </summary>
/// <remarks>
/// <para>On disk a file is named by the key's digest and holds "fast" F32 [FastCount, Hidden],
/// "slow" F32 [SlowCount, Hidden] and metadata: format, the key's digest and text, the token plan and
/// the SHA-256 of the tensor bytes. A file is never trusted: a bad header, another key, shapes that
/// disagree with the plan or bytes that disagree with the checksum make the lookup a miss (reported
/// through <see cref="Warning"/>), and the next <see cref="Put"/> replaces the file.</para>
/// <para>Several processes may share a directory: a file is written under a name of its own in the
/// same directory and renamed over the final name, which is atomic, so a reader sees a whole old file,
/// a whole new one or none, and two writers of one key both succeed (the last rename wins; both wrote
/// the same key's tokens).</para>
/// <para>Tokens returned are shared with the cache and with other callers: do not modify them.</para>
/// <para>Thread-safe.</para>
/// </remarks>
public sealed class VideoFeatureCache
{
    /// <summary>Environment variable naming the cache directory (tests point it at a temporary folder).</summary>
    public const string DirectoryVariable = "SLOWFAST_CACHE_DIR";
    public const long DefaultMaxMemoryBytes = 2L << 30;
    public const long DefaultMaxDiskBytes = 32L << 30;
    private const string Extension = ".safetensors";
    /// <summary>Temporary files older than this are left over from a killed writer and are removed when trimming.</summary>
    private static readonly TimeSpan AbandonedTemporaryAge = TimeSpan.FromHours(1);

    private readonly object _lock = new();
    private readonly LinkedList<(string Digest, VisualTokens Tokens, long Bytes)> _recency = new();
    private readonly Dictionary<string, LinkedListNode<(string Digest, VisualTokens Tokens, long Bytes)>> _byDigest = new(StringComparer.Ordinal);
    private long _memoryBytes;

    /// <summary>The folder of the files; null: memory only.</summary>
    public string? Directory { get; }
    /// <summary>Most bytes of tokens kept in memory; an entry larger than this is kept on disk only.</summary>
    public long MaxMemoryBytes { get; }
    /// <summary>Most bytes of cache files on disk; the least recently used files go first.</summary>
    public long MaxDiskBytes { get; }
    /// <summary>Bytes of tokens held in memory now.</summary>
    public long MemoryBytes { get { lock (_lock) return _memoryBytes; } }
    /// <summary>Receives one line for each file ignored and each write that failed (the cache goes on without it).</summary>
    public Action<string>? Warning { get; set; }

    public VideoFeatureCache(string? directory, long maxMemoryBytes = DefaultMaxMemoryBytes, long maxDiskBytes = DefaultMaxDiskBytes)
    {
        if (maxMemoryBytes < 0) throw new ArgumentOutOfRangeException(nameof(maxMemoryBytes));
        if (maxDiskBytes < 0) throw new ArgumentOutOfRangeException(nameof(maxDiskBytes));
        Directory = string.IsNullOrEmpty(directory) ? null : directory;
        MaxMemoryBytes = maxMemoryBytes;
        MaxDiskBytes = maxDiskBytes;
    }

    /// <summary>
    /// The default folder: <c>$SLOWFAST_CACHE_DIR</c> if set, else <c>$XDG_CACHE_HOME/slowfast/features</c>,
    /// else <c>~/.cache/slowfast/features</c>.
    /// </summary>
    public static string DefaultDirectory()
    {
        string? own = Environment.GetEnvironmentVariable(DirectoryVariable);
        if (!string.IsNullOrEmpty(own)) return own;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "slowfast", "features");
    }

    /// <summary>The file that holds (or would hold) <paramref name="key"/>'s tokens; null without a directory.</summary>
    public string? PathFor(VideoFeatureKey key) => Directory == null ? null : Path.Combine(Directory, key.Digest + Extension);

    public bool TryGet(VideoFeatureKey key, [NotNullWhen(true)] out VisualTokens? tokens)
    {
        (tokens, _) = Lookup(key);
        return tokens != null;
    }

    /// <summary>The tokens of <paramref name="key"/> from memory, else from disk (then kept in memory too); (null, None) on a miss.</summary>
    public (VisualTokens? Tokens, CacheSource Source) Lookup(VideoFeatureKey key)
    {
        lock (_lock)
        {
            if (_byDigest.TryGetValue(key.Digest, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                return (node.Value.Tokens, CacheSource.Memory);
            }
        }
        string? path = PathFor(key);
        if (path == null || !File.Exists(path)) return (null, CacheSource.None);
        var (tokens, rejected) = ReadFile(path, key);
        if (tokens == null)
        {
            Warning?.Invoke($"{path}: ignored ({rejected}); it will be rewritten");
            return (null, CacheSource.None);
        }
        // Recently used files are the last to be trimmed.
        try { File.SetLastWriteTimeUtc(path, DateTime.UtcNow); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        Remember(key.Digest, tokens);
        return (tokens, CacheSource.Disk);
    }

    /// <summary>
    /// Keeps <paramref name="tokens"/> under <paramref name="key"/> (their intermediates, if any, are not
    /// kept). Returns false when the disk file could not be written (the reason goes to <see cref="Warning"/>);
    /// the memory copy is kept either way.
    /// </summary>
    public bool Put(VideoFeatureKey key, VisualTokens tokens)
    {
        var kept = Strip(tokens);
        Remember(key.Digest, kept);
        string? path = PathFor(key);
        if (path == null) return true;
        try
        {
            WriteFile(path, key, kept);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or UserError)
        {
            Warning?.Invoke($"{path}: not written ({e.Message})");
            return false;
        }
        Trim(path);
        return true;
    }

    /// <summary>The tokens of <paramref name="key"/>, or <paramref name="encode"/>'s, which are then kept.</summary>
    public VisualTokens GetOrAdd(VideoFeatureKey key, Func<VisualTokens> encode, out CacheSource source)
    {
        (var tokens, source) = Lookup(key);
        if (tokens != null) return tokens;
        tokens = encode();
        Put(key, tokens);
        return tokens;
    }

    /// <summary>Forgets everything held in memory (the files stay).</summary>
    public void ClearMemory()
    {
        lock (_lock)
        {
            _recency.Clear();
            _byDigest.Clear();
            _memoryBytes = 0;
        }
    }

    // ------------------------------------------------------------------ memory

    private static VisualTokens Strip(VisualTokens t) => t.Features == null && t.Projected == null ? t : new VisualTokens
    {
        Fast = t.Fast, FastCount = t.FastCount, Slow = t.Slow, SlowCount = t.SlowCount,
        Hidden = t.Hidden, IsVideo = t.IsVideo, Plan = t.Plan,
    };

    private void Remember(string digest, VisualTokens tokens)
    {
        long bytes = ((long)tokens.Fast.Length + tokens.Slow.Length) * sizeof(float);
        lock (_lock)
        {
            if (_byDigest.Remove(digest, out var old))
            {
                _recency.Remove(old);
                _memoryBytes -= old.Value.Bytes;
            }
            if (bytes > MaxMemoryBytes) return;
            _byDigest[digest] = _recency.AddFirst((digest, tokens, bytes));
            _memoryBytes += bytes;
            while (_memoryBytes > MaxMemoryBytes)
            {
                var last = _recency.Last!;
                _recency.RemoveLast();
                _byDigest.Remove(last.Value.Digest);
                _memoryBytes -= last.Value.Bytes;
            }
        }
    }

    // ------------------------------------------------------------------ disk

    private static Dictionary<string, string> Metadata(VideoFeatureKey key, VisualTokens t, string dataSha256)
    {
        static string N(long v) => v.ToString(CultureInfo.InvariantCulture);
        return new Dictionary<string, string>
        {
            ["format"] = VideoFeatureKey.Format,
            ["key"] = key.Digest,
            ["key_text"] = key.Text,
            ["frames"] = N(t.Plan.Frames),
            ["tower_side"] = N(t.Plan.TowerSide),
            ["slow_side"] = N(t.Plan.SlowSide),
            ["fast_frames"] = N(t.Plan.FastFrames),
            ["fast_side"] = N(t.Plan.FastSide),
            ["fast_count"] = N(t.FastCount),
            ["slow_count"] = N(t.SlowCount),
            ["hidden"] = N(t.Hidden),
            ["is_video"] = t.IsVideo ? "true" : "false",
            ["data_sha256"] = dataSha256,
        };
    }

    /// <summary>SHA-256 over the fast then the slow token bytes, as stored.</summary>
    private static string DataHash(ReadOnlySpan<float> fast, ReadOnlySpan<float> slow)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(MemoryMarshal.AsBytes(fast));
        sha.AppendData(MemoryMarshal.AsBytes(slow));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private void WriteFile(string path, VideoFeatureKey key, VisualTokens t)
    {
        // The arrays may be longer than the tokens they hold.
        var fast = t.Fast.AsMemory(0, t.FastCount * t.Hidden);
        var slow = t.Slow.AsMemory(0, t.SlowCount * t.Hidden);
        var specs = new List<TensorSpec>
        {
            new("fast", DType.F32, [t.FastCount, t.Hidden]),
            new("slow", DType.F32, [t.SlowCount, t.Hidden]),
        };
        var metadata = Metadata(key, t, DataHash(fast.Span, slow.Span));
        System.IO.Directory.CreateDirectory(Directory!);
        // A name no other writer uses; the rename below makes the file appear whole or not at all.
        string temporary = Path.Combine(Directory!, $"{key.Digest}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            SafetensorsWriter.Write(temporary, specs, (spec, stream) => stream.Write(MemoryMarshal.AsBytes((spec.Name == "fast" ? fast : slow).Span)), metadata);
            try
            {
                File.Move(temporary, path, overwrite: true);
            }
            catch (IOException) when (ReadFile(path, key).Tokens != null)
            {
                // Where an open file cannot be replaced (Windows), another writer's whole file for this key is as good.
            }
        }
        finally
        {
            try { File.Delete(temporary); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    /// <summary>The tokens in <paramref name="path"/> if it is a whole, uncorrupted file for <paramref name="key"/>; else why not.</summary>
    private static (VisualTokens? Tokens, string? Rejected) ReadFile(string path, VideoFeatureKey key)
    {
        try
        {
            using var file = SafetensorsFile.Open(path);
            var m = file.Metadata;
            if (m.GetValueOrDefault("format") != VideoFeatureKey.Format) return (null, $"format is '{m.GetValueOrDefault("format")}', not {VideoFeatureKey.Format}");
            if (m.GetValueOrDefault("key") != key.Digest || m.GetValueOrDefault("key_text") != key.Text)
                return (null, "it holds another key's features");
            int? Int(string name) => int.TryParse(m.GetValueOrDefault(name), NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : null;
            if (Int("frames") is not { } frames || Int("tower_side") is not { } towerSide || Int("slow_side") is not { } slowSide
                || Int("fast_frames") is not { } fastFrames || Int("fast_side") is not { } fastSide
                || Int("fast_count") is not { } fastCount || Int("slow_count") is not { } slowCount || Int("hidden") is not { } hidden)
                return (null, "its metadata lacks the token plan");
            var plan = new VisualTokenPlan(frames, towerSide, slowSide, fastFrames, fastSide);
            bool isVideo = m.GetValueOrDefault("is_video") == "true";
            if (frames < 1 || hidden < 1 || plan.FastTokens != fastCount || plan.SlowTokens != slowCount || isVideo != frames > 1)
                return (null, "its token counts disagree with its plan");
            if ((long)fastCount * hidden > Array.MaxLength || (long)slowCount * hidden > Array.MaxLength)
                return (null, "its token counts are too large");
            if (file.Entries.Count != 2) return (null, $"it holds {file.Entries.Count} tensors, not 2");
            var fast = Tensor(file, "fast", fastCount, hidden);
            var slow = Tensor(file, "slow", slowCount, hidden);
            if (fast == null || slow == null) return (null, $"its tensors are not F32 [{fastCount}, {hidden}] and [{slowCount}, {hidden}]");
            var fastValues = fast.Value.AsSpan<float>().ToArray();
            var slowValues = slow.Value.AsSpan<float>().ToArray();
            if (DataHash(fastValues, slowValues) != m.GetValueOrDefault("data_sha256")) return (null, "its bytes do not match their checksum");
            return (new VisualTokens
            {
                Fast = fastValues, FastCount = fastCount, Slow = slowValues, SlowCount = slowCount,
                Hidden = hidden, IsVideo = isVideo, Plan = plan,
            }, null);
        }
        catch (UserError e)
        {
            return (null, e.Message.StartsWith(path, StringComparison.Ordinal) ? e.Message[path.Length..].TrimStart(':', ' ') : e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, e.Message);
        }
    }

    private static TensorView? Tensor(SafetensorsFile file, string name, int rows, int hidden)
    {
        if (!file.TryGetEntry(name, out var entry) || entry.DType != DType.F32 || !entry.Shape.SequenceEqual(new long[] { rows, hidden })) return null;
        return file.View(entry);
    }

    /// <summary>
    /// Keeps the directory under <see cref="MaxDiskBytes"/>: removes the least recently used files (never
    /// <paramref name="justWritten"/>) and temporary files a killed writer left behind.
    /// </summary>
    private void Trim(string justWritten)
    {
        try
        {
            var now = DateTime.UtcNow;
            var files = new DirectoryInfo(Directory!).EnumerateFiles().ToList();
            foreach (var f in files.Where(f => f.Name.EndsWith(".tmp", StringComparison.Ordinal) || f.Name.EndsWith(".partial", StringComparison.Ordinal)))
                if (now - f.LastWriteTimeUtc > AbandonedTemporaryAge) TryDelete(f);
            var entries = files.Where(f => f.Name.EndsWith(Extension, StringComparison.Ordinal)).OrderBy(f => f.LastWriteTimeUtc).ToList();
            long total = entries.Sum(f => f.Length);
            foreach (var f in entries)
            {
                if (total <= MaxDiskBytes) break;
                if (string.Equals(f.FullName, Path.GetFullPath(justWritten), StringComparison.Ordinal)) continue;
                if (TryDelete(f)) total -= f.Length;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Warning?.Invoke($"{Directory}: could not trim the cache ({e.Message})");
        }
    }

    private static bool TryDelete(FileInfo f)
    {
        try { f.Delete(); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
