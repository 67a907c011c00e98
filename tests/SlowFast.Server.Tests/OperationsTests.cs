using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;

namespace SlowFast.Server.Tests;

/// <summary>Operating the server: admission limit (429), metrics, uploaded files.</summary>
[Collection(ServerCollection.Name)]
public sealed class OperationsTests(ServerFixture f)
{
    private static StringContent Json(JsonObject body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    [Fact]
    public async Task BeyondMaxQueue_Is429WithRetryAfter_AndTheServerKeepsServing()
    {
        await using var app = ServerFixture.Start(new ServerOptions { ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MaxQueue = 2 });
        await app.StartAsync();
        string url = app.Urls.First() + "/v1/chat/completions";
        var backend = app.Services.GetRequiredService<ChatBackend>();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(3) };
        using var stopSlow = new CancellationTokenSource();
        var slowBody = ServerFixture.Request(new JsonArray(ServerFixture.User("Tell a long story.")), maxTokens: 3000, frames: null);
        var slow = Enumerable.Range(0, 2).Select(_ => http.PostAsync(url, Json(slowBody), stopSlow.Token)).ToList();
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (backend.Model.Engine.Stats is var s && s.Running + s.Waiting < 2 && DateTime.UtcNow < deadline) await Task.Delay(10);
            Assert.Equal(2, backend.InFlight);

            using var refused = await http.PostAsync(url, Json(ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), maxTokens: 1, frames: null)));
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            Assert.True(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds >= 1);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
            Assert.Equal("rate_limit_exceeded", error["type"]!.GetValue<string>());
            Assert.Equal(2, backend.InFlight);
        }
        finally
        {
            stopSlow.Cancel();
            foreach (var t in slow) { try { (await t).Dispose(); } catch (OperationCanceledException) { } }
        }

        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (backend.InFlight > 0 && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Equal(0, backend.InFlight);
        using var ok = await http.PostAsync(url, Json(ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), maxTokens: 1, frames: null)));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        await app.StopAsync();
    }

    /// <summary>The samples of /metrics: each series (name with labels) and its value.</summary>
    private async Task<Dictionary<string, double>> MetricsAsync()
    {
        using var response = await f.Http.GetAsync(f.BaseUrl + "/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType);
        var samples = new Dictionary<string, double>();
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            int space = line.LastIndexOf(' ');
            samples[line[..space]] = double.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        return samples;
    }

    private static double Sum(Dictionary<string, double> samples, string name, string? labelContains = null) =>
        samples.Where(kv => (kv.Key == name || kv.Key.StartsWith(name + "{", StringComparison.Ordinal))
                            && (labelContains == null || kv.Key.Contains(labelContains, StringComparison.Ordinal))).Sum(kv => kv.Value);

    [Fact]
    public async Task Metrics_CountRequestsTokensAndTheVideoCache()
    {
        var before = await MetricsAsync();
        // A still image the other tests do not send at this size: a miss, then a hit on the follow-up.
        var part = new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = ServerFixture.DataUrl(f.ImagePath, "image/png") } };
        var first = ServerFixture.Request(new JsonArray(ServerFixture.User("What is this? (metrics)", part)), maxTokens: 3);
        var (status, body) = await f.PostAsync(first);
        Assert.Equal(200, status);
        var (status2, body2) = await f.PostAsync(first);
        Assert.Equal(200, status2);
        AssertError(await f.PostAsync("{}", "/v1/nothing-here"));

        var after = await MetricsAsync();
        double Delta(string name, string? label = null) => Sum(after, name, label) - Sum(before, name, label);
        Assert.Equal(2, Delta("http_requests_received_total", "code=\"200\""));
        Assert.Equal(1, Delta("http_requests_received_total", "code=\"404\""));
        Assert.Equal(2, Delta("slowfast_time_to_first_token_seconds_count"));
        Assert.True(Delta("slowfast_time_to_first_token_seconds_sum") > 0);
        Assert.Equal(2, Delta("slowfast_time_per_output_token_seconds_count"));
        Assert.Equal(6, Delta("slowfast_completion_tokens_total"));
        int prompt = body["usage"]!["prompt_tokens"]!.GetValue<int>();
        Assert.Equal(2 * prompt, Delta("slowfast_prompt_tokens_total"));
        int cached = body2["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
        Assert.True(cached > 0);
        Assert.Equal(body["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>() + cached, Delta("slowfast_prompt_tokens_cached_total"));
        Assert.True(Delta("slowfast_video_cache_hits_total") >= 1);
        Assert.Equal(2, Delta("slowfast_video_cache_hits_total") + Delta("slowfast_video_cache_misses_total"));
        Assert.Equal(0, Sum(after, "slowfast_requests_in_flight"));
        Assert.Equal(0, Sum(after, "slowfast_engine_running_sequences"));
        Assert.Equal(0, Sum(after, "slowfast_engine_waiting_sequences"));
        Assert.True(after.ContainsKey("slowfast_requests_rejected_total"));
    }

    private static void AssertError((int Status, JsonObject Body) r) => Assert.NotNull(r.Body["error"]);

    private static MultipartFormDataContent Upload(byte[] bytes, string fileName, string? purpose = "vision")
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("video/mp4");
        form.Add(file, "file", fileName);
        if (purpose != null) form.Add(new StringContent(purpose), "purpose");
        return form;
    }

    private static async Task<(int Status, JsonObject Body)> Read(HttpResponseMessage r) =>
        ((int)r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject());

    [Fact]
    public async Task UploadedFile_AnswersAsTheSameVideoSentAsDataUrl()
    {
        byte[] video = File.ReadAllBytes(f.VideoPath);
        var (status, file) = await Read(await f.Http.PostAsync(f.BaseUrl + "/v1/files", Upload(video, "clip.mp4")));
        Assert.Equal(200, status);
        string id = file["id"]!.GetValue<string>();
        Assert.Matches("^file-[0-9a-f]{32}$", id);
        Assert.Equal("file", file["object"]!.GetValue<string>());
        Assert.Equal(video.Length, file["bytes"]!.GetValue<long>());
        Assert.Equal("clip.mp4", file["filename"]!.GetValue<string>());
        Assert.Equal("vision", file["purpose"]!.GetValue<string>());

        var (shown, shownBody) = await Read(await f.Http.GetAsync(f.BaseUrl + "/v1/files/" + id));
        Assert.Equal(200, shown);
        Assert.Equal(id, shownBody["id"]!.GetValue<string>());
        var list = JsonNode.Parse(await f.Http.GetStringAsync(f.BaseUrl + "/v1/files"))!;
        Assert.Contains(list["data"]!.AsArray(), x => x!["id"]!.GetValue<string>() == id);

        JsonObject Ask(string url) => ServerFixture.Request(new JsonArray(ServerFixture.User("What happens? (upload)", ServerFixture.VideoPart(url))));
        var (s0, viaData) = await f.PostAsync(Ask(ServerFixture.DataUrl(f.VideoPath, "video/mp4")));
        var (s1, viaId) = await f.PostAsync(Ask(id));
        var (s2, viaUrl) = await f.PostAsync(Ask(UploadedFiles.UrlPrefix + id));
        Assert.Equal((200, 200, 200), (s0, s1, s2));
        string expected = viaData["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.Equal(expected, viaId["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(expected, viaUrl["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(viaData["usage"]!["prompt_tokens"]!.GetValue<int>(), viaId["usage"]!["prompt_tokens"]!.GetValue<int>());

        var (deleted, deletedBody) = await Read(await f.Http.DeleteAsync(f.BaseUrl + "/v1/files/" + id));
        Assert.Equal(200, deleted);
        Assert.True(deletedBody["deleted"]!.GetValue<bool>());
        var (gone, goneBody) = await f.PostAsync(Ask(id));
        Assert.Equal(400, gone);
        Assert.Equal("file_not_found", goneBody["error"]!["code"]!.GetValue<string>());
        Assert.Equal(404, (await Read(await f.Http.GetAsync(f.BaseUrl + "/v1/files/" + id))).Status);
    }

    [Fact]
    public async Task UnknownFileId_IsAnErrorObject()
    {
        var ask = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", ServerFixture.VideoPart("file-0123456789abcdef0123456789abcdef"))));
        var (status, body) = await f.PostAsync(ask);
        Assert.Equal(400, status);
        Assert.Equal("file_not_found", body["error"]!["code"]!.GetValue<string>());
        Assert.Equal("messages[0].content[1].video_url.url", body["error"]!["param"]!.GetValue<string>());
        ask = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", ServerFixture.VideoPart(UploadedFiles.UrlPrefix + "../../etc/passwd"))));
        Assert.Equal("file_not_found", (await f.PostAsync(ask)).Body["error"]!["code"]!.GetValue<string>());
        var (missing, missingBody) = await Read(await f.Http.GetAsync(f.BaseUrl + "/v1/files/file-nope"));
        Assert.Equal(404, missing);
        Assert.Equal("file_not_found", missingBody["error"]!["code"]!.GetValue<string>());
        var (noField, noFieldBody) = await Read(await f.Http.PostAsync(f.BaseUrl + "/v1/files", new MultipartFormDataContent { { new StringContent("vision"), "purpose" } }));
        Assert.Equal(400, noField);
        Assert.Equal("missing_required_parameter", noFieldBody["error"]!["code"]!.GetValue<string>());
        var (notForm, _) = await Read(await f.Http.PostAsync(f.BaseUrl + "/v1/files", Json(new JsonObject())));
        Assert.Equal(400, notForm);
    }

    [Fact]
    public async Task OversizeUpload_Is413()
    {
        await using var app = ServerFixture.Start(new ServerOptions { ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MaxUploadBytes = 4096 });
        await app.StartAsync();
        using var http = new HttpClient();
        var (status, body) = await Read(await http.PostAsync(app.Urls.First() + "/v1/files", Upload(new byte[10_000], "big.mp4")));
        Assert.Equal(413, status);
        Assert.Equal("request_too_large", body["error"]!["code"]!.GetValue<string>());
        var (small, _) = await Read(await http.PostAsync(app.Urls.First() + "/v1/files", Upload(new byte[1000], "small.mp4", purpose: null)));
        Assert.Equal(200, small);
        await app.StopAsync();
    }

    [Fact]
    public async Task LlamaCppInputVideo_DataAndUrl_AnswerAsVideoUrl()
    {
        JsonObject Ask(JsonObject part) => ServerFixture.Request(new JsonArray(ServerFixture.User("What happens? (input_video)", part)));
        var (s0, viaVideoUrl) = await f.PostAsync(Ask(ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath))));
        var (s1, viaData) = await f.PostAsync(Ask(new JsonObject
        {
            ["type"] = "input_video",
            ["input_video"] = new JsonObject { ["data"] = Convert.ToBase64String(File.ReadAllBytes(f.VideoPath)) },
        }));
        var (s2, viaUrl) = await f.PostAsync(Ask(new JsonObject
        {
            ["type"] = "input_video",
            ["input_video"] = new JsonObject { ["url"] = ServerFixture.FileUrl(f.VideoPath) },
        }));
        Assert.Equal((200, 200, 200), (s0, s1, s2));
        string expected = viaVideoUrl["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.Equal(expected, viaData["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(expected, viaUrl["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        var (bad, badBody) = await f.PostAsync(Ask(new JsonObject { ["type"] = "input_video", ["input_video"] = new JsonObject() }));
        Assert.Equal(400, bad);
        Assert.Equal("messages[0].content[1].input_video", badBody["error"]!["param"]!.GetValue<string>());
    }
}
