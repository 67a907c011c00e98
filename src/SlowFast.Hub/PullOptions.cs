namespace SlowFast.Hub;

/// <summary>
/// What to pull and how. Null fields fall back to the environment (see <see cref="HubSettings.Resolve"/>).
/// </summary>
public sealed record PullOptions
{
    /// <summary>Branch, tag or commit sha; null means "main".</summary>
    public string? Revision { get; init; }

    /// <summary>Hub access token; null falls back to HF_TOKEN, then the huggingface-cli token file.</summary>
    public string? Token { get; init; }

    /// <summary>Use the cache only (also turned on by HF_HUB_OFFLINE=1).</summary>
    public bool Offline { get; init; }

    /// <summary>The hub cache folder; null falls back to HF_HUB_CACHE, then $HF_HOME/hub, then ~/.cache/huggingface/hub.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>The hub's base URL; null falls back to HF_ENDPOINT, then https://huggingface.co.</summary>
    public string? Endpoint { get; init; }

    /// <summary>Tries per request when the connection drops or the hub answers 5xx/429; each retry resumes where the last stopped.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Wait before the first retry; doubled for each further one (at most 30 s).</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Give up on a request that gets no answer, or a download that sends no data, for this long (and retry it).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(60);

    public const string DefaultRevision = "main";

    internal HubSettings ToSettings(Func<string, string?>? environment = null) =>
        HubSettings.Resolve(Endpoint, CacheDirectory, Token, Offline, environment);
}
