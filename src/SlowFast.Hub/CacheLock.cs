namespace SlowFast.Hub;

/// <summary>
/// An exclusive lock on a file under {cache}/.locks. On Unix .NET takes it with flock(), which is
/// also what the Python filelock package uses, so a .NET pull and a Python download of the same
/// blob wait for each other instead of writing the same .incomplete file.
/// </summary>
internal sealed class CacheLock : IDisposable
{
    readonly FileStream _stream;

    CacheLock(FileStream stream) => _stream = stream;

    /// <summary>Waits (cancellably) until the lock is free; <paramref name="onWaiting"/> runs once if it is not free at first.</summary>
    public static async Task<CacheLock> AcquireAsync(string path, Action? onWaiting, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        bool reported = false;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                return new CacheLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None));
            }
            catch (IOException e) when (!CacheErrors.IsNotWritable(e) && !CacheErrors.IsDiskFull(e) && e is not DirectoryNotFoundException)
            {
                // Held by another pull (in this process or another one).
                if (!reported) { onWaiting?.Invoke(); reported = true; }
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
