using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Generation;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Server.Tests;

/// <summary>
/// Videos given frame by frame (vLLM's <c>data:video/jpeg;base64,F1,F2,...</c>, several <c>image_url</c>
/// parts with --images-as-video) and remote http(s) media (only ever from a file server on 127.0.0.1).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class MediaShapesTests(ServerFixture f)
{
    private const string Question = "What happens in these frames?";

    private static void AssertError(int status, string code, (int Status, JsonObject Body) r, string? inMessage = null)
    {
        Assert.Equal(status, r.Status);
        var error = r.Body["error"]!.AsObject();
        Assert.Equal(code, error["code"]?.GetValue<string>());
        if (inMessage != null) Assert.Contains(inMessage, error["message"]!.GetValue<string>());
    }

    private static string Content(JsonObject body) => body["choices"]![0]!["message"]!["content"]!.GetValue<string>();

    /// <summary>Four JPEG frames of a test pattern, made with ffmpeg (once per test).</summary>
    private string[] JpegFrames()
    {
        string dir = Directory.CreateTempSubdirectory("sf-frames-").FullName;
        ServerFixture.Ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-frames:v", "4", "-q:v", "3", Path.Combine(dir, "f%d.jpg"));
        return [.. Enumerable.Range(1, 4).Select(i => Path.Combine(dir, $"f{i}.jpg"))];
    }

    /// <summary>The model's own answer about these frames, each prepared as a video frame is, stacked into one video.</summary>
    private GenerationResult DirectAnswer(string[] frames, int tokens)
    {
        var processor = new SlowFastProcessor(f.Direct.Config);
        var options = processor.VideoOptionsFor(1) with { Aspect = processor.VideoAspect };
        var pixels = frames.SelectMany(p => processor.Load(new VisualInput(VisualInputKind.Image, p, 1, options)).PixelValues).ToArray();
        var visual = f.Direct.EncodeVideo(pixels, frames.Length);
        return f.Direct.Generate(f.Direct.QuestionPrompt(Question, true), visual, ServerFixture.Greedy(tokens));
    }

    private static string FrameList(IEnumerable<string> base64) => "data:video/jpeg;base64," + string.Join(",", base64);

    private static JsonObject Ask(params JsonObject[] parts)
    {
        var content = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = Question });
        foreach (var p in parts) content.Add(p.DeepClone());
        return ServerFixture.Request(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }), frames: null);
    }

    private static JsonObject ImagePart(string url) => new() { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } };

    [Fact]
    public async Task VllmFrameList_IsOneVideoOfThoseFrames()
    {
        string[] frames = JpegFrames();
        var expected = DirectAnswer(frames, 4);
        var base64 = frames.Select(p => Convert.ToBase64String(File.ReadAllBytes(p))).ToArray();

        var (status, body) = await f.PostAsync(Ask(ServerFixture.VideoPart(FrameList(base64))));
        Assert.Equal(200, status);
        Assert.Equal(expected.Text, Content(body));
        Assert.Equal(expected.PromptPositions, body["usage"]!["prompt_tokens"]!.GetValue<int>());
        // Again: the same answer (the cache's tokens).
        var (again, body2) = await f.PostAsync(Ask(ServerFixture.VideoPart(FrameList(base64))));
        Assert.Equal(200, again);
        Assert.Equal(expected.Text, Content(body2));
        // Three of the frames: the model's answer about those three.
        var expected3 = DirectAnswer(frames[..3], 4);
        var (three, body3) = await f.PostAsync(Ask(ServerFixture.VideoPart(FrameList(base64[..3]))));
        Assert.Equal(200, three);
        Assert.Equal(expected3.Text, Content(body3));
        Assert.Equal(expected3.PromptPositions, body3["usage"]!["prompt_tokens"]!.GetValue<int>());

        AssertError(400, "invalid_url", await f.PostAsync(Ask(ServerFixture.VideoPart(FrameList([base64[0], base64[1], "!!not base64!!", base64[3]])))), "frame 2");
        AssertError(400, "invalid_media", await f.PostAsync(Ask(ServerFixture.VideoPart(FrameList([base64[0], Convert.ToBase64String("not a jpeg"u8.ToArray())])))), "frame 1");
        // The fixture's server takes at most 8 frames.
        AssertError(400, "too_many_frames", await f.PostAsync(Ask(ServerFixture.VideoPart(FrameList(Enumerable.Repeat(base64[0], 9))))));
    }

    [Fact]
    public async Task SeveralImages_AreRefused_UnlessImagesAsVideo_ThenTheyAreTheFramesOfOneVideo()
    {
        string[] frames = JpegFrames();
        var parts = frames.Select(p => ImagePart(ServerFixture.DataUrl(p, "image/jpeg"))).ToArray();
        AssertError(400, "too_many_media", await f.PostAsync(Ask(parts)), "--images-as-video");

        var expected = DirectAnswer(frames, 4);
        await using var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MaxFrames = 8, Precision = MatMulPrecision.Float32, ImagesAsVideo = true,
        });
        await app.StartAsync();
        using var http = new HttpClient();
        async Task<(int, JsonObject)> Post(JsonObject body)
        {
            using var r = await http.PostAsync(app.Urls.First() + "/v1/chat/completions", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
            return ((int)r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject());
        }
        var (status, body) = await Post(Ask(parts));
        Assert.Equal(200, status);
        Assert.Equal(expected.Text, Content(body));
        Assert.Equal(expected.PromptPositions, body["usage"]!["prompt_tokens"]!.GetValue<int>());
        // One image is still an image.
        var (one, _) = await Post(Ask(parts[0]));
        Assert.Equal(200, one);
        // A video and an image are still two media.
        AssertError(400, "too_many_media", await Post(Ask(ServerFixture.VideoPart(ServerFixture.DataUrl(f.VideoPath, "video/mp4")), parts[0])));
        await app.StopAsync();
    }

    /// <summary>A file server on 127.0.0.1: the fixture's video, redirect chains and loops, a body without a length.</summary>
    private async Task<WebApplication> FileServerAsync()
    {
        byte[] video = File.ReadAllBytes(f.VideoPath);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapGet("/clip.mp4", () => Results.Bytes(video, "video/mp4"));
        app.MapGet("/chunked.mp4", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "video/mp4";
            for (int i = 0; i < video.Length; i += 1000) { await ctx.Response.Body.WriteAsync(video.AsMemory(i, Math.Min(1000, video.Length - i))); await ctx.Response.Body.FlushAsync(); }
        });
        app.MapGet("/r/{n:int}", (int n) => Results.Redirect(n == 0 ? "/clip.mp4" : $"/r/{n - 1}"));
        app.MapGet("/loop", () => Results.Redirect("/loop"));
        app.MapGet("/slow.mp4", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "video/mp4";
            await ctx.Response.Body.WriteAsync(video.AsMemory(0, 100));
            await ctx.Response.Body.FlushAsync();
            try { await Task.Delay(TimeSpan.FromSeconds(30), ctx.RequestAborted); } catch (OperationCanceledException) { }
        });
        await app.StartAsync();
        return app;
    }

    [Fact]
    public async Task RemoteMedia_IsRefusedByDefault_RefusedFromLoopback_AndFetchedWhenAllowed()
    {
        await using var files = await FileServerAsync();
        string origin = files.Urls.First();
        JsonObject AskUrl(string url) => ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", ServerFixture.VideoPart(url))));

        // (a) Not allowed at all.
        AssertError(400, "unsupported_url", await f.PostAsync(AskUrl(origin + "/clip.mp4")), "--allow-remote-media");

        async Task<(int, JsonObject)> Post(WebApplication app, JsonObject body)
        {
            using var http = new HttpClient();
            using var r = await http.PostAsync(app.Urls.First() + "/v1/chat/completions", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
            return ((int)r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!.AsObject());
        }

        // (b) Allowed, but not from a loopback address.
        await using (var app = ServerFixture.Start(new ServerOptions { ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", AllowRemoteMedia = true }))
        {
            await app.StartAsync();
            AssertError(400, "media_address_refused", await Post(app, AskUrl(origin + "/clip.mp4")), "loopback");
            AssertError(400, "media_address_refused", await Post(app, AskUrl(origin.Replace("127.0.0.1", "localhost") + "/clip.mp4")), "loopback");
            await app.StopAsync();
        }

        // (c) Allowed from private addresses too: the same answer as the bytes sent as a data: URL.
        var expected = f.DirectAnswer("What happens?", 4, f.VideoPath);
        await using (var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MaxFrames = 8, Precision = MatMulPrecision.Float32,
            AllowRemoteMedia = true, AllowPrivateMedia = true,
        }))
        {
            await app.StartAsync();
            var (s0, viaData) = await Post(app, AskUrl(ServerFixture.DataUrl(f.VideoPath, "video/mp4")));
            var (s1, viaHttp) = await Post(app, AskUrl(origin + "/clip.mp4"));
            var (s2, viaChunks) = await Post(app, AskUrl(origin + "/chunked.mp4"));
            var (s3, viaRedirects) = await Post(app, AskUrl(origin + "/r/2")); // three redirects
            Assert.Equal((200, 200, 200, 200), (s0, s1, s2, s3));
            Assert.Equal(expected.Text, Content(viaData));
            Assert.Equal(expected.Text, Content(viaHttp));
            Assert.Equal(expected.Text, Content(viaChunks));
            Assert.Equal(expected.Text, Content(viaRedirects));
            // (e) Four redirects, and a loop.
            AssertError(400, "too_many_redirects", await Post(app, AskUrl(origin + "/r/3")));
            AssertError(400, "too_many_redirects", await Post(app, AskUrl(origin + "/loop")));
            AssertError(400, "media_fetch_failed", await Post(app, AskUrl(origin + "/missing.mp4")), "404");
            await app.StopAsync();
        }

        // (d) Larger than the upload limit, with and without a Content-Length; slower than the time limit.
        Assert.True(new FileInfo(f.VideoPath).Length > 4096);
        await using (var app = ServerFixture.Start(new ServerOptions
        {
            ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MaxUploadBytes = 4096, AllowRemoteMedia = true, AllowPrivateMedia = true,
            RemoteMediaTimeLimit = TimeSpan.FromSeconds(1),
        }))
        {
            await app.StartAsync();
            AssertError(400, "media_too_large", await Post(app, AskUrl(origin + "/clip.mp4")));
            AssertError(400, "media_too_large", await Post(app, AskUrl(origin + "/chunked.mp4")));
            var watch = System.Diagnostics.Stopwatch.StartNew();
            AssertError(400, "media_fetch_timeout", await Post(app, AskUrl(origin + "/slow.mp4")));
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"{watch.Elapsed}");
            await app.StopAsync();
        }
        await files.StopAsync();
    }

    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("10.1.2.3", "private")]
    [InlineData("172.16.0.1", "private")]
    [InlineData("172.31.255.255", "private")]
    [InlineData("192.168.1.1", "private")]
    [InlineData("169.254.169.254", "link-local")]
    [InlineData("224.0.0.1", "multicast")]
    [InlineData("0.0.0.0", "unspecified")]
    [InlineData("::1", "loopback")]
    [InlineData("::", "unspecified")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("fc00::1", "private")]
    [InlineData("fd12:3456::1", "private")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("::ffff:192.168.0.1", "private")]
    [InlineData("::ffff:127.0.0.1", "loopback")]
    [InlineData("8.8.8.8", null)]
    [InlineData("172.32.0.1", null)]
    [InlineData("2001:4860:4860::8888", null)]
    public void AddressRules(string address, string? rule) =>
        Assert.Equal(rule, RemoteMedia.RuleOf(System.Net.IPAddress.Parse(address)));
}
