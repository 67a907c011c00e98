using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SlowFast.Server;

/// <summary>
/// The page at <c>GET /</c>: one self-contained HTML file (CSS and script inline, nothing fetched from
/// elsewhere), embedded in this assembly as <c>Web/index.html</c>. A person picks or drops a video or
/// image, asks questions, and watches the answers stream from <c>POST /v1/chat/completions</c>. The server
/// writes what the page needs to know (model id, default and largest frame count, whether an API key is
/// needed) into it; the page itself needs no key, the API calls it makes do.
/// </summary>
public static class WebPage
{
    public const string ResourceName = "SlowFast.Server.Web.index.html";
    private const string ConfigPlaceholder = "/*SLOWFAST_CONFIG*/null";

    /// <summary>Maps <c>GET /</c> and <c>GET /index.html</c> to the page.</summary>
    public static void Map(WebApplication app, ChatBackend backend)
    {
        byte[] page = Encoding.UTF8.GetBytes(Render(backend));
        IResult Page(HttpContext ctx)
        {
            var h = ctx.Response.Headers;
            h.CacheControl = "no-cache";
            h["X-Content-Type-Options"] = "nosniff";
            h["Referrer-Policy"] = "no-referrer";
            // Nothing from elsewhere: inline script and style, media from the picked file only, API calls to this server.
            h.ContentSecurityPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
                "img-src data: blob:; media-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
            return Results.Bytes(page, "text/html; charset=utf-8");
        }
        app.MapGet("/", Page);
        app.MapGet("/index.html", Page);
    }

    /// <summary>The page with the server's settings in place of its placeholder.</summary>
    public static string Render(ChatBackend backend)
    {
        var config = new JsonObject
        {
            ["model"] = backend.ModelId,
            ["frames"] = Math.Min(backend.Processor.DefaultFrames, backend.Options.MaxFrames),
            ["maxFrames"] = backend.Options.MaxFrames,
            ["apiKey"] = backend.Options.ApiKey is { Length: > 0 },
            ["maxUploadBytes"] = backend.Options.MaxUploadBytes,
        };
        // The default encoder writes <, > and & as \uXXXX, so no model id can close the script element.
        return Template.Replace(ConfigPlaceholder, config.ToJsonString(), StringComparison.Ordinal);
    }

    private static readonly string Template = LoadTemplate();

    private static string LoadTemplate()
    {
        using var stream = typeof(WebPage).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the page resource {ResourceName} is missing from the assembly");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string text = reader.ReadToEnd();
        return text.Contains(ConfigPlaceholder, StringComparison.Ordinal) ? text
            : throw new InvalidOperationException($"the page resource {ResourceName} has no {ConfigPlaceholder}");
    }
}
