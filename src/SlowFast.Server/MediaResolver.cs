namespace SlowFast.Server;

/// <summary>A media URL of a request made into a local file: the file, and whether it is ours to delete.</summary>
public sealed class ResolvedMedia(string path, bool temporary) : IDisposable
{
    public string Path { get; } = path;
    public bool Temporary { get; } = temporary;

    public void Dispose()
    {
        if (!Temporary) return;
        try { File.Delete(Path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}

/// <summary>
/// Turns the URLs of <c>video_url</c> and <c>image_url</c> parts into files: <c>data:</c> URLs (base64)
/// are written to a temporary file; <c>file://</c> URLs are allowed only inside the media root, after
/// every symbolic link on the way is followed (so neither "..", nor a link, leads out of it); a file
/// uploaded with <c>POST /v1/files</c> is named by its id (<c>file-...</c>) or <c>slowfast://files/ID</c>.
/// <c>http(s)://</c> URLs are downloaded by <see cref="RemoteMedia"/> when the server allows them (<see cref="ResolveAsync"/>).
/// </summary>
public sealed class MediaResolver(string? mediaRoot, string tempDir, UploadedFiles? files = null, RemoteMedia? remote = null)
{
    private readonly string? _root = mediaRoot == null ? null : RealPath(Path.GetFullPath(mediaRoot));

    /// <summary><see cref="Resolve"/>, and <c>http(s)://</c> URLs downloaded when the server allows them (<see cref="RemoteMedia"/>).</summary>
    public async Task<ResolvedMedia> ResolveAsync(string url, string param, CancellationToken cancel)
    {
        if (remote != null && (url.StartsWith("http:", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https:", StringComparison.OrdinalIgnoreCase)))
        {
            Directory.CreateDirectory(tempDir);
            string path = Path.Combine(tempDir, "remote-" + Guid.NewGuid().ToString("N"));
            try { await remote.DownloadAsync(url, path, param, cancel); }
            catch
            {
                try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
                throw;
            }
            return new ResolvedMedia(path, temporary: true);
        }
        return Resolve(url, param);
    }

    public ResolvedMedia Resolve(string url, string param)
    {
        if (string.IsNullOrWhiteSpace(url)) throw ApiError.BadRequest("the media URL is empty", param, "invalid_url");
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) return FromDataUrl(url, param);
        if (UploadedFiles.IdOf(url) is { } id)
            return files != null && files.TryGet(id, out var uploaded)
                ? new ResolvedMedia(uploaded.Path, temporary: false)
                : throw ApiError.BadRequest($"no uploaded file '{id}' on this server (upload it with POST /v1/files)", param, "file_not_found");
        if (url.StartsWith("file:", StringComparison.OrdinalIgnoreCase)) return FromFileUrl(url, param);
        if (url.StartsWith("http:", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https:", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest("http(s) media URLs are refused on this server (start it with --allow-remote-media); send the bytes as a data: URL (base64) or a file:// URL below the server's media root", param, "unsupported_url");
        throw ApiError.BadRequest("media URLs must be data: (base64) or file:// URLs, or the id of an uploaded file", param, "unsupported_url");
    }

    private ResolvedMedia FromDataUrl(string url, string param)
    {
        int comma = url.IndexOf(',');
        if (comma < 0) throw ApiError.BadRequest("malformed data: URL (no comma)", param, "invalid_url");
        string header = url[5..comma];
        if (!header.Split(';').Skip(1).Any(p => p.Equals("base64", StringComparison.OrdinalIgnoreCase)))
            throw ApiError.BadRequest("data: URLs must be base64 (data:MIME;base64,...)", param, "invalid_url");
        byte[] bytes;
        try { bytes = Convert.FromBase64String(url[(comma + 1)..]); }
        catch (FormatException) { throw ApiError.BadRequest("the data: URL is not valid base64", param, "invalid_url"); }
        if (bytes.Length == 0) throw ApiError.BadRequest("the data: URL holds no bytes", param, "invalid_media");
        Directory.CreateDirectory(tempDir);
        string path = Path.Combine(tempDir, "upload-" + Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(path, bytes);
        return new ResolvedMedia(path, temporary: true);
    }

    private ResolvedMedia FromFileUrl(string url, string param)
    {
        if (_root == null)
            throw ApiError.BadRequest("file:// URLs are disabled on this server (start it with --media-root DIR)", param, "file_urls_disabled");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || !uri.IsFile || !(uri.Host is "" or "localhost"))
            throw ApiError.BadRequest("malformed file:// URL (expected file:///absolute/path)", param, "invalid_url");
        string path = RealPath(Path.GetFullPath(uri.LocalPath));
        if (!IsInside(path, _root))
            throw ApiError.BadRequest("file:// URLs must point inside the server's media root", param, "path_outside_media_root");
        if (Directory.Exists(path)) throw ApiError.BadRequest("the file:// URL names a directory, not a media file", param, "invalid_media");
        if (!File.Exists(path)) throw ApiError.BadRequest("no such file below the media root", param, "media_not_found");
        return new ResolvedMedia(path, temporary: false);
    }

    private static bool IsInside(string path, string root)
    {
        string r = Path.TrimEndingDirectorySeparator(root);
        return path.Length > r.Length && path.StartsWith(r, StringComparison.Ordinal) && path[r.Length] == Path.DirectorySeparatorChar;
    }

    /// <summary>An absolute path with every symbolic link along it followed (the parts that do not exist are kept as they are).</summary>
    internal static string RealPath(string fullPath)
    {
        string current = Path.GetPathRoot(fullPath)!;
        var parts = fullPath[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < parts.Length; i++)
        {
            string next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget != null)
            {
                var target = info.ResolveLinkTarget(returnFinalTarget: true);
                // A dangling link resolves to nothing: keep its own path, which then does not exist.
                next = target == null ? next : RealPath(Path.GetFullPath(target.FullName));
            }
            else if (!info.Exists)
            {
                return Path.Combine([next, .. parts[(i + 1)..]]);
            }
            current = next;
        }
        return current;
    }
}
