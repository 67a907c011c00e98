using Prometheus;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;

namespace SlowFast.Server;

/// <summary>
/// What <c>GET /metrics</c> exports (Prometheus text format, through prometheus-net), in a registry of this
/// server's own (two servers in one process do not mix). Requests by status code come from prometheus-net's
/// HTTP middleware (<c>http_requests_received_total{code=...}</c>); the rest is here: requests in flight and
/// refused, the engine's running and waiting sequences, time to first token and per output token, prompt
/// tokens and those reused from the prefix cache, output tokens, the encoded-video cache's hits and misses,
/// and the vision work per frame of what was encoded.
/// </summary>
public sealed class ServerMetrics
{
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    public Gauge InFlight { get; }
    public Gauge EngineRunning { get; }
    public Gauge EngineWaiting { get; }
    public Counter Rejected { get; }
    public Histogram TimeToFirstToken { get; }
    public Histogram TimePerOutputToken { get; }
    public Counter PromptTokens { get; }
    public Counter CachedPromptTokens { get; }
    public Counter CompletionTokens { get; }
    public Counter VideoCacheHits { get; }
    public Counter VideoCacheMisses { get; }
    public Histogram VisionSecondsPerFrame { get; }

    public ServerMetrics(Func<int> inFlight, Func<EngineStats> engine)
    {
        var f = Metrics.WithCustomRegistry(Registry);
        InFlight = f.CreateGauge("slowfast_requests_in_flight", "Chat completions admitted and not yet answered (waiting or running; --max-queue bounds it).");
        EngineRunning = f.CreateGauge("slowfast_engine_running_sequences", "Sequences the engine is running (prefill or decoding).");
        EngineWaiting = f.CreateGauge("slowfast_engine_waiting_sequences", "Sequences waiting for a place in the engine.");
        Rejected = f.CreateCounter("slowfast_requests_rejected_total", "Chat completions refused with 429 because --max-queue requests were in flight.");
        TimeToFirstToken = f.CreateHistogram("slowfast_time_to_first_token_seconds", "From the request's arrival (media included) to its first output token.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.01, 2, 16) });
        TimePerOutputToken = f.CreateHistogram("slowfast_time_per_output_token_seconds", "Mean time per output token after the first, one observation per request.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) });
        PromptTokens = f.CreateCounter("slowfast_prompt_tokens_total", "Prompt positions of answered requests (visual tokens included).");
        CachedPromptTokens = f.CreateCounter("slowfast_prompt_tokens_cached_total", "Prompt positions reused from the prefix cache, not computed.");
        CompletionTokens = f.CreateCounter("slowfast_completion_tokens_total", "Output tokens of answered requests.");
        VideoCacheHits = f.CreateCounter("slowfast_video_cache_hits_total", "Videos and images whose encoded tokens were found in the cache.");
        VideoCacheMisses = f.CreateCounter("slowfast_video_cache_misses_total", "Videos and images that had to be decoded and encoded.");
        VisionSecondsPerFrame = f.CreateHistogram("slowfast_vision_seconds_per_frame", "Seconds of vision work (decoding and the vision tower) per frame, one observation per video or image encoded (cache hits are not).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        Registry.AddBeforeCollectCallback(() =>
        {
            var s = engine();
            InFlight.Set(inFlight());
            EngineRunning.Set(s.Running);
            EngineWaiting.Set(s.Waiting);
        });
    }

    /// <summary>Records the vision work of one encoded video or image: <paramref name="seconds"/> over <paramref name="frames"/>.</summary>
    public void ObserveVision(TimeSpan seconds, int frames)
    {
        if (frames > 0) VisionSecondsPerFrame.Observe(seconds.TotalSeconds / frames);
    }

    /// <summary>Records an answered request; <paramref name="beforeSubmit"/> is the time from its arrival to its submission to the engine.</summary>
    public void Observe(GenerationResult result, TimeSpan beforeSubmit)
    {
        TimeToFirstToken.Observe((beforeSubmit + result.TimeToFirstToken).TotalSeconds);
        if (result.TokenIds.Length > 1) TimePerOutputToken.Observe(result.DecodeTime.TotalSeconds / (result.TokenIds.Length - 1));
        PromptTokens.Inc(result.PromptPositions);
        CachedPromptTokens.Inc(result.ReusedPositions);
        CompletionTokens.Inc(result.TokenIds.Length);
    }
}
