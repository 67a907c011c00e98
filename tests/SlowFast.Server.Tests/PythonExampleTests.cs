using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SlowFast.Server.Tests;

/// <summary>A test that needs python3 (the README's standard-library example): skipped, saying why, without it.</summary>
public sealed class Python3FactAttribute : FactAttribute
{
    public Python3FactAttribute()
    {
        if (!(Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, "python3"))))
            Skip = "python3 is not on PATH";
    }
}

/// <summary>examples/serve/ask_video.py, the README's Python example, run against the real server.</summary>
[Collection(ServerCollection.Name)]
public sealed class PythonExampleTests(ServerFixture f)
{
    [Python3Fact]
    public async Task AskVideoPy_StreamsTheServersAnswer_WithFpsAndFrames()
    {
        string script = Path.Combine(RepositoryRoot(), "examples", "serve", "ask_video.py");
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { script, f.BaseUrl, f.VideoPath, "What happens?", "--fps", "2", "--frames", "8", "--max-tokens", "4" })
            psi.ArgumentList.Add(a);
        using var python = Process.Start(psi)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(python.ExitCode == 0, await stderr);

        // The same request, not streamed: fps 2 of the 10-fps video is 2 frames.
        var request = ServerFixture.Request(new JsonArray(ServerFixture.User("What happens?", ServerFixture.VideoPart(ServerFixture.DataUrl(f.VideoPath, "video/mp4")))), maxTokens: 4, frames: null);
        request["media_io_kwargs"] = new JsonObject { ["video"] = new JsonObject { ["num_frames"] = 8 } };
        request["mm_processor_kwargs"] = new JsonObject { ["fps"] = 2 };
        var (status, body) = await f.PostAsync(request);
        Assert.Equal(200, status);
        Assert.Equal(body["choices"]![0]!["message"]!["content"]!.GetValue<string>() + "\n", await stdout);
        Assert.Contains("answer 4 tokens, 2 frames", await stderr);
    }

    /// <summary>
    /// deploy/kubernetes/slowfast.yaml parses (python3's yaml) into a Deployment whose readiness probe is
    /// GET /ready and liveness probe GET /health on the port `slowfast serve` listens on, and a Service over it.
    /// </summary>
    [Python3Fact]
    public async Task KubernetesManifest_Parses_WithReadinessOnReady()
    {
        string manifest = Path.Combine(RepositoryRoot(), "deploy", "kubernetes", "slowfast.yaml");
        const string summarize = """
            import json, sys
            try:
                import yaml
            except ImportError:
                sys.exit("python3's yaml module is missing (Debian: python3-yaml)")
            docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
            print(json.dumps(docs))
            """;
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { "-c", summarize, manifest }) psi.ArgumentList.Add(a);
        using var python = Process.Start(psi)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(python.ExitCode == 0, await stderr);
        var docs = JsonNode.Parse(await stdout)!.AsArray();
        var deployment = docs.Single(d => d!["kind"]!.GetValue<string>() == "Deployment")!;
        Assert.True(deployment["spec"]!["replicas"]!.GetValue<int>() >= 2);
        var container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
        var args = container["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal("serve", args[0]);
        Assert.Equal("http://0.0.0.0:8080", args[args.IndexOf("--urls") + 1]);
        Assert.Equal(8080, container["ports"]![0]!["containerPort"]!.GetValue<int>());
        Assert.Equal("/ready", container["readinessProbe"]!["httpGet"]!["path"]!.GetValue<string>());
        Assert.Equal("/health", container["livenessProbe"]!["httpGet"]!["path"]!.GetValue<string>());
        var service = docs.Single(d => d!["kind"]!.GetValue<string>() == "Service")!;
        Assert.Equal("slowfast", service["spec"]!["selector"]!["app"]!.GetValue<string>());
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SlowFast.sln"))) return d.FullName;
        throw new InvalidOperationException("SlowFast.sln not found above " + AppContext.BaseDirectory);
    }
}
