using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace SlowFast.Server.Tests;

/// <summary>Every refusal is OpenAI's error object with the right 4xx status, code and param.</summary>
[Collection(ServerCollection.Name)]
public sealed class ErrorTests(ServerFixture f)
{
    private static void AssertError(int expectedStatus, string expectedCode, (int Status, JsonObject Body) r, string? param = null)
    {
        Assert.Equal(expectedStatus, r.Status);
        var error = r.Body["error"]!.AsObject();
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        Assert.NotNull(error["type"]);
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"));
        Assert.Equal(expectedCode, error["code"]?.GetValue<string>());
        if (param != null) Assert.Equal(param, error["param"]?.GetValue<string>());
    }

    private Task<(int, JsonObject)> AskAbout(JsonObject mediaPart, int? frames = ServerFixture.Frames) =>
        f.PostAsync(ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", mediaPart)), frames: frames));

    [Fact]
    public async Task MalformedJson_Is400() =>
        AssertError(400, "invalid_json", await f.PostAsync("{\"model\": \"tiny\", \"messages\": [", "/v1/chat/completions"));

    [Fact]
    public async Task MissingMessages_Is400() =>
        AssertError(400, "missing_required_parameter", await f.PostAsync("{\"model\": \"tiny\"}"), "messages");

    [Fact]
    public async Task UnknownModel_Is404()
    {
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")));
        request["model"] = "gpt-4o";
        AssertError(404, "model_not_found", await f.PostAsync(request), "model");
    }

    [Fact]
    public async Task UnknownRoute_Is404() => AssertError(404, "not_found", await f.PostAsync("{}", "/v1/embeddings"));

    [Fact]
    public async Task MissingFileBelowRoot_Is400() =>
        AssertError(400, "media_not_found", await AskAbout(ServerFixture.VideoPart(ServerFixture.FileUrl(Path.Combine(f.MediaRoot, "nope.mp4")))),
            "messages[0].content[1].video_url.url");

    [Fact]
    public async Task UndecodableMedia_Is400() =>
        AssertError(400, "invalid_media", await AskAbout(ServerFixture.VideoPart("data:video/mp4;base64," + Convert.ToBase64String(Encoding.UTF8.GetBytes("not a video at all")))),
            "messages[0].content[1].video_url");

    [Fact]
    public async Task InvalidBase64_Is400() =>
        AssertError(400, "invalid_url", await AskAbout(ServerFixture.VideoPart("data:video/mp4;base64,@@@")));

    [Fact]
    public async Task FileUrlOutsideTheRoot_Is400()
    {
        AssertError(400, "path_outside_media_root", await AskAbout(ServerFixture.VideoPart(ServerFixture.FileUrl(f.OutsidePath))));
        AssertError(400, "path_outside_media_root", await AskAbout(ServerFixture.VideoPart("file://" + f.MediaRoot + "/../outside.mp4")));
        AssertError(400, "path_outside_media_root", await AskAbout(ServerFixture.VideoPart("file:///etc/passwd")));
    }

    [Fact]
    public async Task SymlinkOutOfTheRoot_Is400()
    {
        string link = Path.Combine(f.MediaRoot, "escape.mp4");
        if (!File.Exists(link)) File.CreateSymbolicLink(link, f.OutsidePath);
        AssertError(400, "path_outside_media_root", await AskAbout(ServerFixture.VideoPart(ServerFixture.FileUrl(link))));
    }

    [Fact]
    public async Task RemoteUrl_Is400() =>
        AssertError(400, "unsupported_url", await AskAbout(ServerFixture.VideoPart("https://example.com/clip.mp4")));

    [Fact]
    public async Task UnsupportedContentPart_Is400() =>
        AssertError(400, "unsupported_content_type",
            await AskAbout(new JsonObject { ["type"] = "input_audio", ["input_audio"] = new JsonObject { ["data"] = "", ["format"] = "wav" } }),
            "messages[0].content[1].type");

    [Fact]
    public async Task TooManyFrames_Is400() =>
        AssertError(400, "too_many_frames", await AskAbout(ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath)), frames: 9), "frames");

    [Fact]
    public async Task TwoVideos_Is400()
    {
        string url = ServerFixture.FileUrl(f.VideoPath);
        var messages = new JsonArray(
            ServerFixture.User("First?", ServerFixture.VideoPart(url)),
            new JsonObject { ["role"] = "assistant", ["content"] = "Something." },
            ServerFixture.User("Second?", ServerFixture.VideoPart(url)));
        AssertError(400, "too_many_media", await f.PostAsync(ServerFixture.Request(messages)));
    }

    [Fact]
    public async Task BadSamplingOption_Is400()
    {
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")));
        request["top_p"] = 0;
        var (status, body) = await f.PostAsync(request);
        Assert.Equal(400, status);
        Assert.Equal("top_p", body["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task ImageMarkerInText_Is400() =>
        Assert.Equal(400, (await f.PostAsync(ServerFixture.Request(new JsonArray(ServerFixture.User("look: <image>"))))).Status);

    [Fact]
    public async Task ApiKey_IsRequiredOnV1_AndBodySizeIsLimited()
    {
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", ApiKey = "s3cret", MaxUploadBytes = 4096,
        });
        await app.StartAsync();
        string url = app.Urls.First();
        using var http = new HttpClient();
        string body = ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), maxTokens: 1, frames: null).ToJsonString();

        async Task<(int, JsonObject)> Post(string? key, string content)
        {
            using var m = new HttpRequestMessage(HttpMethod.Post, url + "/v1/chat/completions") { Content = new StringContent(content, Encoding.UTF8, "application/json") };
            if (key != null) m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var r = await http.SendAsync(m);
            return ((int)r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject());
        }

        AssertError(401, "invalid_api_key", await Post(null, body));
        AssertError(401, "invalid_api_key", await Post("wrong", body));
        AssertError(401, "invalid_api_key", await Post("s3cre", body));
        Assert.Equal(200, (await Post("s3cret", body)).Item1);
        Assert.Equal(200, (int)(await http.GetAsync(url + "/health")).StatusCode); // no key needed

        string big = ServerFixture.Request(new JsonArray(ServerFixture.User(new string('a', 10_000))), maxTokens: 1, frames: null).ToJsonString();
        AssertError(413, "request_too_large", await Post("s3cret", big));
        await app.StopAsync();
    }
}
