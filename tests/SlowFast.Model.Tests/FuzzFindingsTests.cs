using System.Text.Json.Nodes;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>
/// Inputs the fuzzer found in config.json and tokenizer.json (docs/fuzzing.md; each is kept under
/// fuzz/findings/ and replayed by the smoke run): refused with a one-line <see cref="UserError"/>, or
/// read into a config that can be written back, never another exception.
/// </summary>
public sealed class FuzzFindingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("slowfast-fuzz-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string content)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void InfiniteNumberInConfig_IsRefused()
    {
        // config/infinite-rope-theta.json: 1e309 read as infinity was accepted, and the config could then not be written back.
        var e = Assert.Throws<UserError>(() => SlowFastConfig.Load(Write("config.json", """{"model_type": "llava_qwen_slow_fast", "rope_theta": 1e309}""")));
        Assert.Contains("'rope_theta' should be a finite number", e.Message);
    }

    [Fact]
    public void InfiniteVisionNormEps_TakesTheDefaultAndTheConfigWritesBack()
    {
        // config/infinite-norm-eps.json: vision_config.norm_eps of -1e400 (infinity) made ToJson throw ArgumentException.
        var tiny = JsonNode.Parse(Presets.Tiny().ToJson())!.AsObject();
        tiny["vision_config"]!["norm_eps"] = "INFINITY";
        string json = tiny.ToJsonString().Replace("\"INFINITY\"", "-1e400");
        var config = SlowFastConfig.Load(Write("config.json", json));
        Assert.Equal(1e-5, config.Vision.NormEps);
        var again = SlowFastConfig.FromJson(JsonNode.Parse(config.ToJson())!.AsObject(), "round-trip");
        Assert.Equal(config.ToJson(), again.ToJson());
    }

    [Fact]
    public void KeyGivenTwice_IsRefused()
    {
        // config/afl-duplicate-key.json (afl-fuzz): JsonObject threw ArgumentException ("same key has already been added").
        var e = Assert.Throws<UserError>(() => SlowFastConfig.Load(Write("config.json",
            """{"model_type": "llava_qwen_slow_fast", "bos_token_id": 643, "vision_config": {}, "bos_token_id": 643}""")));
        Assert.Contains("malformed JSON", e.Message);
        Assert.Contains("bos_token_id", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void LineBreakInAQuotedValue_StaysOneLine()
    {
        // config/newline-in-model-type.json: the message quoted the value with its line break, so it was two lines.
        var e = Assert.Throws<UserError>(() => SlowFastConfig.Load(Write("config.json", """{"model_type": "llava_qw\nen\u001b[2J"}""")));
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\u001b', e.Message);
        Assert.Contains("unknown model_type 'llava_qw\\nen\\u001b[2J'", e.Message);
    }

    [Fact]
    public void UnreadableSplitPattern_IsRefused()
    {
        // tokenizer/bad-split-regex.json: a pre_tokenizer pattern .NET cannot parse escaped as RegexParseException.
        string real = File.ReadAllText(TokenizationTestSupport.TokenizerJsonPath());
        const string piece = @"\\p{N}|";
        int at = real.IndexOf(piece, StringComparison.Ordinal);
        Assert.True(at > 0, "the Qwen split pattern has \\p{N}|");
        string path = Write("tokenizer.json", real[..at] + @"\\p{N-1}|" + real[(at + piece.Length)..]);
        var e = Assert.Throws<UserError>(() => QwenTokenizer.FromFile(path));
        Assert.Contains("split pattern is not a regular expression", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
