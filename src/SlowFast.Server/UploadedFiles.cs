using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace SlowFast.Server;

/// <summary>A file uploaded with <c>POST /v1/files</c>: OpenAI's file object, and where its bytes are.</summary>
public sealed record UploadedFile(string Id, string FileName, string Purpose, long Bytes, long CreatedAt, string Path)
{
    public JsonObject ToJson() => new()
    {
        ["id"] = Id,
        ["object"] = "file",
        ["bytes"] = Bytes,
        ["created_at"] = CreatedAt,
        ["filename"] = FileName,
        ["purpose"] = Purpose,
    };
}

/// <summary>
/// Files uploaded to the server, each kept under a directory of its own (removed with the server) by its id
/// (<c>file-</c> and 32 hex digits), never by the client's file name. A media URL names one as the bare id
/// or as <c>slowfast://files/ID</c>.
/// </summary>
public sealed class UploadedFiles(string directory)
{
    public const string UrlPrefix = "slowfast://files/";
    private readonly ConcurrentDictionary<string, UploadedFile> _files = new(StringComparer.Ordinal);

    public async Task<UploadedFile> SaveAsync(Stream content, string? fileName, string? purpose, CancellationToken cancel)
    {
        Directory.CreateDirectory(directory);
        string id = "file-" + Guid.NewGuid().ToString("N");
        string path = Path.Combine(directory, id);
        try
        {
            await using (var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                await content.CopyToAsync(output, cancel);
        }
        catch
        {
            TryDelete(path);
            throw;
        }
        var file = new UploadedFile(id, Path.GetFileName(fileName ?? "") is { Length: > 0 } name ? name : "upload", purpose ?? "user_data",
            new FileInfo(path).Length, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), path);
        _files[id] = file;
        return file;
    }

    public bool TryGet(string id, out UploadedFile file) => _files.TryGetValue(id, out file!);

    public bool Delete(string id)
    {
        if (!_files.TryRemove(id, out var file)) return false;
        TryDelete(file.Path);
        return true;
    }

    public IReadOnlyList<UploadedFile> All => _files.Values.OrderBy(f => f.CreatedAt).ThenBy(f => f.Id, StringComparer.Ordinal).ToList();

    /// <summary>The id a media URL names (<c>file-...</c> or <c>slowfast://files/file-...</c>), or null when it names no uploaded file.</summary>
    public static string? IdOf(string url) =>
        url.StartsWith(UrlPrefix, StringComparison.OrdinalIgnoreCase) ? url[UrlPrefix.Length..]
        : url.StartsWith("file-", StringComparison.Ordinal) ? url
        : null;

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
