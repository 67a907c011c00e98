using System.Buffers;
using System.Net;

namespace SlowFast.Hub;

/// <summary>
/// Downloads one blob into the cache: into <c>blobs/{etag}.incomplete</c>, resuming it with an
/// HTTP Range request when a previous attempt left one, verifying the result against the ETag,
/// and only then renaming it to <c>blobs/{etag}</c>. A connection that drops is retried (each try
/// resumes); a checksum mismatch deletes the partial file and fails.
/// </summary>
internal sealed class BlobDownloader(HubHttp http, PullOptions options)
{
    const int BufferSize = 1 << 20;

    /// <summary>
    /// Makes <paramref name="blobPath"/> exist with the verified content of <paramref name="file"/>.
    /// <paramref name="onBytes"/> gets (bytes now present, bytes that just crossed the network).
    /// </summary>
    public async Task DownloadAsync(RepoId repo, string revision, string fileLabel, FileMetadata file, string blobPath, string cacheRoot,
        Action<long, long> onBytes, CancellationToken ct)
    {
        string incomplete = blobPath + ".incomplete";
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await TryOnceAsync(repo, revision, fileLabel, file, incomplete, cacheRoot, onBytes, ct).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (attempt < options.MaxAttempts && NetworkRetry.IsTransient(e, ct))
            {
                await Task.Delay(NetworkRetry.Delay(options, attempt), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (NetworkRetry.IsTransient(e, ct))
            {
                long have = SafeLength(incomplete);
                throw new UserError($"downloading {fileLabel} failed after {attempt} attempt(s): {Describe(e)}; "
                    + $"{have} of {file.Size} bytes are kept in {incomplete} and the next pull resumes from there", e);
            }
        }

        Verify(fileLabel, file, incomplete);
        try { File.Move(incomplete, blobPath, overwrite: true); }
        catch (Exception e) when (CacheErrors.Describe(e, blobPath, cacheRoot) is { } err) { throw err; }
    }

    async Task TryOnceAsync(RepoId repo, string revision, string fileLabel, FileMetadata file, string incomplete, string cacheRoot,
        Action<long, long> onBytes, CancellationToken ct)
    {
        long have = SafeLength(incomplete);
        if (have > file.Size) { File.Delete(incomplete); have = 0; }
        if (have == file.Size) { onBytes(have, 0); return; }   // complete from an earlier try; only verify and rename are left
        CheckFreeSpace(incomplete, file.Size - have, cacheRoot);

        using var response = await WithNetworkErrors(() => http.GetFileAsync(file.DownloadUrl, have, ct), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            File.Delete(incomplete);   // the partial file does not fit the server's: start over
            throw new TransientFailure($"the server refused to resume {fileLabel} (HTTP 416)");
        }
        if (response.StatusCode == HttpStatusCode.PartialContent)
        {
            var range = response.Content.Headers.ContentRange;
            if (range?.From != have)
            {
                File.Delete(incomplete);
                throw new TransientFailure($"the server resumed {fileLabel} at the wrong offset");
            }
        }
        else if (response.StatusCode == HttpStatusCode.OK) have = 0;   // no range support: start from the beginning
        else http.EnsureSuccess(response, repo, revision, fileLabel);

        FileStream output;
        try
        {
            output = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, 1);
            output.SetLength(have);
            output.Position = have;
        }
        catch (Exception e) when (CacheErrors.Describe(e, incomplete, cacheRoot) is { } err) { throw err; }

        // Whole aligned pieces, so the blob is cached in huge pages for the process that maps it next.
        // The bytes gathered for a piece are written when the writer is disposed, after a failed try
        // too, so the next try resumes after every byte received.
        var aligned = new HugePageAlignedWriter(output);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            var body = await WithNetworkErrors(() => response.Content.ReadAsStreamAsync(ct), ct).ConfigureAwait(false);
            onBytes(have, 0);
            while (have < file.Size)
            {
                int n = await ReadWithTimeoutAsync(body, buffer, ct).ConfigureAwait(false);
                if (n == 0) break;
                if (have + n > file.Size) throw new TransientFailure($"the server sent more than the {file.Size} bytes of {fileLabel}");
                try { await aligned.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false); }
                catch (Exception e) when (CacheErrors.Describe(e, incomplete, cacheRoot) is { } err) { throw err; }
                have += n;
                onBytes(have, n);
            }
            try { await aligned.FlushAsync(ct).ConfigureAwait(false); output.Flush(flushToDisk: true); }
            catch (Exception e) when (CacheErrors.Describe(e, incomplete, cacheRoot) is { } err) { throw err; }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            try { await aligned.DisposeAsync().ConfigureAwait(false); }
            catch (Exception e) when (CacheErrors.Describe(e, incomplete, cacheRoot) is { } err) { throw err; }
        }
        if (have < file.Size)
            throw new TransientFailure($"the connection closed after {have} of {file.Size} bytes");
    }

    async Task<int> ReadWithTimeoutAsync(Stream body, byte[] buffer, CancellationToken ct)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stall.CancelAfter(options.ReadTimeout);
        try { return await body.ReadAsync(buffer.AsMemory(), stall.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TransientFailure($"no data for {options.ReadTimeout.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !ct.IsCancellationRequested)
        {
            throw new TransientFailure($"the connection broke ({e.Message})", e);
        }
    }

    static async Task<T> WithNetworkErrors<T>(Func<Task<T>> send, CancellationToken ct)
    {
        try { return await send().ConfigureAwait(false); }
        catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
        {
            throw new TransientFailure($"request failed ({e.Message})", e);
        }
    }

    /// <summary>Checks the finished .incomplete file; a mismatch deletes it so the next pull starts clean.</summary>
    static void Verify(string fileLabel, FileMetadata file, string incomplete)
    {
        long length = SafeLength(incomplete);
        string? problem = null;
        string algorithm = "size";
        if (length != file.Size) problem = $"size {length} instead of {file.Size}";
        else
        {
            using var checksum = BlobChecksum.ForEtag(file.Etag, file.Size);
            if (checksum.Algorithm != BlobChecksum.Kind.None)
            {
                algorithm = checksum.AlgorithmName;
                using var input = new FileStream(incomplete, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
                byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                try
                {
                    int n;
                    while ((n = input.Read(buffer, 0, BufferSize)) > 0) checksum.Append(buffer.AsSpan(0, n));
                }
                finally { ArrayPool<byte>.Shared.Return(buffer); }
                if (checksum.Mismatch() is { } actual) problem = $"{algorithm} {actual}, expected {checksum.Expected}";
            }
        }
        if (problem is null) return;
        HubCache.TryDelete(incomplete);
        throw new UserError($"downloaded {fileLabel} is corrupt ({problem}); the bad download was deleted, run the pull again");
    }

    static void CheckFreeSpace(string path, long needed, string cacheRoot)
    {
        long free;
        try { free = new DriveInfo(Path.GetDirectoryName(path)!).AvailableFreeSpace; }
        catch (Exception) { return; }   // unknown file system: let the writes tell
        if (free >= 0 && free < needed)
            throw new UserError($"not enough disk space for {path}: {needed} more bytes needed, {free} free under {cacheRoot}; free some space or set HF_HUB_CACHE to another disk");
    }

    static string Describe(Exception e) => e is HubError or TransientFailure ? e.Message : e.GetType().Name + ": " + e.Message;

    static long SafeLength(string path)
    {
        try { return File.Exists(path) ? new FileInfo(path).Length : 0; }
        catch (IOException) { return 0; }
    }
}
