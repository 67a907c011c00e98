namespace SlowFast.Hub;

/// <summary>
/// Pulls model snapshots from the Hugging Face hub into the standard cache, and resolves a
/// <c>--model</c> argument (a directory or a hub id) to a local model folder.
/// </summary>
public sealed class HubClient : IDisposable
{
    readonly HubHttp _http;
    readonly PullOptions _options;
    readonly HashSet<string> _writableRepoFolders = new(StringComparer.Ordinal);

    /// <param name="handler">Overrides the HTTP stack (tests); null uses a SocketsHttpHandler.</param>
    public HubClient(PullOptions options, HttpMessageHandler? handler = null, Func<string, string?>? environment = null)
    {
        _options = options;
        Settings = options.ToSettings(environment);
        Cache = new HubCache(Settings.CacheDirectory);
        _http = new HubHttp(Settings, options.ReadTimeout, handler);
    }

    public HubSettings Settings { get; }
    public HubCache Cache { get; }

    string Revision => string.IsNullOrWhiteSpace(_options.Revision) ? PullOptions.DefaultRevision : _options.Revision!;

    /// <summary>Pulls a model's files (see <see cref="ModelFiles"/>); returns its snapshot folder.</summary>
    public static async Task<string> PullAsync(string repoId, PullOptions options, IProgress<PullProgress>? progress, CancellationToken ct)
    {
        using var client = new HubClient(options);
        return await client.PullAsync(repoId, progress, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Returns a directory argument as it is; for a hub id, the cached snapshot when it is complete
    /// (no network), else pulls it (unless offline, which fails naming what is missing).
    /// </summary>
    public static async Task<string> ResolveModelAsync(string idOrDirectory, PullOptions options, IProgress<PullProgress>? progress, CancellationToken ct)
    {
        if (LocalDirectory(idOrDirectory) is { } dir) return dir;
        using var client = new HubClient(options);
        return await client.ResolveModelAsync(idOrDirectory, progress, ct).ConfigureAwait(false);
    }

    /// <summary>Synchronous <see cref="ResolveModelAsync(string, PullOptions, IProgress{PullProgress}?, CancellationToken)"/>.</summary>
    public static string ResolveModel(string idOrDirectory, PullOptions options, IProgress<PullProgress>? progress = null, CancellationToken ct = default) =>
        ResolveModelAsync(idOrDirectory, options, progress, ct).GetAwaiter().GetResult();

    public async Task<string> ResolveModelAsync(string idOrDirectory, IProgress<PullProgress>? progress, CancellationToken ct)
    {
        if (LocalDirectory(idOrDirectory) is { } dir) return dir;
        if (LooksLikePath(idOrDirectory))
            throw new UserError($"model directory {idOrDirectory} does not exist");
        if (!idOrDirectory.Contains('/') || !RepoId.TryParse(idOrDirectory, out var repo))
            throw new UserError($"'{idOrDirectory}' is neither a model directory nor a hub model id (org/name)");

        if (FindCachedSnapshot(repo, out var missing) is { } snapshot) return snapshot;
        if (Settings.Offline)
            throw new UserError(OfflineMessage(repo, missing));
        try
        {
            return await PullAsync(repo.Value, progress, ct).ConfigureAwait(false);
        }
        catch (HubUnreachable e)
        {
            throw new UserError($"{e.Message}. The cache {Cache.Root} lacks {repo}: {string.Join(", ", missing)}; "
                + $"run `slowfast pull {repo}` once with network access, or pass --model a local model directory", e);
        }
    }

    /// <summary>
    /// The complete snapshot the cache holds for this repo at the configured revision, or null;
    /// <paramref name="missing"/> then says what is absent (for messages).
    /// </summary>
    public string? FindCachedSnapshot(RepoId repo, out List<string> missing)
    {
        string? commit = Cache.ResolveCommit(repo, Revision);
        if (commit is null)
        {
            missing = [HubCache.IsCommitSha(Revision) ? $"snapshot {Revision}" : $"refs/{Revision} (the model was never pulled)"];
            return null;
        }
        string folder = Cache.SnapshotFolder(repo, commit);
        missing = Directory.Exists(folder) ? ModelFiles.FindMissing(folder) : [$"snapshot {commit}"];
        return missing.Count == 0 ? folder : null;
    }

    string OfflineMessage(RepoId repo, List<string> missing) =>
        $"hub model {repo} (revision {Revision}) is not complete in the cache {Cache.Root} and offline mode is on (--offline / HF_HUB_OFFLINE): "
        + $"missing {string.Join(", ", missing)}; run `slowfast pull {repo}` with network access, or pass --model a local model directory";

    /// <summary>Pulls the model's files at the configured revision; returns the snapshot folder.</summary>
    public async Task<string> PullAsync(string repoId, IProgress<PullProgress>? progress, CancellationToken ct)
    {
        var repo = RepoId.Parse(repoId);
        string revision = HubCache.CheckRevision(Revision);
        if (Settings.Offline)
            return FindCachedSnapshot(repo, out var missing) ?? throw new UserError(OfflineMessage(repo, missing));

        var tracker = new ProgressTracker(progress);
        tracker.Report(PullStage.Resolving, repo.Value, 0, 0);
        var info = await NetworkRetry.RunAsync(_options, _http.Endpoint, $"{repo} (model info)",
            () => _http.GetModelInfoAsync(repo, revision, ct), ct).ConfigureAwait(false);
        string commit = info.Commit;
        var sizes = info.Files.ToDictionary(f => f.Path, f => f.Size, StringComparer.Ordinal);
        var names = info.Files.Select(f => f.Path).ToList();

        var files = ModelFiles.SelectFirstPass(repo, names);
        tracker.AddFiles(files.Select(f => (f, sizes.GetValueOrDefault(f))));

        foreach (var file in files)
            await FetchFileAsync(repo, commit, file, tracker, ct).ConfigureAwait(false);

        if (files.Contains(ModelFiles.WeightsIndex))
        {
            var shards = ModelFiles.ShardsOf(repo, Cache.SnapshotFile(repo, commit, ModelFiles.WeightsIndex), names)
                .Where(s => !files.Contains(s)).ToList();
            tracker.AddFiles(shards.Select(f => (f, sizes.GetValueOrDefault(f))));
            foreach (var shard in shards)
                await FetchFileAsync(repo, commit, shard, tracker, ct).ConfigureAwait(false);
        }

        // The ref moves only once the snapshot is complete, so an interrupted pull leaves the
        // previous complete snapshot in use.
        try { Cache.WriteRef(repo, revision, commit); }
        catch (Exception e) when (CacheErrors.Describe(e, Cache.RefPath(repo, revision), Cache.Root) is { } err) { throw err; }
        tracker.Report(PullStage.Completed, repo.Value, 0, 0);
        return Cache.SnapshotFolder(repo, commit);
    }

    async Task FetchFileAsync(RepoId repo, string commit, string file, ProgressTracker tracker, CancellationToken ct)
    {
        string pointer = Cache.SnapshotFile(repo, commit, HubCache.CheckRepoFilePath(file));
        if (HubCache.SnapshotEntryExists(pointer))
        {
            var entry = new FileInfo(pointer);
            tracker.FileDone(file, (entry.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? entry).Length);   // the blob's size, not the link's
            return;
        }

        // Checked only once something must be written: a read-only cache that already holds the
        // snapshot still serves pulls.
        EnsureCacheWritable(repo);
        var meta = await NetworkRetry.RunAsync(_options, _http.Endpoint, file,
            () => _http.HeadFileAsync(repo, commit, file, ct), ct).ConfigureAwait(false);
        if (meta.Commit != commit)
            throw new UserError($"{file} in hub repository {repo}: the hub answered for commit {meta.Commit} instead of {commit}");
        tracker.SetFileSize(file, meta.Size);

        string blob = Cache.BlobPath(repo, meta.Etag);
        if (!File.Exists(blob))
        {
            CacheLock fileLock;
            try
            {
                fileLock = await CacheLock.AcquireAsync(Cache.LockPath(repo, meta.Etag),
                    () => tracker.Report(PullStage.WaitingForLock, file, 0, meta.Size), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (CacheErrors.Describe(e, Cache.LockPath(repo, meta.Etag), Cache.Root) is { } err) { throw err; }
            using (fileLock)
            {
                if (!File.Exists(blob))   // another pull may have finished it while we waited
                {
                    var downloader = new BlobDownloader(_http, _options);
                    await downloader.DownloadAsync(repo, commit, file, meta, blob, Cache.Root,
                        (present, transferred) => tracker.Bytes(file, present, meta.Size, transferred), ct).ConfigureAwait(false);
                }
            }
        }

        try { Cache.LinkSnapshotFile(repo, commit, file, meta.Etag); }
        catch (Exception e) when (CacheErrors.Describe(e, pointer, Cache.Root) is { } err) { throw err; }
        tracker.FileDone(file, meta.Size);
    }

    /// <summary>Fails early, with a clear message, when the cache cannot be written at all.</summary>
    void EnsureCacheWritable(RepoId repo)
    {
        string folder = Cache.RepoFolder(repo);
        if (_writableRepoFolders.Contains(folder)) return;
        string probe = Path.Combine(folder, "blobs", $".write-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(Path.Combine(folder, "blobs"));
            Directory.CreateDirectory(Path.Combine(folder, "snapshots"));
            Directory.CreateDirectory(Path.Combine(folder, "refs"));
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            _writableRepoFolders.Add(folder);
        }
        catch (Exception e) when (CacheErrors.Describe(e, folder, Cache.Root) is { } err) { throw err; }
        catch (IOException e)
        {
            throw new UserError($"cannot write the Hugging Face cache {Cache.Root}: {e.Message}", e);
        }
    }

    static string? LocalDirectory(string arg) => Directory.Exists(arg) ? Path.GetFullPath(arg) : null;

    static bool LooksLikePath(string arg) =>
        arg.StartsWith('.') || arg.StartsWith('/') || arg.StartsWith('~') || arg.Contains('\\') || File.Exists(arg)
        || arg.Count(c => c == '/') > 1;

    public void Dispose() => _http.Dispose();

    /// <summary>Accumulates per-file progress into pull-wide totals.</summary>
    sealed class ProgressTracker(IProgress<PullProgress>? sink)
    {
        readonly object _gate = new();
        readonly Dictionary<string, long> _present = new(StringComparer.Ordinal);
        readonly Dictionary<string, long> _sizes = new(StringComparer.Ordinal);
        long _presentSum, _sizeSum, _transferred;
        int _filesDone;

        /// <summary>Adds files to the pull with the sizes the model info gave (0 when it gave none).</summary>
        public void AddFiles(IEnumerable<(string File, long? Size)> files)
        {
            lock (_gate)
                foreach (var (file, size) in files) Set(_sizes, ref _sizeSum, file, size ?? 0);
        }

        /// <summary>Corrects a file's size with the one its download reports.</summary>
        public void SetFileSize(string file, long size)
        {
            lock (_gate) Set(_sizes, ref _sizeSum, file, size);
        }

        public void Bytes(string file, long present, long size, long transferred)
        {
            lock (_gate)
            {
                Set(_present, ref _presentSum, file, present);
                _transferred += transferred;
            }
            Report(PullStage.Downloading, file, present, size);
        }

        public void FileDone(string file, long size)
        {
            lock (_gate)
            {
                Set(_present, ref _presentSum, file, size);
                Set(_sizes, ref _sizeSum, file, size);
                _filesDone++;
            }
            Report(PullStage.FileCompleted, file, size, size);
        }

        public void Report(PullStage stage, string file, long fileBytes, long fileSize)
        {
            if (sink is null) return;
            PullProgress p;
            lock (_gate)
                p = new PullProgress(stage, file, fileBytes, fileSize, _presentSum, Math.Max(_sizeSum, _presentSum), _transferred, _filesDone, _sizes.Count);
            sink.Report(p);
        }

        static void Set(Dictionary<string, long> map, ref long sum, string file, long value)
        {
            sum += value - map.GetValueOrDefault(file);
            map[file] = value;
        }
    }
}
