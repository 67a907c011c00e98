using System.Net;
using System.Net.Http.Headers;

namespace SlowFast.Hub;

/// <summary>What a HEAD on a resolve URL tells about one file.</summary>
internal sealed record FileMetadata(string Commit, string Etag, long Size, Uri DownloadUrl);

/// <summary>
/// The hub's HTTP API, spoken the way huggingface_hub does: model info, HEAD/GET on
/// <c>/{repo}/resolve/{revision}/{file}</c>, redirects followed by hand so the token is only
/// ever sent to the hub's own host (never to the CDN an LFS file redirects to).
/// </summary>
internal sealed class HubHttp : IDisposable
{
    const int MaxRedirects = 10;

    readonly HttpClient _client;
    readonly Uri _endpoint;
    readonly string? _token;
    readonly TimeSpan _answerTimeout;

    /// <param name="answerTimeout">How long to wait for a response's headers before giving up on the request.</param>
    public HubHttp(HubSettings settings, TimeSpan answerTimeout, HttpMessageHandler? handler = null)
    {
        _answerTimeout = answerTimeout;
        _endpoint = new Uri(settings.Endpoint.TrimEnd('/') + "/");
        _token = settings.Token;
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = false,                       // redirects are followed below, with the auth rule
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(20),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        _client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _client.DefaultRequestHeaders.UserAgent.ParseAdd("slowfast-net/1.0 (hub client)");
    }

    public string Endpoint => _endpoint.ToString().TrimEnd('/');

    public Uri ModelInfoUrl(RepoId repo, string revision) =>
        new(_endpoint, $"api/models/{repo}/revision/{Uri.EscapeDataString(revision)}?blobs=true");

    public Uri ResolveUrl(RepoId repo, string revision, string file) =>
        new(_endpoint, $"{repo}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    public async Task<HubModelInfo> GetModelInfoAsync(RepoId repo, string revision, CancellationToken ct)
    {
        var url = ModelInfoUrl(repo, revision);
        using var response = await SendAsync(HttpMethod.Get, url, null, followCrossHost: true, ct).ConfigureAwait(false);
        EnsureSuccess(response, repo, revision, null);
        string json = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        return HubModelInfo.Parse(repo, json);
    }

    /// <summary>
    /// HEAD on the resolve URL. Redirects on the hub's host are followed (renamed repos); a
    /// redirect to another host (the CDN for LFS files) is not: its headers already carry the
    /// file's X-Linked-Etag and X-Linked-Size, and its Location is where the bytes are.
    /// </summary>
    public async Task<FileMetadata> HeadFileAsync(RepoId repo, string revision, string file, CancellationToken ct)
    {
        var url = ResolveUrl(repo, revision, file);
        using var response = await SendAsync(HttpMethod.Head, url, r => r.Headers.AcceptEncoding.ParseAdd("identity"),
            followCrossHost: false, ct).ConfigureAwait(false);
        bool redirected = IsRedirect(response.StatusCode);
        if (!redirected) EnsureSuccess(response, repo, revision, file);

        string? commit = Header(response, "X-Repo-Commit");
        string? etag = Header(response, "X-Linked-Etag") ?? response.Headers.ETag?.ToString() ?? Header(response, "ETag");
        string? sizeText = Header(response, "X-Linked-Size");
        long? size = sizeText is not null && long.TryParse(sizeText, out long ls) ? ls : response.Content.Headers.ContentLength;
        if (commit is null || !HubCache.IsCommitSha(commit))
            throw new UserError($"{url}: the server sent no X-Repo-Commit header; is {Endpoint} a Hugging Face hub?");
        if (etag is null)
            throw new UserError($"{url}: the server sent no ETag; cannot name or verify the file");
        string normalized = BlobChecksum.NormalizeEtag(etag);
        if (normalized.Length == 0 || normalized.Length > 200 || normalized.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) || normalized.StartsWith('.'))
            throw new UserError($"{url}: unusable ETag '{etag}'");
        if (size is null)
            throw new UserError($"{url}: the server sent no file size");
        var location = redirected ? RedirectTarget(response, url) : url;
        return new FileMetadata(commit, normalized, size.Value, location);
    }

    /// <summary>GET with an optional <c>Range: bytes=start-</c>, following redirects; the caller checks the status.</summary>
    public Task<HttpResponseMessage> GetFileAsync(Uri url, long rangeStart, CancellationToken ct) =>
        SendAsync(HttpMethod.Get, url, r =>
        {
            r.Headers.AcceptEncoding.ParseAdd("identity");
            if (rangeStart > 0) r.Headers.Range = new RangeHeaderValue(rangeStart, null);
        }, followCrossHost: true, ct);

    async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, Action<HttpRequestMessage>? configure, bool followCrossHost, CancellationToken ct)
    {
        for (int hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            configure?.Invoke(request);
            if (_token is not null && IsHubHost(url))
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            HttpResponseMessage response;
            using (var answer = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                answer.CancelAfter(_answerTimeout);
                try { response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, answer.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new TransientFailure($"{url.Host} sent no answer within {_answerTimeout.TotalSeconds:0.#} s");
                }
            }
            if (!IsRedirect(response.StatusCode) || response.Headers.Location is null) return response;
            var next = RedirectTarget(response, url);
            if (!followCrossHost && !IsHubHost(next)) return response;
            if (hop >= MaxRedirects)
            {
                response.Dispose();
                throw new UserError($"{url}: more than {MaxRedirects} redirects");
            }
            response.Dispose();
            url = next;
        }
    }

    /// <summary>The token goes to the hub's own scheme, host and port only.</summary>
    bool IsHubHost(Uri url) =>
        Uri.Compare(url, _endpoint, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;

    /// <summary>Where a redirect leads: its Location, resolved against <paramref name="from"/> when relative.</summary>
    static Uri RedirectTarget(HttpResponseMessage response, Uri from)
    {
        if (response.Headers.Location is not { } loc) return from;
        if (loc.IsAbsoluteUri) return loc;
        // A relative Location can still make no URL with this one (e.g. "//" and a host that does not parse).
        return Uri.TryCreate(from, loc, out var target)
            ? target
            : throw new UserError($"{from}: the server redirected to an unusable Location '{loc.OriginalString}'");
    }

    static bool IsRedirect(HttpStatusCode code) => (int)code is 301 or 302 or 303 or 307 or 308;

    static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? values.FirstOrDefault() : null;

    /// <summary>Turns a hub error status into a one-line message saying what to do.</summary>
    internal void EnsureSuccess(HttpResponseMessage response, RepoId repo, string revision, string? file)
    {
        if (response.IsSuccessStatusCode) return;
        string code = Header(response, "X-Error-Code") ?? "";
        string serverMessage = Header(response, "X-Error-Message") ?? "";
        string what = file is null ? $"hub repository {repo}" : $"{file} in hub repository {repo}";
        int status = (int)response.StatusCode;
        string detail = serverMessage.Length > 0 ? $" (server: {serverMessage})" : "";
        throw status switch
        {
            401 when _token is null => new HubError(status,
                $"{what} needs authentication (HTTP 401): it is private or gated, or does not exist; set HF_TOKEN or pass --token{detail}"),
            401 => new HubError(status, $"{what}: the token was rejected (HTTP 401), or the repository does not exist; check HF_TOKEN / --token{detail}"),
            403 => new HubError(status,
                $"{what}: access denied (HTTP 403); if it is gated, accept its terms at {Endpoint}/{repo} and use a token with read access{detail}"),
            404 when code == "RevisionNotFound" => new HubError(status, $"revision '{revision}' not found in hub repository {repo} (HTTP 404)"),
            404 when code == "EntryNotFound" || (file is not null && code != "RepoNotFound") =>
                new HubError(status, $"{what}: file not found (HTTP 404) at revision '{revision}'"),
            404 => new HubError(status, $"hub repository {repo} not found at {Endpoint} (HTTP 404); check the id, or set HF_TOKEN if it is private"),
            429 => new HubError(status, $"{what}: rate limited by the hub (HTTP 429); wait and try again", transient: true),
            >= 500 => new HubError(status, $"{what}: the hub answered HTTP {status}; try again later", transient: true),
            _ => new HubError(status, $"{what}: unexpected HTTP {status} {response.ReasonPhrase}{detail}"),
        };
    }

    public void Dispose() => _client.Dispose();
}

/// <summary>An HTTP error from the hub; <see cref="Transient"/> ones are worth retrying.</summary>
public sealed class HubError : UserError
{
    public HubError(int status, string message, bool transient = false) : base(message)
    {
        StatusCode = status;
        Transient = transient;
    }

    public int StatusCode { get; }
    public bool Transient { get; }
}
