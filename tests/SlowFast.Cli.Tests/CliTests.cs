using System.Text.Json;
using System.Text.Json.Nodes;

namespace SlowFast.Cli.Tests;

public class CliTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private static void AssertCleanError(SlowfastProcess.Result r, int exitCode, params string[] mustContain)
    {
        Assert.Equal(exitCode, r.ExitCode);
        Assert.Single(r.StderrLines);
        Assert.DoesNotContain("   at ", r.Stderr); // no stack trace
        foreach (var s in mustContain) Assert.Contains(s, r.Stderr);
    }

    [Theory]
    [InlineData("create-model", "--preset")]
    [InlineData("inspect", "--frames")]
    [InlineData("tokenize", "--model")]
    public void EveryCommandHasHelp(string command, string option)
    {
        var r = SlowfastProcess.Run(command, "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains($"Usage: slowfast {command}", r.Stdout);
        Assert.Contains(option, r.Stdout);
    }

    [Fact]
    public void Frame_counts_up_to_4096_are_accepted_and_more_refused_before_the_model_loads()
    {
        // 1,536 frames (the paper's long videos) parse; the frame bound itself is a usage error, found
        // before the model is loaded (one line on stderr: no "model ... loaded").
        var over = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", "missing.mp4", "--frames", "4097", "Q?");
        AssertCleanError(over, 2, "--frames must be between 1 and 4096");
        AssertCleanError(SlowfastProcess.Run("encode", "--model", tiny.ModelDir, "--video", "missing.mp4", "--start", "5", "--end", "2", "--out", "x.safetensors"),
            2, "--end 2 is before --start 5");
        var inRange = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", "missing.mp4", "--frames", "1536", "Q?");
        Assert.NotEqual(0, inRange.ExitCode);
        Assert.DoesNotContain("--frames", inRange.Stderr);   // refused for the missing file, not the count
        Assert.Contains("missing.mp4", inRange.Stderr);
    }

    [Fact]
    public void TopLevelHelpListsCommands()
    {
        var r = SlowfastProcess.Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var c in new[] { "create-model", "inspect", "tokenize" }) Assert.Contains(c, r.Stdout);
        Assert.Equal(2, SlowfastProcess.Run("no-such-command").ExitCode);
    }

    [Fact]
    public void CreateModelWritesACompleteCheckpoint()
    {
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(tiny.ModelDir, f)), f);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(tiny.ModelDir, "config.json")))!;
        Assert.Equal("llava_qwen_slow_fast", (string?)config["model_type"]);
        Assert.Equal("mlp2x_gelu", (string?)config["mm_projector_type"]);
    }

    [Fact]
    public void CreateModelIsDeterministicForASeed()
    {
        string other = Path.Combine(tiny.Root, "again");
        var r = SlowfastProcess.Run("create-model", "--preset", "tiny", "--out", other, "--seed", "7", "--tokenizer", SlowfastProcess.TokenizerJson());
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(File.ReadAllBytes(Path.Combine(tiny.ModelDir, "model.safetensors")), File.ReadAllBytes(Path.Combine(other, "model.safetensors")));
        string differentSeed = Path.Combine(tiny.Root, "seed8");
        Assert.Equal(0, SlowfastProcess.Run("create-model", "--preset", "tiny", "--out", differentSeed, "--seed", "8", "--dtype", "bf16", "--tokenizer", SlowfastProcess.TokenizerJson()).ExitCode);
        Assert.True(new FileInfo(Path.Combine(differentSeed, "model.safetensors")).Length < new FileInfo(Path.Combine(other, "model.safetensors")).Length * 0.6);
        Directory.Delete(other, true);
        Directory.Delete(differentSeed, true);
    }

    [Fact]
    public void InspectReportsTheArchitecture()
    {
        var r = SlowfastProcess.Run("inspect", "--model", tiny.ModelDir, "--frames", "9", "--json");
        Assert.Equal(0, r.ExitCode);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("[0,2]", j["decoder"]!["hybrid_layers"]!.ToJsonString());
        Assert.Equal(4, (int)j["decoder"]!["layers"]!);
        Assert.Equal(16, (int)j["vision_tower"]!["tokens_per_frame"]!);
        // 9 frames: 4 tokens a frame after 2x2 pooling; 9/4 = 2 >= min_fast_frames 2 -> 2 fast frames.
        Assert.Equal(36, (int)j["visual_tokens"]!["slow_tokens"]!);
        Assert.Equal(8, (int)j["visual_tokens"]!["fast_tokens"]!);
        Assert.True((long)j["parameters"]!["llm"]! > 2 * 151936 * 64);
        Assert.True((long)j["parameters"]!["vision_tower"]! > 0);
        Assert.True((long)j["parameters"]!["projector"]! == 48 * 64 + 64 + 64 * 64 + 64);

        var text = SlowfastProcess.Run("inspect", "--model", tiny.ModelDir);
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("hybrid layers  0, 2", text.Stdout);
    }

    [Fact]
    public void InspectFlopsReportsEveryPartForACheckpointOrAPreset()
    {
        var r = SlowfastProcess.Run("inspect", "--model", tiny.ModelDir, "--frames", "9", "--flops", "--json");
        Assert.Equal(0, r.ExitCode);
        var parts = JsonNode.Parse(r.Stdout)!["compute"]!["parts"]!.AsObject();
        Assert.Equal(["vision tower", "projector", "pooling", "LLM prefill", "slow K/V projections", "cross-attention", "decode step"],
            parts.Select(p => p.Key));
        Assert.All(parts, p => Assert.True((double)p.Value!["flops"]! > 0, p.Key));

        var baseline = JsonNode.Parse(SlowfastProcess.Run("inspect", "--preset", "7b", "--frames", "16", "--flops", "--design", "baseline", "--json").Stdout)!;
        Assert.Equal(26 + 16 * 81, (int)baseline["positions"]!);
        Assert.Equal(0.0, (double)baseline["parts"]!["cross-attention"]!["flops"]!);
        var text = SlowfastProcess.Run("inspect", "--preset", "7b", "--frames", "128", "--flops");
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("slow K/V projections", text.Stdout);
        AssertCleanError(SlowfastProcess.Run("inspect", "--preset", "7b"), 2, "--preset needs --flops");
    }

    [Fact]
    public void TokenizeReproducesTheReferenceEncodings()
    {
        var lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", "encodings.jsonl"));
        var input = string.Join("\n", lines.Select(l => new JsonObject { ["text"] = (string?)JsonNode.Parse(l)!["text"] }.ToJsonString()));
        var r = SlowfastProcess.RunWithInput(input + "\n", "tokenize", "--model", tiny.ModelDir);
        Assert.Equal(0, r.ExitCode);
        var outLines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(lines.Length, outLines.Length);
        for (int i = 0; i < lines.Length; i++)
            Assert.Equal(JsonNode.Parse(lines[i])!["ids"]!.ToJsonString(), JsonNode.Parse(outLines[i])!["ids"]!.ToJsonString());
    }

    [Fact]
    public void TokenizeRejectsMalformedLines()
    {
        var r = SlowfastProcess.RunWithInput("{\"text\": \"ok\"}\n{\"text\": oops}\n", "tokenize", "--model", tiny.ModelDir);
        Assert.Contains("{\"ids\": [562]}", r.Stdout); // the good line before is still answered
        AssertCleanError(r, 1, "stdin line 2", "malformed JSON");
        AssertCleanError(SlowfastProcess.RunWithInput("{\"txt\": 1}\n", "tokenize", "--model", tiny.ModelDir), 1, "\"text\"");
    }

    // ---- bad checkpoints: one line naming the file and the problem, exit code 1 ----

    private string BrokenCopy(string name, Action<string> breakIt, bool copyWeights = false)
    {
        string dir = Path.Combine(tiny.Root, name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(tiny.ModelDir))
        {
            string dst = Path.Combine(dir, Path.GetFileName(f));
            if (f.EndsWith(".safetensors") && !copyWeights) File.CreateSymbolicLink(dst, f);
            else File.Copy(f, dst, true);
        }
        breakIt(dir);
        return dir;
    }

    private static void EditConfig(string dir, Action<JsonObject> edit)
    {
        string path = Path.Combine(dir, "config.json");
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(o);
        File.WriteAllText(path, o.ToJsonString());
    }

    [Fact]
    public void MissingModelDirectory() =>
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", Path.Combine(tiny.Root, "nope")), 1, "nope", "does not exist");

    [Fact]
    public void MalformedConfigJson()
    {
        var dir = BrokenCopy("badjson", d => File.WriteAllText(Path.Combine(d, "config.json"), "{\"model_type\": "));
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "config.json", "malformed JSON");
    }

    [Fact]
    public void UnknownModelType()
    {
        var dir = BrokenCopy("modeltype", d => EditConfig(d, o => o["model_type"] = "llava_llama"));
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "config.json", "unknown model_type 'llava_llama'");
    }

    [Fact]
    public void UnknownProjectorType()
    {
        var dir = BrokenCopy("projector", d => EditConfig(d, o => o["mm_projector_type"] = "qformer"));
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "config.json", "unknown mm_projector_type 'qformer'");
    }

    [Fact]
    public void UnknownGatingType()
    {
        var dir = BrokenCopy("gating", d => EditConfig(d, o => o["cross_attn_gating_type"] = "channel-wise-dynamic-sigmoid"));
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "config.json", "unknown cross_attn_gating_type");
    }

    [Fact]
    public void ShapeThatDoesNotMatchTheConfig()
    {
        var dir = BrokenCopy("shape", d => EditConfig(d, o => o["intermediate_size"] = 96));
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "mlp.gate_proj.weight", "[160, 64]", "[96, 64]");
    }

    [Fact]
    public void MissingVisionTensor()
    {
        var dir = BrokenCopy("noproj", d => EditConfig(d, o => o["mm_projector_type"] = "mlp3x_gelu"));
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "model.mm_projector.4.weight", "projector");
    }

    [Fact]
    public void TruncatedSafetensors()
    {
        var dir = BrokenCopy("truncated", d =>
        {
            string f = Path.Combine(d, "model.safetensors");
            using var s = new FileStream(f, FileMode.Open);
            s.SetLength(s.Length / 2);
        }, copyWeights: true);
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "model.safetensors", "truncated");
    }

    [Fact]
    public void LyingSafetensorsHeader()
    {
        var dir = BrokenCopy("lying", d =>
        {
            string f = Path.Combine(d, "model.safetensors");
            using var s = new FileStream(f, FileMode.Open);
            s.Write(BitConverter.GetBytes(ulong.MaxValue / 4));
        }, copyWeights: true);
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", dir), 1, "model.safetensors", "header length");
    }

    [Fact]
    public void MissingTokenizer()
    {
        var dir = BrokenCopy("notok", d => File.Delete(Path.Combine(d, "tokenizer.json")));
        AssertCleanError(SlowfastProcess.RunWithInput("{\"text\": \"a\"}\n", "tokenize", "--model", dir), 1, "tokenizer.json");
    }

    [Fact]
    public void UsageErrorsExitWithTwo()
    {
        AssertCleanError(SlowfastProcess.Run("inspect", "--model", tiny.ModelDir, "--frames", "many"), 2, "--frames");
        AssertCleanError(SlowfastProcess.Run("inspect", "--modle", tiny.ModelDir), 2, "unknown option --modle");
        AssertCleanError(SlowfastProcess.Run("create-model", "--out", "x"), 2, "--preset is required");
        AssertCleanError(SlowfastProcess.Run("create-model", "--preset", "huge", "--out", Path.Combine(tiny.Root, "huge")), 1, "unknown preset 'huge'");
    }
}
