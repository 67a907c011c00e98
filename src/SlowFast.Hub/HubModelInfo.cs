using System.Text.Json;

namespace SlowFast.Hub;

/// <summary>One file of a repository as the model info endpoint lists it.</summary>
public sealed record RepoFile(string Path, long? Size, string? LfsSha256);

/// <summary>The answer of <c>GET /api/models/{repo}/revision/{revision}?blobs=true</c>: the commit and its files.</summary>
public sealed record HubModelInfo(string Commit, IReadOnlyList<RepoFile> Files)
{
    internal static HubModelInfo Parse(RepoId repo, string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("sha", out var sha) || sha.ValueKind != JsonValueKind.String
                || !HubCache.IsCommitSha(sha.GetString()!))
                throw new UserError($"the hub's model info for {repo} has no commit sha");
            var files = new List<RepoFile>();
            if (root.TryGetProperty("siblings", out var siblings) && siblings.ValueKind == JsonValueKind.Array)
            {
                foreach (var s in siblings.EnumerateArray())
                {
                    if (!s.TryGetProperty("rfilename", out var name) || name.ValueKind != JsonValueKind.String) continue;
                    long? size = s.TryGetProperty("size", out var sz) && sz.TryGetInt64(out long n) ? n : null;
                    string? lfsSha = null;
                    if (s.TryGetProperty("lfs", out var lfs) && lfs.ValueKind == JsonValueKind.Object)
                    {
                        if (lfs.TryGetProperty("sha256", out var h) && h.ValueKind == JsonValueKind.String) lfsSha = h.GetString();
                        if (lfs.TryGetProperty("size", out var ls) && ls.TryGetInt64(out long ln)) size = ln;
                    }
                    files.Add(new RepoFile(name.GetString()!, size, lfsSha));
                }
            }
            return new HubModelInfo(sha.GetString()!, files);
        }
        catch (JsonException e)
        {
            throw new UserError($"the hub's model info for {repo} is not valid JSON ({FirstLine(e.Message)})", e);
        }
        catch (InvalidOperationException e)
        {
            // An escaped lone surrogate ("\ud800") is refused only when the string is read.
            throw new UserError($"the hub's model info for {repo} holds text that is not valid Unicode ({FirstLine(e.Message)})", e);
        }
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
