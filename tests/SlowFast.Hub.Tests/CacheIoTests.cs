using System.Diagnostics;

namespace SlowFast.Hub.Tests;

public class CacheIoTests
{
    [Fact]
    public void A_full_disk_is_recognised_and_explained()
    {
        if (!File.Exists("/dev/full")) return;   // Linux device that fails every write with ENOSPC
        var io = Assert.ThrowsAny<IOException>(() =>
        {
            using var s = new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
            s.Write(new byte[4096]);
            s.Flush();
        });
        Assert.True(CacheErrors.IsDiskFull(io));
        var error = CacheErrors.Describe(io, "/cache/blobs/abc.incomplete", "/cache");
        Assert.NotNull(error);
        Assert.StartsWith("disk full while writing /cache/blobs/abc.incomplete", error!.Message);
        Assert.Null(CacheErrors.Describe(new IOException("something else"), "/x", "/cache"));
    }

    [Fact]
    public async Task The_blob_lock_waits_for_another_holder_in_this_process()
    {
        string path = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"), "x.lock");
        var first = await CacheLock.AcquireAsync(path, null, CancellationToken.None);
        bool waited = false;
        var second = CacheLock.AcquireAsync(path, () => waited = true, CancellationToken.None);
        await Task.Delay(300);
        Assert.False(second.IsCompleted);
        Assert.True(waited);
        first.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task The_blob_lock_interoperates_with_flock_holders_like_python_filelock()
    {
        if (!File.Exists("/usr/bin/flock")) return;   // util-linux flock(1) takes the same flock() lock Python's filelock does
        string path = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"), "y.lock");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var holder = Process.Start(new ProcessStartInfo("/usr/bin/flock", [path, "sleep", "2"]) { UseShellExecute = false })!;
        for (int i = 0; i < 50 && !File.Exists(path); i++) await Task.Delay(20);
        await Task.Delay(100);
        var clock = Stopwatch.StartNew();
        bool waited = false;
        using (await CacheLock.AcquireAsync(path, () => waited = true, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)))
        {
            Assert.True(waited);
            // The lock is freed when flock's child (sleep) exits, a moment before flock(1) itself does.
            Assert.True(holder.WaitForExit(5000));
        }
        Assert.True(clock.Elapsed > TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Waiting_for_a_lock_can_be_cancelled()
    {
        string path = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"), "z.lock");
        using var held = await CacheLock.AcquireAsync(path, null, CancellationToken.None);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => CacheLock.AcquireAsync(path, null, cts.Token));
    }

    [Fact]
    public void Unsafe_repo_paths_and_revisions_are_refused()
    {
        foreach (var bad in new[] { "../x", "/etc/passwd", "a/../b", "a//b", "a\\b", "" })
            Assert.Throws<UserError>(() => HubCache.CheckRepoFilePath(bad));
        Assert.Equal("sub/dir/file.json", HubCache.CheckRepoFilePath("sub/dir/file.json"));
        Assert.Throws<UserError>(() => HubCache.CheckRevision("../main"));
        Assert.Equal("refs/pr/1", HubCache.CheckRevision("refs/pr/1"));
    }
}
