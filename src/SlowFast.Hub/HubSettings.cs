namespace SlowFast.Hub;

/// <summary>
/// Where the hub is, where its cache lives, and how to authenticate: the same environment
/// variables the Python <c>huggingface_hub</c> client reads, so both share one cache.
/// </summary>
public sealed record HubSettings
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Base URL of the hub, without a trailing slash (HF_ENDPOINT).</summary>
    public required string Endpoint { get; init; }

    /// <summary>The hub cache directory: the folder holding <c>models--org--name</c> folders.</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Access token, sent as a bearer token to the hub's host only; null for anonymous.</summary>
    public string? Token { get; init; }

    /// <summary>Use the cache only; never touch the network (HF_HUB_OFFLINE).</summary>
    public bool Offline { get; init; }

    /// <summary>
    /// Builds settings from explicit values, falling back to the environment:
    /// HF_ENDPOINT, HF_HUB_CACHE / HF_HOME, HF_TOKEN (then the token file written by
    /// <c>huggingface-cli login</c>), HF_HUB_OFFLINE.
    /// </summary>
    public static HubSettings Resolve(
        string? endpoint = null, string? cacheDirectory = null, string? token = null, bool offline = false,
        Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? Env(string name) => NullIfBlank(environment(name));

        string hfHome = Env("HF_HOME") ?? Path.Combine(UserCacheHome(environment), "huggingface");
        string cache = NullIfBlank(cacheDirectory) ?? Env("HF_HUB_CACHE") ?? Path.Combine(hfHome, "hub");
        string ep = (NullIfBlank(endpoint) ?? Env("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/');
        if (!Uri.TryCreate(ep, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new UserError($"hub endpoint '{ep}' is not an http(s) URL (check HF_ENDPOINT)");

        string? tok = NullIfBlank(token) ?? Env("HF_TOKEN") ?? ReadTokenFile(Env("HF_TOKEN_PATH") ?? Path.Combine(hfHome, "token"));
        bool off = offline || IsTruthy(Env("HF_HUB_OFFLINE"));
        return new HubSettings { Endpoint = ep, CacheDirectory = ExpandHome(cache, environment), Token = tok, Offline = off };
    }

    /// <summary>huggingface_hub's reading of boolean environment variables.</summary>
    internal static bool IsTruthy(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    static string UserCacheHome(Func<string, string?> environment)
    {
        string? xdg = NullIfBlank(environment("XDG_CACHE_HOME"));
        if (xdg is not null) return xdg;
        string home = NullIfBlank(environment("HOME")) ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".cache");
    }

    static string ExpandHome(string path, Func<string, string?> environment)
    {
        if (path == "~" || path.StartsWith("~/", StringComparison.Ordinal))
        {
            string home = NullIfBlank(environment("HOME")) ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return Path.GetFullPath(home + path[1..]);
        }
        return Path.GetFullPath(path);
    }

    static string? ReadTokenFile(string path)
    {
        try { return File.Exists(path) ? NullIfBlank(File.ReadAllText(path).Trim()) : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    static string? NullIfBlank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
