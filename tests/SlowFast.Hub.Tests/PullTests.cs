namespace SlowFast.Hub.Tests;

public sealed class PullTests : HubTestBase
{
    const string RepoId = "tiny-org/tiny-slowfast";

    [Fact]
    public async Task Pull_writes_the_documented_cache_layout_file_by_file()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);

        string snapshot = await PullAsync(RepoId);

        string folder = RepoFolder(RepoId);
        Assert.Equal(Path.Combine(folder, "snapshots", repo.Commit), snapshot);
        var expected = new List<string>();
        foreach (string file in TinyCheckpoint.Needed)
        {
            string etag = repo.EtagOf(file);
            // blobs/<etag> holds the exact bytes, named by SHA-256 (LFS) or git blob SHA-1 (regular file).
            Assert.Equal(repo.LfsFiles.Contains(file) ? 64 : 40, etag.Length);
            Assert.Equal(repo.Files[file], File.ReadAllBytes(Path.Combine(folder, "blobs", etag)));
            // snapshots/<sha>/<file> is a relative symlink to ../../blobs/<etag>.
            var link = new FileInfo(Path.Combine(snapshot, file));
            Assert.Equal("../../blobs/" + etag, link.LinkTarget);
            Assert.Equal(repo.Files[file], File.ReadAllBytes(link.FullName));
            expected.Add("blobs/" + etag);
            expected.Add($"snapshots/{repo.Commit}/{file}");
        }
        expected.Add("refs/main");
        expected.Sort(StringComparer.Ordinal);
        Assert.Equal(expected, Tree(folder));   // nothing else: no .incomplete, no temp files, no skipped files
        Assert.Equal(repo.Commit, File.ReadAllText(Path.Combine(folder, "refs", "main")));   // no trailing newline

        // Lock files live under .locks/models--org--name/<etag>.lock.
        var locks = Tree(Path.Combine(CacheDir, ".locks"));
        Assert.Equal(TinyCheckpoint.Needed.Select(f => $"models--tiny-org--tiny-slowfast/{repo.EtagOf(f)}.lock").Order(StringComparer.Ordinal), locks);

        // Skipped files were never downloaded.
        foreach (string skipped in TinyCheckpoint.Skipped) Assert.Empty(Hub.Downloads(skipped));
    }

    [Fact]
    public async Task Nested_file_paths_get_deeper_relative_links()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        repo.Files.Remove(TinyCheckpoint.Shard2);
        repo.Files["weights/" + TinyCheckpoint.Shard2] = [1, 2, 3, 4];
        repo.LfsFiles.Add("weights/" + TinyCheckpoint.Shard2);
        repo.Files["model.safetensors.index.json"] = System.Text.Encoding.UTF8.GetBytes(
            "{\"weight_map\":{\"a\":\"" + TinyCheckpoint.Shard1 + "\",\"b\":\"weights/" + TinyCheckpoint.Shard2 + "\"}}");
        Hub.Add(repo);

        string snapshot = await PullAsync(RepoId);

        var link = new FileInfo(Path.Combine(snapshot, "weights", TinyCheckpoint.Shard2));
        Assert.Equal("../../../blobs/" + repo.EtagOf("weights/" + TinyCheckpoint.Shard2), link.LinkTarget);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, File.ReadAllBytes(link.FullName));
    }

    [Fact]
    public async Task Lfs_files_follow_the_redirect_and_the_token_never_reaches_the_cdn_host()
    {
        Hub.Add(TinyCheckpoint.Create(RepoId, token: "hf_secret"));

        await PullAsync(RepoId, Options(token: "hf_secret"));

        var requests = Hub.Requests.ToList();
        var cdn = requests.Where(r => r.Path.StartsWith("/cdn/")).ToList();
        var hub = requests.Where(r => !r.Path.StartsWith("/cdn/")).ToList();
        Assert.Equal(2, cdn.Count);   // the two shards, once each
        Assert.All(cdn, r => Assert.Equal("localhost", r.Host));
        Assert.All(cdn, r => Assert.Null(r.Authorization));
        Assert.NotEmpty(hub);
        Assert.All(hub, r => Assert.Equal("Bearer hf_secret", r.Authorization));
    }

    [Fact]
    public async Task A_second_pull_only_asks_for_the_file_list()
    {
        Hub.Add(TinyCheckpoint.Create(RepoId));
        string first = await PullAsync(RepoId);
        int before = Hub.Requests.Count;

        string second = await PullAsync(RepoId);

        Assert.Equal(first, second);
        var extra = Hub.Requests.Skip(before).ToList();
        Assert.Single(extra);
        Assert.StartsWith($"/api/models/{RepoId}/revision/main", extra[0].Path);
    }

    [Fact]
    public async Task Blobs_already_in_the_cache_are_reused_not_downloaded()
    {
        // As if a Python client had downloaded shard 1 for another commit: its blob is present.
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        string blobs = Path.Combine(RepoFolder(RepoId), "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, repo.EtagOf(TinyCheckpoint.Shard1)), repo.Files[TinyCheckpoint.Shard1]);

        string snapshot = await PullAsync(RepoId);

        Assert.Empty(Hub.Downloads(TinyCheckpoint.Shard1));
        Assert.Single(Hub.Downloads(TinyCheckpoint.Shard2));
        Assert.Equal(repo.Files[TinyCheckpoint.Shard1], File.ReadAllBytes(Path.Combine(snapshot, TinyCheckpoint.Shard1)));
    }

    [Fact]
    public async Task A_tag_revision_writes_its_ref_and_a_commit_revision_writes_none()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        repo.Tags.Add("v1.0");
        Hub.Add(repo);

        string byTag = await PullAsync(RepoId, Options(revision: "v1.0"));
        Assert.Equal(repo.Commit, File.ReadAllText(Path.Combine(RepoFolder(RepoId), "refs", "v1.0")));

        string bySha = await PullAsync(RepoId, Options(revision: repo.Commit));
        Assert.Equal(byTag, bySha);
        Assert.Equal(["refs/v1.0"], Tree(Path.Combine(RepoFolder(RepoId))).Where(p => p.StartsWith("refs/")));
    }

    [Fact]
    public async Task Unknown_repository_and_revision_are_reported()
    {
        Hub.Add(TinyCheckpoint.Create(RepoId));

        var anonymous = await Assert.ThrowsAsync<HubError>(() => PullAsync("nobody/nothing"));
        Assert.Equal(401, anonymous.StatusCode);   // the hub hides unknown repos from anonymous callers
        Assert.Contains("nobody/nothing", anonymous.Message);

        var withToken = await Assert.ThrowsAsync<HubError>(() => PullAsync("nobody/nothing", Options(token: "hf_any")));
        Assert.Equal(404, withToken.StatusCode);
        Assert.Contains("hub repository nobody/nothing not found", withToken.Message);

        var revision = await Assert.ThrowsAsync<HubError>(() => PullAsync(RepoId, Options(revision: "no-such-branch")));
        Assert.Contains("revision 'no-such-branch' not found", revision.Message);
        Assert.False(Directory.Exists(Path.Combine(RepoFolder("nobody/nothing"), "snapshots")));
    }

    [Fact]
    public async Task Private_repository_without_token_says_to_set_one()
    {
        Hub.Add(TinyCheckpoint.Create(RepoId, token: "hf_secret"));

        var error = await Assert.ThrowsAsync<HubError>(() => PullAsync(RepoId));
        Assert.Equal(401, error.StatusCode);
        Assert.Contains("HF_TOKEN", error.Message);
        Assert.DoesNotContain('\n', error.Message);

        var wrong = await Assert.ThrowsAsync<HubError>(() => PullAsync(RepoId, Options(token: "hf_wrong")));
        Assert.Contains("token was rejected", wrong.Message);
    }

    [Fact]
    public async Task A_cut_connection_is_retried_from_where_it_stopped()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        Hub.CutFile(TinyCheckpoint.Shard1, bytes: 10_000);

        string snapshot = await PullAsync(RepoId);

        Assert.Equal(repo.Files[TinyCheckpoint.Shard1], File.ReadAllBytes(Path.Combine(snapshot, TinyCheckpoint.Shard1)));
        var downloads = Hub.Downloads(TinyCheckpoint.Shard1).ToList();
        Assert.Equal(2, downloads.Count);
        Assert.Null(downloads[0].Range);
        Assert.Equal("bytes=10000-", downloads[1].Range);
    }

    [Fact]
    public async Task A_server_without_range_support_restarts_the_file_from_the_beginning()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        Hub.IgnoreRange = true;
        Hub.CutFile(TinyCheckpoint.Shard1, bytes: 12_000);

        string snapshot = await PullAsync(RepoId);

        Assert.Equal("bytes=12000-", Hub.Downloads(TinyCheckpoint.Shard1).Last().Range);   // asked to resume, got 200
        Assert.Equal(repo.Files[TinyCheckpoint.Shard1], File.ReadAllBytes(Path.Combine(snapshot, TinyCheckpoint.Shard1)));
    }

    [Fact]
    public async Task A_read_only_cache_that_holds_the_snapshot_still_serves_pulls()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        string snapshot = await PullAsync(RepoId);
        if (!OperatingSystem.IsLinux() || Environment.UserName == "root") return;   // root ignores file modes
        foreach (var dir in Directory.EnumerateDirectories(CacheDir, "*", SearchOption.AllDirectories).Append(CacheDir))
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try { Assert.Equal(snapshot, await PullAsync(RepoId)); }
        finally
        {
            foreach (var dir in Directory.EnumerateDirectories(CacheDir, "*", SearchOption.AllDirectories).Append(CacheDir))
                File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public async Task An_interrupted_pull_leaves_only_an_incomplete_file_and_the_next_pull_resumes_it()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        Hub.CutFile(TinyCheckpoint.Shard2, bytes: 8_192);
        string etag = repo.EtagOf(TinyCheckpoint.Shard2);
        string blob = Path.Combine(RepoFolder(RepoId), "blobs", etag);

        var error = await Assert.ThrowsAsync<UserError>(() => PullAsync(RepoId, Options(attempts: 1)));
        Assert.Contains(TinyCheckpoint.Shard2, error.Message);
        Assert.Contains("resumes", error.Message);
        Assert.False(File.Exists(blob));
        Assert.Equal(8_192, new FileInfo(blob + ".incomplete").Length);
        Assert.False(File.Exists(Path.Combine(RepoFolder(RepoId), "snapshots", repo.Commit, TinyCheckpoint.Shard2)));
        Assert.False(File.Exists(Path.Combine(RepoFolder(RepoId), "refs", "main")));   // the ref waits for a complete snapshot

        string snapshot = await PullAsync(RepoId);

        Assert.Equal("bytes=8192-", Hub.Downloads(TinyCheckpoint.Shard2).Last().Range);
        Assert.Equal(repo.Files[TinyCheckpoint.Shard2], File.ReadAllBytes(Path.Combine(snapshot, TinyCheckpoint.Shard2)));
        Assert.False(File.Exists(blob + ".incomplete"));
        Assert.Equal(repo.Commit, File.ReadAllText(Path.Combine(RepoFolder(RepoId), "refs", "main")));
    }

    [Fact]
    public async Task A_blob_of_several_write_pieces_cut_mid_piece_keeps_every_byte_received_and_resumes_after_them()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        var large = new byte[2 * HugePageAlignedWriter.PieceBytes + 12_345];
        new Random(5).NextBytes(large);
        repo.Files[TinyCheckpoint.Shard2] = large;
        Hub.Add(repo);
        const int cut = HugePageAlignedWriter.PieceBytes + 805_819;   // inside the second piece
        Hub.CutFile(TinyCheckpoint.Shard2, bytes: cut);
        string blob = Path.Combine(RepoFolder(RepoId), "blobs", repo.EtagOf(TinyCheckpoint.Shard2));

        await Assert.ThrowsAsync<UserError>(() => PullAsync(RepoId, Options(attempts: 1)));
        Assert.Equal(large.AsSpan(0, cut).ToArray(), File.ReadAllBytes(blob + ".incomplete"));

        string snapshot = await PullAsync(RepoId);

        Assert.Equal($"bytes={cut}-", Hub.Downloads(TinyCheckpoint.Shard2).Last().Range);
        Assert.Equal(large, File.ReadAllBytes(Path.Combine(snapshot, TinyCheckpoint.Shard2)));
    }

    [Theory]
    [InlineData(TinyCheckpoint.Shard1, "SHA-256")]       // LFS file: ETag is the SHA-256
    [InlineData("tokenizer.json", "git blob SHA-1")]    // regular git file: ETag is the git blob SHA-1
    public async Task Corrupted_bytes_are_rejected_and_nothing_lands_under_the_final_name(string file, string algorithm)
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        Hub.CorruptFiles[file] = true;
        string blob = Path.Combine(RepoFolder(RepoId), "blobs", repo.EtagOf(file));

        var error = await Assert.ThrowsAsync<UserError>(() => PullAsync(RepoId));

        Assert.Contains($"{file} is corrupt", error.Message);
        Assert.Contains(algorithm, error.Message);
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(blob + ".incomplete"));
        Assert.False(File.Exists(Path.Combine(RepoFolder(RepoId), "snapshots", repo.Commit, file)));
        Assert.False(File.Exists(Path.Combine(RepoFolder(RepoId), "refs", "main")));

        Hub.CorruptFiles.Clear();
        string snapshot = await PullAsync(RepoId);
        Assert.Equal(repo.Files[file], File.ReadAllBytes(Path.Combine(snapshot, file)));
    }

    [Fact]
    public async Task Concurrent_pulls_of_one_repo_both_succeed_and_download_each_file_once()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        Hub.ChunkDelay = TimeSpan.FromMilliseconds(15);   // make the two pulls overlap

        var pulls = Enumerable.Range(0, 2).Select(_ => Task.Run(() => PullAsync(RepoId))).ToArray();
        string[] snapshots = await Task.WhenAll(pulls);

        Assert.Equal(snapshots[0], snapshots[1]);
        foreach (string file in TinyCheckpoint.Needed)
        {
            Assert.Equal(repo.Files[file], File.ReadAllBytes(Path.Combine(snapshots[0], file)));
            Assert.Single(Hub.Downloads(file));
        }
        Assert.DoesNotContain(Tree(RepoFolder(RepoId)), p => p.EndsWith(".incomplete") || p.EndsWith(".tmp"));
    }

    [Fact]
    public async Task Offline_resolution_uses_the_cache_without_any_request()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        string pulled = await PullAsync(RepoId);
        int before = Hub.Requests.Count;

        using var offline = Client(Options(offline: true));
        Assert.Equal(pulled, await offline.ResolveModelAsync(RepoId, null, CancellationToken.None));
        using var online = Client(Options());
        Assert.Equal(pulled, await online.ResolveModelAsync(RepoId, null, CancellationToken.None));   // cached: no network either

        Assert.Equal(before, Hub.Requests.Count);
    }

    [Fact]
    public async Task Offline_with_an_empty_or_partial_cache_names_what_is_missing()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        using var offline = Client(Options(offline: true));

        var never = await Assert.ThrowsAsync<UserError>(() => offline.ResolveModelAsync(RepoId, null, CancellationToken.None));
        Assert.Contains("refs/main", never.Message);
        Assert.Contains($"slowfast pull {RepoId}", never.Message);

        string snapshot = await PullAsync(RepoId);
        File.Delete(Path.Combine(snapshot, TinyCheckpoint.Shard2));
        var partial = await Assert.ThrowsAsync<UserError>(() => offline.ResolveModelAsync(RepoId, null, CancellationToken.None));
        Assert.Contains(TinyCheckpoint.Shard2, partial.Message);
        Assert.DoesNotContain(TinyCheckpoint.Shard1, partial.Message);
            }

    [Fact]
    public async Task Resolve_pulls_on_first_use_and_reports_a_missing_model_when_the_hub_is_unreachable()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        using (var client = Client(Options()))
            Assert.Equal(Path.Combine(RepoFolder(RepoId), "snapshots", repo.Commit),
                await client.ResolveModelAsync(RepoId, null, CancellationToken.None));

        // A port nothing listens on stands for "no network".
        var unreachable = Options(attempts: 1) with { Endpoint = "http://127.0.0.1:9", CacheDirectory = CacheDir + "-empty" };
        using var offlineNet = Client(unreachable);
        var error = await Assert.ThrowsAsync<UserError>(() => offlineNet.ResolveModelAsync(RepoId, null, CancellationToken.None));
        Assert.Contains("cannot reach the hub", error.Message);
        Assert.Contains("refs/main", error.Message);
        Assert.Contains($"slowfast pull {RepoId}", error.Message);
    }

    [Fact]
    public async Task A_hub_that_does_not_answer_times_out_and_is_retried()
    {
        Hub.Add(TinyCheckpoint.Create(RepoId));
        Hub.AnswerDelay = TimeSpan.FromSeconds(30);
        var options = Options(attempts: 2) with { ReadTimeout = TimeSpan.FromMilliseconds(300) };
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<HubUnreachable>(() => PullAsync(RepoId, options));

        Assert.Contains("sent no answer within 0.3 s, 2 attempt(s)", error.Message);
        Assert.Equal(2, Hub.Requests.Count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Resolve_returns_directories_as_they_are_and_rejects_non_ids()
    {
        using var client = Client(Options());
        Directory.CreateDirectory(CacheDir);
        Assert.Equal(Path.GetFullPath(CacheDir), await client.ResolveModelAsync(CacheDir, null, CancellationToken.None));
        var missingDir = await Assert.ThrowsAsync<UserError>(() => client.ResolveModelAsync("./no/such/dir", null, CancellationToken.None));
        Assert.Contains("does not exist", missingDir.Message);
        var bad = await Assert.ThrowsAsync<UserError>(() => client.ResolveModelAsync("not an id", null, CancellationToken.None));
        Assert.Contains("neither a model directory nor a hub model id", bad.Message);
        Assert.Empty(Hub.Requests);
    }

    [Fact]
    public async Task A_cache_that_cannot_be_written_gives_a_clear_error()
    {
        Hub.Add(TinyCheckpoint.Create(RepoId));
        string cache;
        if (!OperatingSystem.IsLinux()) return;   // the unwritable locations below are Linux ones
        if (Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root")
            cache = "/sys/slowfast-hub-test-cache";   // root ignores file modes; sysfs refuses new folders
        else
        {
            cache = Path.Combine(CacheDir, "readonly");
            Directory.CreateDirectory(cache);
            File.SetUnixFileMode(cache, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }

        var error = await Assert.ThrowsAsync<UserError>(() => PullAsync(RepoId, Options() with { CacheDirectory = cache }));

        Assert.Contains("is not writable", error.Message);
        Assert.Contains("HF_HUB_CACHE", error.Message);
        Assert.DoesNotContain(Hub.Requests, r => r.Path.Contains("/resolve/"));
        if (cache.StartsWith(CacheDir)) File.SetUnixFileMode(cache, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    [Fact]
    public async Task A_repository_without_safetensors_is_refused_before_downloading()
    {
        var repo = new FakeRepo { Id = RepoId };
        repo.Files["config.json"] = "{}"u8.ToArray();
        repo.Files["pytorch_model.bin"] = new byte[100];
        Hub.Add(repo);

        var error = await Assert.ThrowsAsync<UserError>(() => PullAsync(RepoId));
        Assert.Contains("only PyTorch pickle weights", error.Message);
        Assert.DoesNotContain(Hub.Requests, r => r.Path.Contains("/resolve/"));
    }
}
