using SlowFast.Hub;

namespace SlowFast.Cli.Pull;

/// <summary>
/// The <c>slowfast pull</c> command, free of argument parsing: pulls a model into the hub cache,
/// shows progress on stderr and prints the snapshot folder on stdout.
/// </summary>
public static class PullCommand
{
    /// <returns>0 on success; 1 after printing a one-line error to <paramref name="stderr"/>.</returns>
    public static async Task<int> RunAsync(string repoId, string? revision, string? token, bool offline, string? cacheDir,
        TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var options = new PullOptions { Revision = revision, Token = token, Offline = offline, CacheDirectory = cacheDir };
        bool interactive = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
        return await RunAsync(repoId, options, stdout, stderr, new ProgressBar(stderr, interactive), null, ct).ConfigureAwait(false);
    }

    /// <summary>The same with full options, a chosen progress sink and HTTP stack (tests).</summary>
    public static async Task<int> RunAsync(string repoId, PullOptions options, TextWriter stdout, TextWriter stderr,
        IProgress<PullProgress>? progress, HttpMessageHandler? handler, CancellationToken ct)
    {
        try
        {
            using var client = new HubClient(options, handler);
            string snapshot = await client.PullAsync(repoId, progress, ct).ConfigureAwait(false);
            stdout.WriteLine(snapshot);
            return 0;
        }
        catch (UserError e)
        {
            if (progress is ProgressBar { Interactive: true }) stderr.WriteLine();   // end the progress line first
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
