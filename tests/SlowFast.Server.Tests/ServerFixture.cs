using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using SlowFast.Model;
using SlowFast.Model.Engine;
using SlowFast.Model.Generation;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Server.Tests;

/// <summary>
/// A tiny random checkpoint, a media root with an ffmpeg-made video and image, the real server on a
/// loopback port, and the same checkpoint loaded directly (what the server's answers must equal).
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string ModelId = "tiny";
    public const int Frames = 4;

    public string Root { get; } = Directory.CreateTempSubdirectory("sf-server-tests-").FullName;
    public string ModelDir => Path.Combine(Root, ModelId);
    public string MediaRoot => Path.Combine(Root, "media");
    public string VideoPath => Path.Combine(MediaRoot, "clip.mp4");
    public string ImagePath => Path.Combine(MediaRoot, "still.png");
    /// <summary>A video outside the media root (file:// URLs to it are refused).</summary>
    public string OutsidePath => Path.Combine(Root, "outside.mp4");

    public WebApplication App { get; private set; } = null!;
    public ChatBackend Backend => App.Services.GetRequiredService<ChatBackend>();
    public string BaseUrl { get; private set; } = "";
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromMinutes(3) };
    public SlowFastModel Direct { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(MediaRoot);
        var config = SlowFastConfig.WithOverrides(Presets.Get("tiny"), [], "test");
        ModelCreator.Create(config, new ModelCreator.Options(ModelDir, DType.F32, 7, TokenizerJson()));
        Ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1", "-pix_fmt", "yuv420p", VideoPath);
        Ffmpeg("-f", "lavfi", "-i", "testsrc2=size=200x150", "-frames:v", "1", ImagePath);
        File.Copy(VideoPath, OutsidePath);
        App = Start(new ServerOptions
        {
            ModelDir = ModelDir, Urls = "http://127.0.0.1:0", MediaRoot = MediaRoot, MaxFrames = 8,
            Precision = MatMulPrecision.Float32,
        });
        await App.StartAsync();
        BaseUrl = App.Urls.First();
        Direct = SlowFastModel.Load(ModelDir, engine: new EngineOptions { DefaultPrecision = MatMulPrecision.Float32 });
    }

    public static WebApplication Start(ServerOptions options) => SlowFastServer.Build(options);

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Direct.Dispose();
        Http.Dispose();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }

    // ------------------------------------------------------------------ what the model gives directly

    public static GenerationOptions Greedy(int tokens) => new() { MaxNewTokens = tokens, Temperature = 0 };

    /// <summary>The answer of <see cref="SlowFastModel"/> itself to a one-question prompt, about <paramref name="media"/> if given.</summary>
    public GenerationResult DirectAnswer(string question, int tokens, string? media = null, bool image = false)
    {
        var processor = new SlowFastProcessor(Direct.Config);
        Model.Vision.VisualTokens? visual = null;
        if (media != null)
        {
            var pixels = image ? processor.LoadImage(media) : processor.LoadVideo(media, Frames);
            visual = Direct.EncodeVideo(pixels.PixelValues, pixels.FrameCount);
        }
        return Direct.Generate(Direct.QuestionPrompt(question, media != null), visual, Greedy(tokens));
    }

    // ------------------------------------------------------------------ HTTP helpers

    public async Task<(int Status, JsonObject Body)> PostAsync(string json, string path = "/v1/chat/completions")
    {
        using var response = await Http.PostAsync(BaseUrl + path, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonNode.Parse(text)!.AsObject());
    }

    public Task<(int Status, JsonObject Body)> PostAsync(JsonObject body) => PostAsync(body.ToJsonString());

    /// <summary>A chat completion request of <paramref name="messages"/> with greedy decoding of a few tokens.</summary>
    public static JsonObject Request(JsonArray messages, int maxTokens = 4, int? frames = Frames) => new()
    {
        ["model"] = ModelId,
        ["messages"] = messages,
        ["max_tokens"] = maxTokens,
        ["temperature"] = 0,
        ["frames"] = frames,
    };

    public static JsonObject User(string text, JsonObject? mediaPart = null)
    {
        var content = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = text });
        if (mediaPart != null) content.Add(mediaPart);
        return new JsonObject { ["role"] = "user", ["content"] = content };
    }

    public static JsonObject VideoPart(string url, bool bare = false) => new()
    {
        ["type"] = "video_url",
        ["video_url"] = bare ? url : new JsonObject { ["url"] = url },
    };

    public static string FileUrl(string path) => new Uri(path).AbsoluteUri;

    public static string DataUrl(string path, string mime) => $"data:{mime};base64,{Convert.ToBase64String(File.ReadAllBytes(path))}";

    public static string TokenizerJson()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, ".cache", "qwen-tokenizer", "tokenizer.json");
            if (File.Exists(p)) return p;
        }
        throw new InvalidOperationException("Qwen tokenizer.json not found: run scripts/install-deps.sh first");
    }

    internal static void Ffmpeg(params string[] args)
    {
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-hide_banner", "-v", "error", "-y" }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg failed: {err}");
    }
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "server";
}
