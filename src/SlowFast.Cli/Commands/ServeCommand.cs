using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SlowFast.Server;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast serve</c>: an OpenAI-compatible HTTP server answering chat completions about videos (<see cref="SlowFastServer"/>).</summary>
public static class ServeCommand
{
    public const string ApiKeyVariable = "SLOWFAST_API_KEY";

    public static readonly CommandSpec Spec = new("serve",
        "Serve the model over HTTP with OpenAI's chat completions API (videos as video_url parts).",
        [
            new("model", "DIR|ID", ModelArgument.Description + " (pulled into the hub cache on first use)", SlowFast.Hub.KnownModels.Default),
            new("urls", "URL", "where to listen, ';'-separated", ServerOptions.DefaultUrls),
            new("model-id", "NAME", "the model name clients send (default: the hub id, or the directory's name)"),
            new("media-root", "DIR", "allow file:// media URLs for files below DIR (default: file:// URLs are refused)"),
            new("api-key", "KEY", $"require Authorization: Bearer KEY on /v1 (default: ${ApiKeyVariable}, else no key)"),
            new("max-frames", "N", "most frames a video is sampled to (a request gets min(the model's default, N) unless it asks)", "256"),
            new("max-upload-mb", "MB", "largest request body in MiB (data: URLs included)", "256"),
            new("max-queue", "N", "most chat completions in flight (running and waiting); more get 429 with Retry-After", ServerOptions.DefaultMaxQueue.ToString(CultureInfo.InvariantCulture)),
            new("images-as-video", null, "several image_url parts of one message are the frames of one video (default: more than one image is refused)"),
            new("allow-remote-media", null, "fetch http(s):// media URLs (at most --max-upload-mb, --remote-timeout, 3 redirects; not from private addresses)"),
            new("allow-private-media", null, "with --allow-remote-media: also from loopback, link-local, private, multicast and unspecified addresses"),
            new("remote-timeout", "SECONDS", "longest the download of one remote media URL may take", "60"),
            new("timeout", "SECONDS", "longest a request may take (0 = no limit)", "1800"),
            new("log-format", "text|json", "the request log on stderr (one event per chat completion): lines of text, or JSON objects", "text"),
            PrecisionOption.Spec,
            QuantizeCommand.AtLoadOption,
            PackedVisionOption.Spec,
            PackedDecoderOption.OptOutSpec,
            VisionInt8Option.Spec,
            .. CacheOptions.Options,
        ],
        Run,
        Details: "Endpoints: GET /health, GET /ready, GET /metrics (Prometheus), GET /v1/models, POST /v1/chat/completions (stream: true for server-sent events), POST/GET /v1/files, GET/DELETE /v1/files/{id} (uploaded media, named in video_url by id).");

    private static int Run(ParsedArgs a)
    {
        var err = Console.Error;
        var precision = PrecisionOption.Parse(a);
        PrecisionOption.Warn(precision, err);
        var cache = CacheOptions.Create(a, err);
        string model = a.Required("model");
        string dir = ModelArgument.Resolve(model);
        int timeout = a.Int("timeout", 0, int.MaxValue);
        string? key = a.String("api-key") ?? Environment.GetEnvironmentVariable(ApiKeyVariable);
        var logFormat = a.Required("log-format") switch
        {
            "text" => ServerLogFormat.Text,
            "json" => ServerLogFormat.Json,
            var other => throw new UserError($"--log-format must be text or json (got '{other}')"),
        };
        // With JSON logs every line on stderr is JSON: the server's own lines go through the logger too (once it exists).
        ILogger? jsonLog = null;
        void Line(string line)
        {
            if (jsonLog != null) jsonLog.LogInformation("{Line}", line);
            else err.WriteLine($"serve     {line}");
        }
        var options = new ServerOptions
        {
            ModelDir = dir,
            ModelId = a.String("model-id") ?? (Directory.Exists(model) ? null : model),
            Urls = a.Required("urls"),
            MediaRoot = a.String("media-root") is { } root ? Path.GetFullPath(root) : null,
            ApiKey = string.IsNullOrEmpty(key) ? null : key,
            MaxFrames = a.Int("max-frames", 1, Media.VideoOptions.MaxFrames),
            MaxUploadBytes = (long)a.Int("max-upload-mb", 1, 1 << 20) << 20,
            MaxQueue = a.Int("max-queue", 1, 1 << 20),
            ImagesAsVideo = a.Flag("images-as-video"),
            AllowRemoteMedia = a.Flag("allow-remote-media"),
            AllowPrivateMedia = a.Flag("allow-private-media"),
            RemoteMediaTimeLimit = TimeSpan.FromSeconds(a.Int("remote-timeout", 1, 86400)),
            RequestTimeLimit = timeout == 0 ? null : TimeSpan.FromSeconds(timeout),
            Precision = precision,
            QuantizeWeights = QuantizeCommand.ParseAtLoad(a),
            PackVisionWeights = PackedVisionOption.Parse(a),
            PackDecoderWeights = PackedDecoderOption.ParseOptOut(a),
            VisionInt8 = VisionInt8Option.Parse(a, err),
            // Memory always (follow-up turns reuse the same tokens); --no-cache only keeps nothing on disk.
            VideoCacheDir = cache?.Directory,
            Log = Line,
            LogFormat = logFormat,
        };
        using var app = SlowFastServer.Build(options);
        if (logFormat == ServerLogFormat.Json)
            jsonLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SlowFast.Server");
        app.StartAsync().GetAwaiter().GetResult();
        Line($"model {dir} as '{options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(dir))}'");
        Line(app.Services.GetRequiredService<ChatBackend>().Model.DecoderPacking);
        if (app.Services.GetRequiredService<ChatBackend>().VisionPreparation is { } packing && packing > TimeSpan.Zero)
            Line(string.Create(CultureInfo.InvariantCulture, $"vision: the tower's matrices packed at start-up in {packing.TotalSeconds:F2} s"));
        foreach (var url in app.Urls) Line(string.Create(CultureInfo.InvariantCulture, $"listening on {url}"));
        app.WaitForShutdownAsync().GetAwaiter().GetResult();
        return 0;
    }
}
