using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SlowFast.Hub.Tests;

/// <summary>One repository the fake hub serves.</summary>
public sealed class FakeRepo
{
    public required string Id { get; init; }
    public string Commit { get; init; } = RandomSha1();
    public Dictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);
    /// <summary>Files stored with Git LFS: the hub redirects them to the CDN and their ETag is the SHA-256.</summary>
    public HashSet<string> LfsFiles { get; } = new(StringComparer.Ordinal);
    /// <summary>Tags/branches other than "main" that resolve to <see cref="Commit"/>.</summary>
    public HashSet<string> Tags { get; } = new(StringComparer.Ordinal);
    /// <summary>When set, the repo is private: requests need "Authorization: Bearer {token}".</summary>
    public string? RequiredToken { get; init; }

    public static string RandomSha1() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));

    /// <summary>The ETag the hub sends (unquoted): SHA-256 for LFS files, git blob SHA-1 otherwise.</summary>
    public string EtagOf(string file) => LfsFiles.Contains(file) ? Sha256(Files[file]) : GitBlobSha1(Files[file]);

    public static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static string GitBlobSha1(byte[] data) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {data.Length}\0"), .. data]));
}

/// <summary>A request the fake hub received.</summary>
public sealed record LoggedRequest(string Method, string Host, string Path, string? Range, string? Authorization);

/// <summary>
/// A loopback HTTP server imitating the hub's endpoints: model info, resolve (with a 302 to a
/// "CDN" on another host name for LFS files), Range requests, ETags, auth and error codes, plus
/// fault modes (connection cut mid-file, corrupted bytes, slow transfers).
/// The hub is http://127.0.0.1:{port}; the CDN is http://localhost:{port}, a different host
/// to which the client must not send its token.
/// </summary>
public sealed class FakeHub : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly ConcurrentDictionary<string, FakeRepo> _repos = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, int> _cutsLeft = new(StringComparer.Ordinal);

    public ConcurrentQueue<LoggedRequest> Requests { get; } = new();
    public int Port { get; private set; }
    public string Endpoint => $"http://127.0.0.1:{Port}";
    public string CdnBase => $"http://localhost:{Port}";

    /// <summary>Bytes of a file served before the connection is cut (with <see cref="CutFile"/>).</summary>
    public ConcurrentDictionary<string, long> CutAfter { get; } = new(StringComparer.Ordinal);
    /// <summary>Files (by name) whose bytes are served with one byte flipped, under the true ETag.</summary>
    public ConcurrentDictionary<string, bool> CorruptFiles { get; } = new(StringComparer.Ordinal);
    /// <summary>Hold every request this long before answering (a hub that accepts connections but does not answer).</summary>
    public TimeSpan AnswerDelay { get; set; } = TimeSpan.Zero;
    /// <summary>Answer ranged requests with the whole file (200), like a server without Range support.</summary>
    public bool IgnoreRange { get; set; }
    /// <summary>Pause between 4 KB chunks of a download, to make transfers overlap in concurrency tests.</summary>
    public TimeSpan ChunkDelay { get; set; } = TimeSpan.Zero;

    FakeHub(WebApplication app) => _app = app;

    public static async Task<FakeHub> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var hub = new FakeHub(app);
        app.Run(hub.HandleAsync);
        await app.StartAsync();
        hub.Port = new Uri(app.Urls.First()).Port;
        return hub;
    }

    public void Add(FakeRepo repo) => _repos[repo.Id] = repo;

    /// <summary>Cuts the connection the next <paramref name="times"/> downloads of <paramref name="file"/> after <paramref name="bytes"/> bytes.</summary>
    public void CutFile(string file, long bytes, int times = 1)
    {
        CutAfter[file] = bytes;
        _cutsLeft[file] = times;
    }

    public IEnumerable<LoggedRequest> Downloads(string file) =>
        Requests.Where(r => r.Method == "GET" && (r.Path.EndsWith("/" + file, StringComparison.Ordinal) || r.Path.EndsWith("/cdn/" + file, StringComparison.Ordinal)));

    async Task HandleAsync(HttpContext ctx)
    {
        var req = ctx.Request;
        string path = Uri.UnescapeDataString(req.Path.Value ?? "");
        string? auth = req.Headers.Authorization.Count > 0 ? req.Headers.Authorization.ToString() : null;
        Requests.Enqueue(new LoggedRequest(req.Method, req.Host.Host, path, req.Headers.Range.Count > 0 ? req.Headers.Range.ToString() : null, auth));
        if (AnswerDelay > TimeSpan.Zero)
        {
            try { await Task.Delay(AnswerDelay, ctx.RequestAborted); } catch (OperationCanceledException) { return; }
        }

        if (path.StartsWith("/cdn/", StringComparison.Ordinal)) { await ServeCdnAsync(ctx, path); return; }
        if (path.StartsWith("/api/models/", StringComparison.Ordinal)) { await ServeModelInfoAsync(ctx, path["/api/models/".Length..], auth); return; }

        // /{org}/{name}/resolve/{revision}/{file...}
        var parts = path.TrimStart('/').Split('/', 5);
        if (parts.Length == 5 && parts[2] == "resolve") { await ServeResolveAsync(ctx, parts[0] + "/" + parts[1], parts[3], parts[4], auth); return; }
        ctx.Response.StatusCode = 404;
    }

    /// <summary>Finds the repo and checks auth and revision; writes the error and returns null on failure.</summary>
    FakeRepo? Authorize(HttpContext ctx, string repoId, string revision, string? auth)
    {
        if (!_repos.TryGetValue(repoId, out var repo))
        {
            // Like the hub: anonymous callers get 401 for repos that do not exist (no leak of private names).
            Error(ctx, auth is null ? 401 : 404, "RepoNotFound", "Repository not found");
            return null;
        }
        if (repo.RequiredToken is not null && auth != "Bearer " + repo.RequiredToken)
        {
            Error(ctx, 401, "RepoNotFound", "Invalid credentials");
            return null;
        }
        if (revision != "main" && revision != repo.Commit && !repo.Tags.Contains(revision))
        {
            Error(ctx, 404, "RevisionNotFound", "Invalid rev id");
            return null;
        }
        return repo;
    }

    static void Error(HttpContext ctx, int status, string code, string message)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.Headers["X-Error-Code"] = code;
        ctx.Response.Headers["X-Error-Message"] = message;
    }

    async Task ServeModelInfoAsync(HttpContext ctx, string rest, string? auth)
    {
        // {org}/{name}/revision/{revision}
        var parts = rest.Split('/', 4);
        if (parts.Length != 4 || parts[2] != "revision") { ctx.Response.StatusCode = 404; return; }
        var repo = Authorize(ctx, parts[0] + "/" + parts[1], parts[3], auth);
        if (repo is null) return;
        bool blobs = ctx.Request.Query["blobs"] == "true";
        var siblings = repo.Files.Keys.Order(StringComparer.Ordinal).Select(f =>
        {
            var entry = new Dictionary<string, object> { ["rfilename"] = f };
            if (blobs)
            {
                entry["size"] = repo.Files[f].Length;
                if (repo.LfsFiles.Contains(f))
                    entry["lfs"] = new Dictionary<string, object> { ["sha256"] = repo.EtagOf(f), ["size"] = repo.Files[f].Length };
            }
            return entry;
        }).ToList();
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["id"] = repo.Id, ["sha"] = repo.Commit, ["private"] = repo.RequiredToken is not null, ["siblings"] = siblings,
        }));
    }

    async Task ServeResolveAsync(HttpContext ctx, string repoId, string revision, string file, string? auth)
    {
        var repo = Authorize(ctx, repoId, revision, auth);
        if (repo is null) return;
        if (!repo.Files.TryGetValue(file, out var data)) { Error(ctx, 404, "EntryNotFound", "Entry not found"); return; }
        var headers = ctx.Response.Headers;
        headers["X-Repo-Commit"] = repo.Commit;
        if (repo.LfsFiles.Contains(file))
        {
            headers["X-Linked-Etag"] = $"\"{repo.EtagOf(file)}\"";
            headers["X-Linked-Size"] = data.Length.ToString();
            headers.ETag = $"W/\"{FakeRepo.RandomSha1()}\"";   // the redirect's own ETag: not the file's
            headers.Location = $"{CdnBase}/cdn/{file}?repo={Uri.EscapeDataString(repoId)}&sig=abc";
            ctx.Response.StatusCode = 302;
            return;
        }
        headers.ETag = $"\"{repo.EtagOf(file)}\"";
        await ServeBytesAsync(ctx, file, data);
    }

    async Task ServeCdnAsync(HttpContext ctx, string path)
    {
        string file = path["/cdn/".Length..];
        string repoId = ctx.Request.Query["repo"].ToString();
        if (!_repos.TryGetValue(repoId, out var repo) || !repo.Files.TryGetValue(file, out var data)) { ctx.Response.StatusCode = 404; return; }
        ctx.Response.Headers.ETag = $"\"{repo.EtagOf(file)}\"";
        await ServeBytesAsync(ctx, file, data);
    }

    /// <summary>Sends a file, honouring "Range: bytes=N-", and applying the fault modes.</summary>
    async Task ServeBytesAsync(HttpContext ctx, string file, byte[] data)
    {
        long start = 0;
        string range = ctx.Request.Headers.Range.ToString();
        if (!IgnoreRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-') && long.TryParse(range[6..^1], out long from))
        {
            if (from >= data.Length)
            {
                ctx.Response.StatusCode = 416;
                ctx.Response.Headers.ContentRange = $"bytes */{data.Length}";
                return;
            }
            start = from;
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {start}-{data.Length - 1}/{data.Length}";
        }
        ctx.Response.Headers.AcceptRanges = "bytes";
        ctx.Response.ContentLength = data.Length - start;
        ctx.Response.ContentType = "application/octet-stream";
        if (HttpMethods.IsHead(ctx.Request.Method)) return;

        byte[] body = data[(int)start..];
        if (CorruptFiles.ContainsKey(file)) body[body.Length / 2] ^= 0x5A;

        long cutAt = long.MaxValue;
        if (CutAfter.TryGetValue(file, out long cut) && _cutsLeft.AddOrUpdate(file, 0, (_, left) => left - 1) >= 0 && cut > start)
            cutAt = cut - start;

        const int Chunk = 4096;
        for (int offset = 0; offset < body.Length; offset += Chunk)
        {
            int n = Math.Min(Chunk, body.Length - offset);
            if (offset + n > cutAt)
            {
                await ctx.Response.Body.WriteAsync(body.AsMemory(offset, (int)(cutAt - offset)));
                await ctx.Response.Body.FlushAsync();
                // Give the client time to read what was sent: a reset discards unread data in its socket buffer.
                await Task.Delay(150);
                ctx.Abort();   // drop the connection mid-file
                return;
            }
            await ctx.Response.Body.WriteAsync(body.AsMemory(offset, n));
            if (ChunkDelay > TimeSpan.Zero) { await ctx.Response.Body.FlushAsync(); await Task.Delay(ChunkDelay); }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
