using System.Text.Json.Nodes;
using SlowFast.Hub.Tests;

namespace SlowFast.Cli.Tests;

/// <summary>
/// The hub path end to end: a loopback imitation of the Hugging Face hub serves a tiny checkpoint;
/// `slowfast pull` fetches it through HF_ENDPOINT into a fresh cache; `slowfast ask` then answers by
/// hub id with HF_HUB_OFFLINE=1, from the cache alone, exactly as from the directory itself.
/// </summary>
public class PullThenAskTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public async Task PullThroughTheEndpointThenAskByHubIdOffline()
    {
        await using var hub = await FakeHub.StartAsync();
        var repo = new FakeRepo { Id = "shi-labs/tiny-slowfast-test" };
        foreach (var f in Directory.GetFiles(tiny.ModelDir))
        {
            string name = Path.GetFileName(f);
            repo.Files[name] = File.ReadAllBytes(f);
            if (name.EndsWith(".safetensors") || name == "tokenizer.json") repo.LfsFiles.Add(name);
        }
        hub.Add(repo);
        string cache = Path.Combine(tiny.Root, "hub-cache");

        var pull = SlowfastProcess.RunWithEnvironment(null, new Dictionary<string, string> { ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HUB_CACHE"] = cache },
            "pull", repo.Id);
        Assert.True(pull.ExitCode == 0, pull.Stderr);
        string snapshot = pull.Stdout.Trim();
        Assert.Equal(Path.Combine(cache, "models--shi-labs--tiny-slowfast-test", "snapshots", repo.Commit), snapshot);
        Assert.Equal(repo.Files["model.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));

        string png = Path.Combine(tiny.Root, "pull-frame.png");
        using (var p = System.Diagnostics.Process.Start("ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x96", "-frames:v", "1", png]))
            p.WaitForExit();
        int requestsBefore = hub.Requests.Count;
        var offline = new Dictionary<string, string> { ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HUB_CACHE"] = cache, ["HF_HUB_OFFLINE"] = "1" };
        var byId = SlowfastProcess.RunWithEnvironment(null, offline, "ask", "--model", repo.Id, "--image", png, "--max-new-tokens", "6", "--json", "What is it?");
        Assert.True(byId.ExitCode == 0, byId.Stderr);
        Assert.Equal(requestsBefore, hub.Requests.Count); // offline: not one request

        var byDir = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--image", png, "--max-new-tokens", "6", "--json", "What is it?");
        Assert.Equal((string?)JsonNode.Parse(byDir.Stdout)!["answer"], (string?)JsonNode.Parse(byId.Stdout)!["answer"]);
    }
}
