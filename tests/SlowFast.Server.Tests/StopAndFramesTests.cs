using System.Text;
using System.Text.Json.Nodes;

namespace SlowFast.Server.Tests;

/// <summary><c>stop</c> strings, and the frame count given vLLM's and SGLang's ways.</summary>
[Collection(ServerCollection.Name)]
public sealed class StopAndFramesTests(ServerFixture f)
{
    private const string Question = "Describe the scene.";
    private const int Tokens = 8;

    /// <summary>A stop string from the middle of the greedy answer, and the answer cut just before its first occurrence.</summary>
    private (string Stop, string Cut) StopInAnswer()
    {
        string full = f.DirectAnswer(Question, Tokens).Text;
        Assert.True(full.Length >= 4, $"greedy answer too short: '{full}'");
        string stop = full.Substring(full.Length / 2, 2);
        return (stop, full[..full.IndexOf(stop, StringComparison.Ordinal)]);
    }

    private static JsonObject Ask(JsonNode? stop)
    {
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User(Question)), maxTokens: Tokens, frames: null);
        request["stop"] = stop;
        return request;
    }

    [Fact]
    public async Task Stop_CutsTheAnswer()
    {
        var (stop, cut) = StopInAnswer();
        foreach (var form in new JsonNode[] { JsonValue.Create(stop), new JsonArray("\u0001never\u0002", stop) })
        {
            var (status, body) = await f.PostAsync(Ask(form));
            Assert.Equal(200, status);
            var choice = body["choices"]![0]!;
            Assert.Equal(cut, choice["message"]!["content"]!.GetValue<string>());
            Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
            Assert.True(body["usage"]!["prompt_tokens"]!.GetValue<int>() > 0);
        }
    }

    [Fact]
    public async Task Stop_Streaming_NeverSendsTextPastIt()
    {
        var (stop, cut) = StopInAnswer();
        var request = Ask(new JsonArray(stop));
        request["stream"] = true;
        using var message = new HttpRequestMessage(HttpMethod.Post, f.BaseUrl + "/v1/chat/completions")
        { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        var events = new List<string>();
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            string? line;
            while ((line = await reader.ReadLineAsync()) != null)
                if (line.Length > 0) events.Add(line["data: ".Length..]);
        }
        Assert.Equal("[DONE]", events[^1]);
        var choices = events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
        var text = new StringBuilder();
        foreach (var c in choices)
        {
            if (c["delta"]!["content"] is { } content) text.Append(content.GetValue<string>());
            Assert.StartsWith(text.ToString(), cut); // what was sent is always a prefix of the cut answer
        }
        Assert.Equal(cut, text.ToString());
        Assert.Equal("stop", choices[^1]["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task BadStop_Is400()
    {
        foreach (var bad in new JsonNode[] { JsonValue.Create(3), new JsonArray("a", "b", "c", "d", "e"), new JsonArray("a", 1) })
        {
            var (status, body) = await f.PostAsync(Ask(bad));
            Assert.Equal(400, status);
            Assert.Equal("stop", body["error"]!["param"]!.GetValue<string>());
        }
    }

    /// <summary>A one-token question about the fixture's video (1 s at 10 fps: 10 frames), with the sampling fields given.</summary>
    private async Task<(int Status, JsonObject Body)> AskAboutVideo(Action<JsonObject>? request = null, Action<JsonObject>? videoUrl = null)
    {
        var part = ServerFixture.VideoPart(ServerFixture.FileUrl(f.VideoPath));
        videoUrl?.Invoke(part["video_url"]!.AsObject());
        var body = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", part)), maxTokens: 1, frames: null);
        request?.Invoke(body);
        return await f.PostAsync(body);
    }

    /// <summary>The frames the server sampled, from the usage extension.</summary>
    private static int FramesSampled((int Status, JsonObject Body) r)
    {
        Assert.True(r.Status == 200, r.Body.ToJsonString());
        var extension = r.Body["usage"]!["slowfast"]!;
        int frames = extension["frames"]!.GetValue<int>();
        // The fast tokens grow with the frames (the slow ones are pooled per frame too).
        Assert.True(extension["fast_visual_tokens"]!.GetValue<int>() > 0 && extension["slow_visual_tokens"]!.GetValue<int>() > 0);
        return frames;
    }

    private static JsonObject Object(params (string Name, JsonNode? Value)[] fields)
    {
        var o = new JsonObject();
        foreach (var (name, value) in fields) o[name] = value;
        return o;
    }

    [Fact]
    public async Task FrameCount_FromEachField_IsWhatTheServerSamples()
    {
        // Nothing asked: the model's default (64 for tiny), capped by the server's --max-frames (8 in the fixture).
        Assert.Equal(8, FramesSampled(await AskAboutVideo()));
        Assert.Equal(3, FramesSampled(await AskAboutVideo(r => r["frames"] = 3)));
        Assert.Equal(5, FramesSampled(await AskAboutVideo(r => r["media_io_kwargs"] = Object(("video", Object(("num_frames", 5)))))));
        Assert.Equal(6, FramesSampled(await AskAboutVideo(videoUrl: v => v["max_frames"] = 6)));
        Assert.Equal(2, FramesSampled(await AskAboutVideo(videoUrl: v => v["frames"] = 2)));
        // The part's own field wins over the request's.
        Assert.Equal(2, FramesSampled(await AskAboutVideo(r => r["frames"] = 7, v => v["max_frames"] = 2)));
        // Beyond the server's --max-frames: 400 naming the field.
        var tooMany = await AskAboutVideo(r => r["media_io_kwargs"] = Object(("video", Object(("num_frames", 9)))));
        Assert.Equal(400, tooMany.Status);
        Assert.Equal("too_many_frames", tooMany.Body["error"]!["code"]!.GetValue<string>());
        var tooManyInPart = await AskAboutVideo(videoUrl: v => v["max_frames"] = 9);
        Assert.Equal(400, tooManyInPart.Status);
        Assert.Equal("messages[0].content[1].video_url.frames", tooManyInPart.Body["error"]!["param"]!.GetValue<string>());
    }

    /// <summary>
    /// fps sampling as the reference does it (FrameSampler.AtRate): every round(10 / fps)-th frame of the
    /// 10-fps video, thinned evenly to the frame count when there are more.
    /// </summary>
    [Fact]
    public async Task Fps_SamplesAtThatRate_CappedByTheFrameCount()
    {
        // fps 2: every 5th frame, 2 frames (under the default cap of 8).
        Assert.Equal(2, FramesSampled(await AskAboutVideo(r => r["mm_processor_kwargs"] = Object(("fps", 2)))));
        // fps 5: every 2nd frame, 5 frames; a cap of 3 thins them to 3.
        Assert.Equal(5, FramesSampled(await AskAboutVideo(r => r["fps"] = 5)));
        Assert.Equal(3, FramesSampled(await AskAboutVideo(r => { r["mm_processor_kwargs"] = Object(("fps", 5)); r["frames"] = 3; })));
        Assert.Equal(3, FramesSampled(await AskAboutVideo(r => r["media_io_kwargs"] = Object(("video", Object(("fps", 5), ("num_frames", 3)))))));
        // SGLang's fields inside the video_url object.
        Assert.Equal(4, FramesSampled(await AskAboutVideo(videoUrl: v => { v["fps"] = 5; v["max_frames"] = 4; })));
        Assert.Equal(2, FramesSampled(await AskAboutVideo(r => r["fps"] = 5, v => v["fps"] = 2)));
        // Above the video's own rate: every frame (the rate is capped at the video's), up to the cap of 8.
        Assert.Equal(8, FramesSampled(await AskAboutVideo(r => r["fps"] = 1000)));
        Assert.Equal(10, Media.FrameSampler.AtRate(10, 10, 1000, 64).Length); // (what 8 was thinned from)
    }

    [Fact]
    public async Task BadFps_Is400NamingTheField()
    {
        async Task Refused(string param, Action<JsonObject>? request = null, Action<JsonObject>? videoUrl = null)
        {
            var (status, body) = await AskAboutVideo(request, videoUrl);
            Assert.True(status == 400, body.ToJsonString());
            Assert.Equal(param, body["error"]!["param"]!.GetValue<string>());
            Assert.Equal("invalid_request_error", body["error"]!["type"]!.GetValue<string>());
        }
        await Refused("fps", r => r["fps"] = 0);
        await Refused("fps", r => r["fps"] = -2.5);
        await Refused("fps", r => r["fps"] = "fast");
        await Refused("mm_processor_kwargs.fps", r => r["mm_processor_kwargs"] = Object(("fps", 0)));
        await Refused("mm_processor_kwargs", r => r["mm_processor_kwargs"] = "fps=2");
        await Refused("media_io_kwargs.video.fps", r => r["media_io_kwargs"] = Object(("video", Object(("fps", -1)))));
        await Refused("messages[0].content[1].video_url.fps", videoUrl: v => v["fps"] = 0);
        await Refused("messages[0].content[1].video_url.fps", videoUrl: v => v["fps"] = new JsonArray(2));
    }
}
