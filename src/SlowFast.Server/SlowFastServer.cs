using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SlowFast.Server;

/// <summary>Builds the <c>slowfast serve</c> web application: the model is loaded here, the endpoints are <see cref="ServerEndpoints"/>.</summary>
public static class SlowFastServer
{
    /// <summary>
    /// Loads the model (a bad checkpoint is a <see cref="UserError"/> now, not at the first request) and
    /// returns the application, not yet started: <c>await app.StartAsync()</c> or <c>app.Run()</c>. The
    /// model is disposed with the application.
    /// </summary>
    public static WebApplication Build(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var backend = new ChatBackend(options);
        try
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls(options.Urls);
            builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxUploadBytes);
            // Created by the container, so disposed with the application.
            builder.Services.AddSingleton(_ => backend);
            var app = builder.Build();
            app.Services.GetRequiredService<ChatBackend>();
            ServerEndpoints.Map(app, backend);
            return app;
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }
}
