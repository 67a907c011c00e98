namespace SlowFast.Hub.Tests;

/// <summary>A fake hub on loopback and an empty cache folder per test.</summary>
public abstract class HubTestBase : IAsyncLifetime
{
    protected FakeHub Hub { get; private set; } = null!;
    protected string CacheDir { get; } = Path.Combine(Path.GetTempPath(), "slowfast-hub-tests", Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync() => Hub = await FakeHub.StartAsync();

    public async Task DisposeAsync()
    {
        await Hub.DisposeAsync();
        try { Directory.Delete(CacheDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Options aimed at the fake hub, with quick retries; the real environment (HF_TOKEN, HF_HUB_OFFLINE) is ignored.</summary>
    protected PullOptions Options(string? token = null, string? revision = null, bool offline = false, int attempts = 3) => new()
    {
        Endpoint = Hub.Endpoint,
        CacheDirectory = CacheDir,
        Token = token,
        Revision = revision,
        Offline = offline,
        MaxAttempts = attempts,
        RetryDelay = TimeSpan.FromMilliseconds(10),
        ReadTimeout = TimeSpan.FromSeconds(10),
    };

    protected static HubClient Client(PullOptions options) => new(options, handler: null, environment: _ => null);

    protected async Task<string> PullAsync(string repo, PullOptions? options = null)
    {
        using var client = Client(options ?? Options());
        return await client.PullAsync(repo, null, CancellationToken.None);
    }

    protected string RepoFolder(string repo) => Path.Combine(CacheDir, "models--" + repo.Replace("/", "--"));

    /// <summary>Every file under a folder, relative, with '/' separators, sorted.</summary>
    protected static List<string> Tree(string folder) =>
        Directory.Exists(folder)
            ? Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories)
                .Where(p => !Directory.Exists(p) || new FileInfo(p).LinkTarget is not null)
                .Select(p => Path.GetRelativePath(folder, p).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList()
            : [];
}
