using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace SlowFast.Server;

/// <summary>Builds the <c>slowfast serve</c> web application: the model is loaded here, the endpoints are <see cref="ServerEndpoints"/>.</summary>
public static class SlowFastServer
{
    /// <summary>
    /// Loads the model (a bad checkpoint is a <see cref="UserError"/> now, not at the first request) and
    /// returns the application, not yet started: <c>await app.StartAsync()</c> or <c>app.Run()</c>. Stopping it lets
    /// requests in flight finish (up to <see cref="ServerOptions.ShutdownTimeLimit"/>); the model is disposed with the application.
    /// </summary>
    public static WebApplication Build(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var backend = new ChatBackend(options);
        try
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            ConfigureLogging(builder.Logging, options);
            builder.WebHost.UseUrls(options.Urls);
            builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxUploadBytes);
            // Stopping waits this long for requests in flight (Kestrel stops accepting, then drains); the backend
            // (and the model with it) is disposed with the container, after that.
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.ShutdownTimeLimit);
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

    /// <summary>
    /// Only the chosen console format (to standard error, so standard output stays free), at Information for
    /// this server's categories and Warning for ASP.NET Core's, then the caller's own set-up.
    /// </summary>
    private static void ConfigureLogging(ILoggingBuilder logging, ServerOptions options)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        switch (options.LogFormat)
        {
            case ServerLogFormat.Text:
                logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ "; o.UseUtcTimestamp = true; });
                break;
            case ServerLogFormat.Json:
                logging.AddJsonConsole(o => { o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ"; o.UseUtcTimestamp = true; });
                break;
        }
        logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        options.ConfigureLogging?.Invoke(logging);
    }
}
