namespace SlowFast.Hub;

/// <summary>
/// Turns file-system failures while writing the cache into one-line <see cref="UserError"/>s:
/// a full disk and a read-only or unwritable cache are things the user can fix.
/// </summary>
internal static class CacheErrors
{
    const int ENOSPC = 28, EDQUOT = 122, EROFS = 30, EACCES = 13, EPERM = 1;
    const int WindowsDiskFull = unchecked((int)0x80070070), WindowsHandleDiskFull = unchecked((int)0x80070027);

    internal static bool IsDiskFull(IOException e) =>
        e.HResult is ENOSPC or EDQUOT or WindowsDiskFull or WindowsHandleDiskFull
        || e.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase);

    internal static bool IsNotWritable(Exception e) =>
        e is UnauthorizedAccessException
        || (e is IOException io && (io.HResult is EROFS or EACCES or EPERM
            || io.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase)
            || io.Message.Contains("Operation not permitted", StringComparison.OrdinalIgnoreCase)));

    /// <summary>
    /// A UserError for a failure writing <paramref name="path"/> in the cache at <paramref name="cacheRoot"/>,
    /// or null when the failure is not one we can explain (the caller rethrows it).
    /// </summary>
    internal static UserError? Describe(Exception e, string path, string cacheRoot)
    {
        if (e is IOException io && IsDiskFull(io))
            return new UserError($"disk full while writing {path}: free some space (the partial download is kept and resumes on the next pull), or set HF_HUB_CACHE to another disk", e);
        if (IsNotWritable(e))
            return new UserError($"the Hugging Face cache {cacheRoot} is not writable ({FirstLine(e.Message)}): set HF_HUB_CACHE or --cache-dir to a writable folder, or use --offline with a cache that already holds the model", e);
        return null;
    }

    static string FirstLine(string s)
    {
        int nl = s.IndexOfAny(['\r', '\n']);
        return nl < 0 ? s : s[..nl];
    }
}
