using System.Security.Cryptography;
using System.Text;

namespace SlowFast.Hub;

/// <summary>
/// Verifies a downloaded blob against its ETag. The hub's ETag is the SHA-256 of the content for
/// LFS files (64 hex digits) and the git blob SHA-1 for regular git files (40 hex digits: the
/// SHA-1 of "blob {length}\0" followed by the content). Any other ETag (e.g. from a mirror) is
/// not a checksum and only the size is checked.
/// </summary>
internal sealed class BlobChecksum : IDisposable
{
    public enum Kind { None, Sha256, GitBlobSha1 }

    readonly IncrementalHash? _hash;

    public Kind Algorithm { get; }
    public string Expected { get; }

    BlobChecksum(Kind kind, string expected, long length)
    {
        Algorithm = kind;
        Expected = expected;
        if (kind == Kind.Sha256) _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        else if (kind == Kind.GitBlobSha1)
        {
            _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
            _hash.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
        }
    }

    /// <summary>A checksum for a blob with this (normalized) ETag and final length.</summary>
    public static BlobChecksum ForEtag(string etag, long length)
    {
        string e = etag.ToLowerInvariant();
        if (IsHex(e, 64)) return new BlobChecksum(Kind.Sha256, e, length);
        if (IsHex(e, 40)) return new BlobChecksum(Kind.GitBlobSha1, e, length);
        return new BlobChecksum(Kind.None, e, length);
    }

    public void Append(ReadOnlySpan<byte> data) => _hash?.AppendData(data);

    /// <summary>The actual digest (lowercase hex) when it differs from the expected one, else null.</summary>
    public string? Mismatch()
    {
        if (_hash is null) return null;
        string actual = Convert.ToHexStringLower(_hash.GetHashAndReset());
        return actual == Expected ? null : actual;
    }

    public string AlgorithmName => Algorithm == Kind.Sha256 ? "SHA-256" : "git blob SHA-1";

    /// <summary>Strips the weak marker and quotes: W/"abc" and "abc" both become abc.</summary>
    public static string NormalizeEtag(string raw)
    {
        string e = raw.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal)) e = e[2..];
        return e.Trim('"');
    }

    static bool IsHex(string s, int length) => s.Length == length && s.All(Uri.IsHexDigit);

    public void Dispose() => _hash?.Dispose();
}
