using SlowFast.Tensors.Kernels;

namespace SlowFast.Server;

/// <summary>How <see cref="SlowFastServer.Build"/> sets up the server.</summary>
public sealed record ServerOptions
{
    public const string DefaultUrls = "http://127.0.0.1:8080";

    /// <summary>The checkpoint directory to load (a hub id is resolved by the caller, e.g. the CLI).</summary>
    public required string ModelDir { get; init; }
    /// <summary>The id clients name in <c>model</c>; null: the checkpoint directory's name.</summary>
    public string? ModelId { get; init; }
    /// <summary>Where to listen, ';'-separated (port 0: any free port; see <c>app.Urls</c> once started).</summary>
    public string Urls { get; init; } = DefaultUrls;
    /// <summary>The folder <c>file://</c> URLs may point into; null: <c>file://</c> URLs are refused.</summary>
    public string? MediaRoot { get; init; }
    /// <summary>Several <c>image_url</c> parts of one message are the frames of one video; false: more than one image is a 400.</summary>
    public bool ImagesAsVideo { get; init; }
    /// <summary>
    /// <c>http(s)://</c> media URLs are fetched (at most <see cref="MaxUploadBytes"/>, within
    /// <see cref="RemoteMediaTimeLimit"/>, at most 3 redirects); false: they are refused.
    /// </summary>
    public bool AllowRemoteMedia { get; init; }
    /// <summary>Remote media may come from loopback, link-local, private, multicast or unspecified addresses (off: refused).</summary>
    public bool AllowPrivateMedia { get; init; }
    /// <summary>Longest the download of one remote media URL may take, redirects included.</summary>
    public TimeSpan RemoteMediaTimeLimit { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Largest request body (a <c>data:</c> URL is a third larger than its bytes).</summary>
    public long MaxUploadBytes { get; init; } = 256L << 20;
    /// <summary>Most frames a video may be sampled to; a video gets min(the model's default, this) unless the request says.</summary>
    public int MaxFrames { get; init; } = 256;
    /// <summary>
    /// Most chat completions in flight at once (waiting for the engine or running in it, media included);
    /// one more is refused with 429 and <c>Retry-After</c>.
    /// </summary>
    public int MaxQueue { get; init; } = DefaultMaxQueue;
    public const int DefaultMaxQueue = 32;
    /// <summary>The <c>Retry-After</c> seconds a refused (429) request is told to wait.</summary>
    public int RetryAfterSeconds { get; init; } = 1;
    /// <summary>Longest a chat completion may take, media and generation included; null: no limit.</summary>
    public TimeSpan? RequestTimeLimit { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>
    /// How long stopping the server (Ctrl+C, SIGTERM, <c>app.StopAsync()</c>) waits for requests in flight to
    /// finish before their connections are cut; the model is disposed only after that.
    /// </summary>
    public TimeSpan ShutdownTimeLimit { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer {ApiKey}</c>.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Matrix-product arithmetic of every request; null: the engine's default.</summary>
    public MatMulPrecision? Precision { get; init; }
    /// <summary>Quantize the decoder's weights to this block format at load (<c>--quantize</c>); null: as stored.</summary>
    public Tensors.Quantization.BlockFormat? QuantizeWeights { get; init; }

    /// <summary>The vision tower keeps its matrices packed for the bfloat16 GEMM (<see cref="Model.Engine.EngineOptions.PackVisionWeights"/>; <c>--no-packed-vision</c>: false).</summary>
    public bool PackVisionWeights { get; init; } = true;
    /// <summary>The decoder's matrices packed for the bfloat16 GEMM at load (<see cref="Model.Engine.EngineOptions.PackDecoderWeights"/>; <c>--no-packed-decoder</c>: false).</summary>
    public bool PackDecoderWeights { get; init; } = true;
    /// <summary>The vision tower's MLP products in int8 (<see cref="Model.Engine.EngineOptions.VisionInt8"/>; <c>--vision-int8</c>).</summary>
    public bool VisionInt8 { get; init; }
    /// <summary>Encoded videos are kept in memory up to this many bytes (follow-up questions skip the vision tower).</summary>
    public long VideoCacheBytes { get; init; } = 2L << 30;
    /// <summary>A directory where encoded videos are also kept on disk; null: memory only.</summary>
    public string? VideoCacheDir { get; init; }
    /// <summary>Receives one line per notable event (listening, media errors); null: nothing.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>
    /// The request log (one structured event per chat completion, <see cref="RequestLog"/>) and ASP.NET Core's
    /// warnings go to standard error in this format; null: no console logging.
    /// </summary>
    public ServerLogFormat? LogFormat { get; init; }
    /// <summary>More logging set-up (another provider, filters), applied after <see cref="LogFormat"/>'s.</summary>
    public Action<Microsoft.Extensions.Logging.ILoggingBuilder>? ConfigureLogging { get; init; }
}

/// <summary>How the server's log is written to the console.</summary>
public enum ServerLogFormat
{
    /// <summary>One line per event (Microsoft.Extensions.Logging's simple console formatter).</summary>
    Text,
    /// <summary>One JSON object per line, with the event's fields under "State" (the built-in JSON console formatter).</summary>
    Json,
}
