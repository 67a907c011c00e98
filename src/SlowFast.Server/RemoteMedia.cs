using System.Net;
using System.Net.Sockets;

namespace SlowFast.Server;

/// <summary>
/// Downloads <c>http(s)://</c> media URLs (<c>--allow-remote-media</c>) into files: at most
/// <c>maxBytes</c>, within <c>timeLimit</c> (redirects included), following at most
/// <see cref="MaxRedirects"/> redirects, each one checked again. Unless <c>allowPrivate</c>, the
/// address connected to may not be loopback, link-local, private (10/8, 172.16/12, 192.168/16, fc00::/7),
/// multicast or unspecified: the host is resolved in the connect callback, every address it resolves to is
/// checked, and the socket connects to the checked address itself, so a DNS answer that changes between
/// the check and the connection (rebinding) changes nothing.
/// </summary>
public sealed class RemoteMedia : IDisposable
{
    public const int MaxRedirects = 3;

    private readonly long _maxBytes;
    private readonly TimeSpan _timeLimit;
    private readonly bool _allowPrivate;
    private readonly HttpClient _http;

    public RemoteMedia(long maxBytes, TimeSpan timeLimit, bool allowPrivate)
    {
        _maxBytes = maxBytes;
        _timeLimit = timeLimit;
        _allowPrivate = allowPrivate;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = timeLimit,
            ConnectCallback = ConnectAsync,
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("slowfast-serve");
    }

    /// <summary>Writes the body at <paramref name="url"/> to <paramref name="path"/>; every refusal is an <see cref="ApiError"/> naming <paramref name="param"/>.</summary>
    public async Task DownloadAsync(string url, string path, string param, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(_timeLimit);
        var uri = CheckUri(url, param);
        try
        {
            for (int redirects = 0; ; redirects++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, uri);
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                int status = (int)response.StatusCode;
                if (status is >= 300 and < 400 && response.Headers.Location is { } location)
                {
                    if (redirects == MaxRedirects)
                        throw ApiError.BadRequest($"the media URL redirects more than {MaxRedirects} times", param, "too_many_redirects");
                    uri = CheckUri(new Uri(uri, location).AbsoluteUri, param);
                    continue;
                }
                if (!response.IsSuccessStatusCode)
                    throw ApiError.BadRequest($"fetching the media URL failed: HTTP {status} {response.ReasonPhrase}", param, "media_fetch_failed");
                if (response.Content.Headers.ContentLength is { } length && length > _maxBytes)
                    throw TooLarge(param);
                await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
                await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                var buffer = new byte[1 << 16];
                long total = 0;
                int read;
                while ((read = await body.ReadAsync(buffer, timeout.Token)) > 0)
                {
                    total += read;
                    if (total > _maxBytes) throw TooLarge(param);
                    await file.WriteAsync(buffer.AsMemory(0, read), timeout.Token);
                }
                if (total == 0) throw ApiError.BadRequest("the media URL gave no bytes", param, "invalid_media");
                return;
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancel.IsCancellationRequested)
        {
            throw ApiError.BadRequest($"fetching the media URL took longer than {_timeLimit.TotalSeconds:0.#} s", param, "media_fetch_timeout");
        }
        catch (HttpRequestException e)
        {
            for (Exception? inner = e; inner != null; inner = inner.InnerException)
                if (inner is BlockedAddressException blocked)
                    throw ApiError.BadRequest($"the media URL's host {blocked.Host} resolves to {blocked.Address}, a {blocked.Rule} address; " +
                        "remote media may not come from loopback, link-local, private, multicast or unspecified addresses (start the server with --allow-private-media to allow them)",
                        param, "media_address_refused");
            throw ApiError.BadRequest($"fetching the media URL failed: {e.Message}", param, "media_fetch_failed");
        }
    }

    private ApiError TooLarge(string param) =>
        ApiError.BadRequest($"the media URL's body is larger than this server takes ({_maxBytes} bytes)", param, "media_too_large");

    private static Uri CheckUri(string url, string param) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && uri.UserInfo.Length == 0
            ? uri
            : throw ApiError.BadRequest("malformed http(s) media URL (or a redirect to something other than http(s))", param, "invalid_url");

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancel)
    {
        string host = context.DnsEndPoint.Host;
        IPAddress[] addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancel);
        if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        if (!_allowPrivate)
            foreach (var a in addresses)
                if (RuleOf(a) is { } rule) throw new BlockedAddressException(host, a, rule);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            // The checked addresses themselves: no second resolution between the check and the connection.
            await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, cancel);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Why remote media may not come from <paramref name="address"/> ("loopback", "private", ...), or null when it may.</summary>
    public static string? RuleOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (IPAddress.IsLoopback(address)) return "loopback";
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            byte[] b = address.GetAddressBytes();
            return b[0] switch
            {
                0 => "unspecified",
                10 => "private",
                172 when (b[1] & 0xF0) == 16 => "private",
                192 when b[1] == 168 => "private",
                169 when b[1] == 254 => "link-local",
                >= 224 and < 240 => "multicast",
                255 when b[1] == 255 && b[2] == 255 && b[3] == 255 => "broadcast",
                _ => null,
            };
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            byte[] b = address.GetAddressBytes();
            if (address.Equals(IPAddress.IPv6Any)) return "unspecified";
            if (address.IsIPv6LinkLocal) return "link-local";
            if (address.IsIPv6Multicast) return "multicast";
            if ((b[0] & 0xFE) == 0xFC) return "private";
            if (address.IsIPv6SiteLocal) return "private";
            return null;
        }
        return "unsupported";
    }

    public void Dispose() => _http.Dispose();

    private sealed class BlockedAddressException(string host, IPAddress address, string rule)
        : IOException($"{host} resolves to {address}, a {rule} address")
    {
        public string Host { get; } = host;
        public IPAddress Address { get; } = address;
        public string Rule { get; } = rule;
    }
}
