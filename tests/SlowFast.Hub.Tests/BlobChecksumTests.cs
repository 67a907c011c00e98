using System.Text;

namespace SlowFast.Hub.Tests;

public class BlobChecksumTests
{
    // Reference digests from independent tools: `printf 'hello world\n' | git hash-object --stdin`
    // and `printf abc | sha256sum`.
    const string GitHelloWorld = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad";
    const string Sha256Abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    static string? Check(string etag, byte[] data, int split)
    {
        using var c = BlobChecksum.ForEtag(etag, data.Length);
        c.Append(data.AsSpan(0, split));   // appended in two parts, as a resumed download is
        c.Append(data.AsSpan(split));
        return c.Mismatch();
    }

    [Fact]
    public void Git_blob_sha1_matches_git_hash_object()
    {
        byte[] data = Encoding.ASCII.GetBytes("hello world\n");
        Assert.Null(Check(GitHelloWorld, data, 5));
        Assert.Equal(GitHelloWorld, Check(new string('0', 40), data, 5));
    }

    [Fact]
    public void Sha256_etag_matches_sha256sum_and_is_case_insensitive()
    {
        byte[] data = Encoding.ASCII.GetBytes("abc");
        Assert.Null(Check(Sha256Abc.ToUpperInvariant(), data, 1));
        Assert.Equal(Sha256Abc, Check(new string('f', 64), data, 2));
    }

    [Fact]
    public void Other_etags_are_not_checksums()
    {
        using var c = BlobChecksum.ForEtag("abc-123", 3);
        Assert.Equal(BlobChecksum.Kind.None, c.Algorithm);
        c.Append("xyz"u8);
        Assert.Null(c.Mismatch());
    }

    [Theory]
    [InlineData("\"abc\"", "abc")]
    [InlineData("W/\"abc\"", "abc")]
    [InlineData("abc", "abc")]
    [InlineData(" \"abc\" ", "abc")]
    public void Etags_lose_quotes_and_the_weak_marker(string raw, string expected) =>
        Assert.Equal(expected, BlobChecksum.NormalizeEtag(raw));
}
