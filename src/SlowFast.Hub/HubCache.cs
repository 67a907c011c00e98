using System.Text.RegularExpressions;

namespace SlowFast.Hub;

/// <summary>
/// The standard Hugging Face hub cache layout, shared with the Python tools:
/// <code>
/// {root}/models--org--name/blobs/{etag}                 file contents, named by ETag
/// {root}/models--org--name/blobs/{etag}.incomplete      a download in progress (resumable)
/// {root}/models--org--name/snapshots/{commit}/{file}    relative symlink to ../../blobs/{etag}
/// {root}/models--org--name/refs/{revision}              the commit sha a branch/tag pointed to
/// {root}/.locks/models--org--name/{etag}.lock           held while a blob is being downloaded
/// </code>
/// Everything is written to a temporary name first and renamed into place, so a name in the
/// cache always means a complete file.
/// </summary>
public sealed partial class HubCache
{
    public HubCache(string root) => Root = Path.GetFullPath(root);

    public string Root { get; }

    public string RepoFolder(RepoId repo) => Path.Combine(Root, repo.CacheFolderName);
    public string BlobPath(RepoId repo, string etag) => Path.Combine(RepoFolder(repo), "blobs", etag);
    public string IncompletePath(RepoId repo, string etag) => BlobPath(repo, etag) + ".incomplete";
    public string SnapshotFolder(RepoId repo, string commit) => Path.Combine(RepoFolder(repo), "snapshots", commit);
    public string SnapshotFile(RepoId repo, string commit, string file) => Path.Combine(SnapshotFolder(repo, commit), file);
    public string RefPath(RepoId repo, string revision) => Path.Combine(RepoFolder(repo), "refs", revision);
    public string LockPath(RepoId repo, string etag) => Path.Combine(Root, ".locks", repo.CacheFolderName, etag + ".lock");

    /// <summary>True for a full 40-hex-digit commit sha (used as a revision, it needs no ref file).</summary>
    public static bool IsCommitSha(string revision) => CommitSha().IsMatch(revision);

    /// <summary>The commit a revision resolves to in the cache, or null when the cache does not know it.</summary>
    public string? ResolveCommit(RepoId repo, string revision)
    {
        if (IsCommitSha(revision)) return revision;
        string refPath = RefPath(repo, CheckRevision(revision));
        try
        {
            if (!File.Exists(refPath)) return null;
            string commit = File.ReadAllText(refPath).Trim();
            return IsCommitSha(commit) ? commit : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Records that <paramref name="revision"/> (a branch or tag) points at <paramref name="commit"/>.</summary>
    public void WriteRef(RepoId repo, string revision, string commit)
    {
        if (revision == commit) return;
        string path = RefPath(repo, CheckRevision(revision));
        // The Python client writes the bare sha with no newline; do the same so both read each other's refs.
        if (File.Exists(path) && File.ReadAllText(path) == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temp = TempNameBeside(path);
        try
        {
            File.WriteAllText(temp, commit);
            File.Move(temp, path, overwrite: true);
        }
        finally { TryDelete(temp); }
    }

    /// <summary>
    /// Points <c>snapshots/{commit}/{file}</c> at <c>blobs/{etag}</c> with a relative symlink
    /// (a copy where the file system has no symlinks), replacing any previous entry atomically.
    /// </summary>
    public void LinkSnapshotFile(RepoId repo, string commit, string file, string etag)
    {
        string link = SnapshotFile(repo, commit, CheckRepoFilePath(file));
        string blob = BlobPath(repo, etag);
        string folder = Path.GetDirectoryName(link)!;
        Directory.CreateDirectory(folder);
        string target = Path.GetRelativePath(folder, blob);
        string temp = TempNameBeside(link);
        try
        {
            try { File.CreateSymbolicLink(temp, target); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                if (CacheErrors.IsNotWritable(e) || (e is IOException io && CacheErrors.IsDiskFull(io))) throw;
                File.Copy(blob, temp, overwrite: true);   // no symlink support: fall back to a copy, as huggingface_hub does
            }
            File.Move(temp, link, overwrite: true);
        }
        finally { TryDelete(temp); }
    }

    /// <summary>True when the snapshot entry exists and leads to an existing file.</summary>
    public static bool SnapshotEntryExists(string path) => File.Exists(path);   // File.Exists follows symlinks

    /// <summary>
    /// Validates a file path taken from the hub's file list before it becomes a path on disk:
    /// relative, forward slashes, no "." or ".." segments.
    /// </summary>
    public static string CheckRepoFilePath(string file)
    {
        if (string.IsNullOrEmpty(file) || file.StartsWith('/') || file.Contains('\\') || file.Contains('\0')
            || file.Split('/').Any(s => s is "" or "." or ".."))
            throw new UserError($"the hub listed an unsafe file name '{file}'; refusing to write it");
        return file;
    }

    /// <summary>Validates a branch/tag name before it becomes a path under refs/.</summary>
    public static string CheckRevision(string revision)
    {
        if (string.IsNullOrWhiteSpace(revision) || revision.StartsWith('/') || revision.Contains('\\') || revision.Contains('\0')
            || revision.Split('/').Any(s => s is "" or "." or ".."))
            throw new UserError($"'{revision}' is not a valid revision (a branch, tag or commit sha)");
        return revision;
    }

    internal static string TempNameBeside(string path) =>
        Path.Combine(Path.GetDirectoryName(path)!, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N")[..12] + ".tmp");

    internal static void TryDelete(string path)
    {
        try { File.Delete(path); }   // no error when it is already gone
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitSha();
}
