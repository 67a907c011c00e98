using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Server;

namespace SlowFast.Bench;

/// <summary>
/// `bench serve-load`: the OpenAI-compatible server in process on 127.0.0.1, driven over HTTP:
/// aggregate completion tokens/s with 1 client and with N concurrent clients (each sends one chat
/// completion, text only, greedy, --tokens new tokens), then the time to first token (streaming) of a
/// question about a video and of a follow-up question in the same conversation (the video comes from
/// the encoded-video cache and the earlier turn's prefix is reused).
/// Options: --model DIR or --preset tiny|small (default small: a temporary BF16 checkpoint with random
/// weights and the real Qwen tokenizer from .cache/qwen-tokenizer), --clients N (32), --queue N (the
/// server's --max-queue, 32), --tokens N (32), --frames N (8), --video FILE (default: a 2-second
/// testsrc2 clip made with ffmpeg), --no-video (the TTFT pair without a video).
/// </summary>
public static class ServeLoadBench
{
    public static int Run(string[] args)
    {
        string? modelDir = null, video = null;
        string preset = "small";
        int clients = 32, queue = ServerOptions.DefaultMaxQueue, tokens = 32, frames = 8;
        bool useVideo = true;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--model": modelDir = Next(); break;
                case "--preset": preset = Next(); break;
                case "--clients": clients = Int(); break;
                case "--queue": queue = Int(); break;
                case "--tokens": tokens = Int(); break;
                case "--frames": frames = Int(); break;
                case "--video": video = Next(); break;
                case "--no-video": useVideo = false; break;
                default: Console.Error.WriteLine($"bench serve-load: unknown option {args[i]}"); return 2;
            }
        }
        string temp = Directory.CreateTempSubdirectory("sf-serve-load-").FullName;
        try { return RunAsync(modelDir, preset, clients, queue, tokens, frames, useVideo ? video ?? MakeVideo(temp) : null, temp).GetAwaiter().GetResult(); }
        finally { try { Directory.Delete(temp, recursive: true); } catch (IOException) { } }
    }

    private static async Task<int> RunAsync(string? modelDir, string preset, int clients, int queue, int tokens, int frames, string? video, string temp)
    {
        if (modelDir == null)
        {
            if (preset is not ("tiny" or "small")) { Console.Error.WriteLine("bench serve-load: --preset tiny|small, or --model DIR"); return 2; }
            modelDir = Path.Combine(temp, preset);
            Console.WriteLine($"preset {preset}: writing a temporary BF16 checkpoint with random weights and the Qwen tokenizer");
            ModelCreator.Create(Presets.Get(preset), new ModelCreator.Options(modelDir, Tensors.DType.BF16, 0, TokenizerJson()));
        }
        var loadWatch = Stopwatch.StartNew();
        await using var app = SlowFastServer.Build(new ServerOptions { ModelDir = modelDir, ModelId = "bench", Urls = "http://127.0.0.1:0", MaxQueue = queue });
        await app.StartAsync();
        string baseUrl = app.Urls.First();
        Console.WriteLine($"server on {baseUrl} (model loaded in {loadWatch.Elapsed.TotalSeconds:F1} s), max queue {queue}, {Environment.ProcessorCount} logical CPUs, {tokens} new tokens per request");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Math.Max(clients, 1) }) { Timeout = TimeSpan.FromMinutes(30) };
        string url = baseUrl + "/v1/chat/completions";

        await PostAsync(http, url, Request(Question("warm-up"), tokens));

        // 1 client: requests one after another.
        const int sequential = 3;
        var watch = Stopwatch.StartNew();
        int oneTokens = 0;
        for (int i = 0; i < sequential; i++) oneTokens += (await PostAsync(http, url, Request(Question($"single {i}"), tokens))).Tokens;
        double oneSeconds = watch.Elapsed.TotalSeconds;
        Console.WriteLine($"1 client, {sequential} requests in turn: {oneTokens} completion tokens in {oneSeconds:F2} s = {oneTokens / oneSeconds:F1} tokens/s{Load()}");

        // N clients at once; resident memory before, and after the load once the server is idle again.
        long rssBefore = StatusKiB("VmRSS");
        watch.Restart();
        var all = await Task.WhenAll(Enumerable.Range(0, clients).Select(i => PostAsync(http, url, Request(Question($"client {i}"), tokens))));
        double manySeconds = watch.Elapsed.TotalSeconds;
        int manyTokens = all.Sum(r => r.Tokens), answered = all.Count(r => r.Status == 200), refused = all.Count(r => r.Status == 429);
        int other = clients - answered - refused;
        Console.WriteLine($"{clients} clients at once: {answered} answered, {refused} refused (429){(other > 0 ? $", {other} other" : "")}; " +
                          $"{manyTokens} completion tokens in {manySeconds:F2} s = {manyTokens / manySeconds:F1} tokens/s aggregate " +
                          $"({manyTokens / manySeconds / (oneTokens / oneSeconds):F1}x one client){Load()}");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        await Task.Delay(TimeSpan.FromSeconds(2));
        Console.WriteLine($"resident memory: {rssBefore / 1024.0:F0} MiB before the {clients} clients, {StatusKiB("VmRSS") / 1024.0:F0} MiB after them " +
                          $"(idle, after a collection), peak {StatusKiB("VmHWM") / 1024.0:F0} MiB");

        // Time to first token: a question, then a follow-up in the same conversation.
        string mediaUrl = video != null ? $"data:video/mp4;base64,{Convert.ToBase64String(File.ReadAllBytes(video))}" : "";
        JsonObject User(string text, bool withVideo)
        {
            var content = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = text });
            if (withVideo) content.Add(new JsonObject { ["type"] = "video_url", ["video_url"] = new JsonObject { ["url"] = mediaUrl } });
            return new JsonObject { ["role"] = "user", ["content"] = content };
        }
        var history = new JsonArray(User("What happens in this video? Describe it.", video != null));
        var first = await StreamAsync(http, url, Request(history.DeepClone().AsArray(), tokens, video != null ? frames : null));
        history.Add(new JsonObject { ["role"] = "assistant", ["content"] = first.Text });
        history.Add(User("And what happens at the end?", false));
        var follow = await StreamAsync(http, url, Request(history, tokens, video != null ? frames : null));
        string what = video != null ? $"about a {frames}-frame video" : "text only";
        Console.WriteLine($"time to first token, streaming ({what}): first question {first.Ttft * 1000:F0} ms " +
                          $"(prompt {first.Prompt} tokens, {first.Cached} cached), follow-up {follow.Ttft * 1000:F0} ms " +
                          $"(prompt {follow.Prompt} tokens, {follow.Cached} cached){Load()}");
        await app.StopAsync();
        return 0;
    }

    /// <summary>A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: peak resident); 0 off Linux.</summary>
    private static long StatusKiB(string field)
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal));
            return line == null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        catch (IOException) { return 0; }
    }

    /// <summary>The 1-minute load average after a phase (the machine may be shared; Linux only).</summary>
    private static string Load()
    {
        try { return $"; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"; }
        catch (IOException) { return ""; }
    }

    private static JsonArray Question(string tag) =>
        new(new JsonObject { ["role"] = "user", ["content"] = $"Write a short note about the weather ({tag})." });

    private static JsonObject Request(JsonArray messages, int tokens, int? frames = null)
    {
        var r = new JsonObject { ["model"] = "bench", ["messages"] = messages, ["max_tokens"] = tokens, ["temperature"] = 0 };
        if (frames != null) r["frames"] = frames;
        return r;
    }

    private static async Task<(int Status, int Tokens)> PostAsync(HttpClient http, string url, JsonObject body)
    {
        using var response = await http.PostAsync(url, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        int status = (int)response.StatusCode;
        if (status == 200) return (status, JsonNode.Parse(text)!["usage"]!["completion_tokens"]!.GetValue<int>());
        if (status != 429) Console.Error.WriteLine($"status {status}: {text}");
        return (status, 0);
    }

    private static async Task<(double Ttft, string Text, int Prompt, int Cached)> StreamAsync(HttpClient http, string url, JsonObject body)
    {
        body["stream"] = true;
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var watch = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if ((int)response.StatusCode != 200) throw new InvalidOperationException($"status {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double ttft = double.NaN;
        var text = new StringBuilder();
        int prompt = 0, cached = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]") continue;
            var chunk = JsonNode.Parse(line["data: ".Length..])!;
            if (chunk["usage"] is JsonObject usage)
            {
                prompt = usage["prompt_tokens"]!.GetValue<int>();
                cached = usage["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
            }
            if (chunk["choices"] is JsonArray { Count: > 0 } choices && choices[0]!["delta"]?["content"]?.GetValue<string>() is { Length: > 0 } piece)
            {
                if (double.IsNaN(ttft)) ttft = watch.Elapsed.TotalSeconds;
                text.Append(piece);
            }
        }
        return (double.IsNaN(ttft) ? watch.Elapsed.TotalSeconds : ttft, text.ToString(), prompt, cached);
    }

    private static string TokenizerJson()
    {
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, ".cache", "qwen-tokenizer", "tokenizer.json");
            if (File.Exists(p)) return p;
        }
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, ".cache", "qwen-tokenizer", "tokenizer.json");
            if (File.Exists(p)) return p;
        }
        throw new InvalidOperationException("Qwen tokenizer.json not found: run scripts/install-deps.sh first");
    }

    private static string MakeVideo(string dir)
    {
        string path = Path.Combine(dir, "clip.mp4");
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "2", "-pix_fmt", "yuv420p", path })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg failed: {err}");
        return path;
    }
}
