using SlowFast.Cli.Pull;
using SlowFast.Hub.Tests;

namespace SlowFast.Cli.Tests;

/// <summary>The console side of `slowfast pull` (the download itself is tested in SlowFast.Hub.Tests).</summary>
public sealed class PullCommandTests : HubTestBase
{
    const string RepoId = "tiny-org/tiny-slowfast";

    [Fact]
    public async Task Pull_command_prints_the_snapshot_and_reports_errors_in_one_line()
    {
        var repo = TinyCheckpoint.Create(RepoId);
        Hub.Add(repo);
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        int ok = await PullCommand.RunAsync(RepoId, Options(), stdout, stderr, new ProgressBar(stderr, interactive: false), null, CancellationToken.None);
        Assert.Equal(0, ok);
        Assert.Equal(Path.Combine(RepoFolder(RepoId), "snapshots", repo.Commit), stdout.ToString().Trim());
        Assert.Contains($"{TinyCheckpoint.Shard2}  20.1 KB  (7/7 files)", stderr.ToString());
        Assert.Contains("done: 7 files", stderr.ToString());

        // Again, from the cache: the sizes come from the blobs the snapshot links to, nothing is downloaded.
        long total = TinyCheckpoint.Needed.Sum(f => (long)repo.Files[f].Length);
        var again = new StringWriter();
        Assert.Equal(0, await PullCommand.RunAsync(RepoId, Options(), new StringWriter(), again, new ProgressBar(again, interactive: false), null, CancellationToken.None));
        Assert.Contains($"done: 7 files, {ProgressBar.FormatBytes(total)} (0 B downloaded)", again.ToString());

        var err = new StringWriter();
        int failed = await PullCommand.RunAsync("nobody/nothing", Options(token: "x"), new StringWriter(), err, null, null, CancellationToken.None);
        Assert.Equal(1, failed);
        Assert.StartsWith("error: hub repository nobody/nothing not found", err.ToString().Trim());
        Assert.Single(err.ToString().Trim().Split('\n'));
    }
}
