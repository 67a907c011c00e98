using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Eval.Running;

/// <summary>The model's reply to one sample, with what it cost.</summary>
public sealed record ModelAnswer(string Text, SampleTimings Timings, SampleTokens Tokens, bool VideoReused);

/// <summary>Asks the model one question about one video: in this process, or through an OpenAI-compatible server.</summary>
public interface IAnswerer : IDisposable
{
    /// <summary>One line for the log: what answers (model and arithmetic, or the endpoint).</summary>
    string Description { get; }

    /// <summary>
    /// The answer to <paramref name="prompt"/> (the user text after the video) about <paramref name="video"/>: greedy,
    /// at most <see cref="EvalRunOptions.MaxNewTokens"/> tokens, in the qwen_1_5 chat template with the default system prompt.
    /// </summary>
    Task<ModelAnswer> AnswerAsync(EvalVideo video, string prompt, CancellationToken cancel);
}

/// <summary>
/// The model in this process. The last video's visual tokens are kept, and the runner asks the questions about one
/// video one after another, so a video is decoded and encoded once; the engine's prefix cache then serves the
/// prompt positions those questions share (system prompt, video, template).
/// </summary>
public sealed class LocalAnswerer : IAnswerer
{
    private readonly SlowFastModel _model;
    private readonly GenerationOptions _generation;
    private string? _lastKey;
    private VisualTokens? _lastTokens;

    public LocalAnswerer(SlowFastModel model, int maxNewTokens, MatMulPrecision precision)
    {
        _model = model;
        _generation = new GenerationOptions { MaxNewTokens = maxNewTokens, Temperature = 0, Precision = precision };
        Description = $"{model.Path} ({MatMul.EffectiveName(precision)})";
    }

    public string Description { get; }

    public async Task<ModelAnswer> AnswerAsync(EvalVideo video, string prompt, CancellationToken cancel)
    {
        var total = Stopwatch.StartNew();
        int[] ids = _model.QuestionPrompt(prompt, withVisual: true);
        int frames = video.FrameFiles?.Count ?? video.Options.Frames;
        _model.CheckPromptFits(ids, frames, "prompt");

        double videoSeconds = 0, visionSeconds = 0;
        bool reused = _lastKey == video.Key && _lastTokens != null;
        VisualTokens tokens;
        if (reused) tokens = _lastTokens!;
        else
        {
            _lastKey = null;
            _lastTokens = null;
            var clock = Stopwatch.StartNew();
            var (pixels, count) = await Task.Run(() => video.Load(cancel), cancel).ConfigureAwait(false);
            videoSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            tokens = await _model.Engine.EncodeAsync(pixels, count, _generation.Precision, cancellation: cancel).ConfigureAwait(false);
            visionSeconds = clock.Elapsed.TotalSeconds;
            (_lastKey, _lastTokens) = (video.Key, tokens);
        }
        var result = await _model.Engine.Submit(ids, tokens, _generation, cancellation: cancel).Completion.ConfigureAwait(false);
        return new ModelAnswer(result.Text,
            new SampleTimings(videoSeconds, visionSeconds, result.PrefillTime.TotalSeconds, result.DecodeTime.TotalSeconds, total.Elapsed.TotalSeconds),
            new SampleTokens(result.PromptPositions, result.TokenIds.Length, result.ReusedPositions), reused);
    }

    public void Dispose() => _model.Dispose();
}

/// <summary>
/// A running <c>slowfast serve</c> or any OpenAI-compatible server that takes <c>video_url</c> parts: each question
/// is POSTed to /v1/chat/completions with the video as a <c>file://</c> URL (the server must see the same files,
/// e.g. <c>slowfast serve --media-root DATA</c>) or, with inline media, as a <c>data:</c> URL; a frame folder is sent
/// as vLLM's <c>data:video/jpeg;base64,F1,F2,...</c> list of the chosen frames. The sampling goes along as vLLM's
/// <c>media_io_kwargs.video</c> {num_frames, fps}; greedy, max_tokens as the reference.
/// </summary>
public sealed class EndpointAnswerer : IAnswerer
{
    private readonly HttpClient _http;
    private readonly Uri _completions;
    private readonly string _modelId;
    private readonly int _maxNewTokens;
    private readonly bool _inlineMedia;

    public EndpointAnswerer(string endpoint, string? modelId, int maxNewTokens, bool inlineMedia, string? apiKey, TimeSpan timeout)
    {
        if (!Uri.TryCreate(endpoint.TrimEnd('/'), UriKind.Absolute, out var baseUri) || (baseUri.Scheme != "http" && baseUri.Scheme != "https"))
            throw new UserError($"--endpoint must be an http(s) URL, not '{endpoint}'");
        string path = baseUri.AbsolutePath.TrimEnd('/');
        string root = path.EndsWith("/chat/completions", StringComparison.Ordinal) ? path[..^"/chat/completions".Length]
            : path.EndsWith("/v1", StringComparison.Ordinal) ? path : path + "/v1";
        _completions = new UriBuilder(baseUri) { Path = root + "/chat/completions" }.Uri;
        _http = new HttpClient { Timeout = timeout };
        if (apiKey != null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        _maxNewTokens = maxNewTokens;
        _inlineMedia = inlineMedia;
        _modelId = modelId ?? FirstModel(new UriBuilder(baseUri) { Path = root + "/models" }.Uri);
        Description = $"{_completions} (model {_modelId})";
    }

    public string Description { get; }

    /// <summary>The id the server lists first under /v1/models (slowfast serve lists its one model).</summary>
    private string FirstModel(Uri models)
    {
        try
        {
            using var response = _http.GetAsync(models).GetAwaiter().GetResult();
            string text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode) throw new UserError($"{models}: HTTP {(int)response.StatusCode} ({OneLine(text)}); give the model id with --model");
            return JsonNode.Parse(text)?["data"]?[0]?["id"]?.GetValue<string>()
                ?? throw new UserError($"{models}: no model listed; give the model id with --model");
        }
        catch (HttpRequestException e) { throw new UserError($"{models}: cannot reach the server ({e.Message})"); }
        catch (TaskCanceledException) { throw new UserError($"{models}: the server did not answer in time"); }
        catch (JsonException) { throw new UserError($"{models}: not an OpenAI model list; give the model id with --model"); }
    }

    public async Task<ModelAnswer> AnswerAsync(EvalVideo video, string prompt, CancellationToken cancel)
    {
        if (video.Options.Start != null || video.Options.End != null)
            throw new UserError("a sample with a time range cannot be sent to --endpoint (the request has no field for it)");
        var total = Stopwatch.StartNew();
        var body = new JsonObject
        {
            ["model"] = _modelId,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "video_url", ["video_url"] = new JsonObject { ["url"] = await MediaUrlAsync(video, cancel).ConfigureAwait(false) } },
                    new JsonObject { ["type"] = "text", ["text"] = prompt }),
            }),
            ["max_tokens"] = _maxNewTokens,
            ["temperature"] = 0,
            ["top_p"] = 1,
            ["media_io_kwargs"] = new JsonObject
            {
                ["video"] = video.FrameFiles == null
                    ? new JsonObject { ["num_frames"] = video.Options.Frames, ["fps"] = video.Options.TargetFps }
                    : new JsonObject { ["num_frames"] = video.FrameFiles.Count },
            },
        };
        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        HttpResponseMessage response;
        try { response = await _http.PostAsync(_completions, content, cancel).ConfigureAwait(false); }
        catch (HttpRequestException e) { throw new UserError($"{_completions}: {e.Message}"); }
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                string message = TryJson(text)?["error"]?["message"]?.GetValue<string>() ?? OneLine(text);
                throw new UserError($"server: HTTP {(int)response.StatusCode}: {message}");
            }
            var reply = TryJson(text) ?? throw new UserError($"server: the reply is not JSON ({OneLine(text)})");
            string answer = reply["choices"]?[0]?["message"]?["content"]?.GetValue<string>() ?? "";
            var usage = reply["usage"];
            var tokens = new SampleTokens(usage?["prompt_tokens"]?.GetValue<int>() ?? 0, usage?["completion_tokens"]?.GetValue<int>() ?? 0, 0);
            return new ModelAnswer(answer, new SampleTimings(null, null, null, null, total.Elapsed.TotalSeconds), tokens, false);
        }
    }

    private async Task<string> MediaUrlAsync(EvalVideo video, CancellationToken cancel)
    {
        if (video.FrameFiles is { } frames)
        {
            var parts = new List<string>();
            foreach (var f in frames) parts.Add(Convert.ToBase64String(await File.ReadAllBytesAsync(f, cancel).ConfigureAwait(false)));
            return "data:video/jpeg;base64," + string.Join(",", parts);
        }
        if (!_inlineMedia) return new Uri(video.Path).AbsoluteUri;
        string type = System.IO.Path.GetExtension(video.Path).ToLowerInvariant() switch
        {
            ".webm" => "video/webm",
            ".mkv" => "video/x-matroska",
            ".avi" => "video/x-msvideo",
            ".mov" => "video/quicktime",
            _ => "video/mp4",
        };
        return $"data:{type};base64," + Convert.ToBase64String(await File.ReadAllBytesAsync(video.Path, cancel).ConfigureAwait(false));
    }

    private static JsonNode? TryJson(string text)
    {
        try { return JsonNode.Parse(text); }
        catch (JsonException) { return null; }
    }

    private static string OneLine(string s)
    {
        s = s.ReplaceLineEndings(" ").Trim();
        return s.Length <= 200 ? s : s[..200] + "…";
    }

    public void Dispose() => _http.Dispose();
}
