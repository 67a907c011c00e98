using System.Diagnostics;
using SlowFast.Model;
using SlowFast.Tensors;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast create-model</c>: a complete checkpoint with random weights, for tests and benchmarks.</summary>
public static class CreateModelCommand
{
    public static readonly CommandSpec Spec = new("create-model",
        "Write a complete checkpoint directory (config.json, safetensors, tokenizer) with random weights.",
        [
            new("preset", "NAME", "model shapes: tiny (tests), small (Qwen2-0.5B + ConvNeXt-Base, benchmarks) or 7b (the released model's shapes)", Required: true),
            new("out", "DIR", "directory to write", Required: true),
            new("seed", "N", "random seed; the same seed gives the same bytes", "0"),
            new("dtype", "TYPE", "stored weight type: f32, bf16 or f16", "f32 for tiny, bf16 otherwise"),
            new("set", "KEY=VALUE", "override a config.json field, e.g. --set cross_attn_gating_type=whole-dynamic", Repeatable: true),
            new("tokenizer", "FILE", "Qwen tokenizer.json to copy", "$SLOWFAST_TOKENIZER_JSON or .cache/qwen-tokenizer/tokenizer.json"),
            new("shard-size", "BYTES", "largest safetensors shard before splitting", ModelCreator.DefaultMaxShardBytes.ToString()),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        string preset = a.Required("preset");
        var config = Presets.Get(preset);
        if (a.All("set").Count > 0) config = SlowFastConfig.WithOverrides(config, a.All("set"), "--set");
        string dtypeName = a.Has("dtype") ? a.Required("dtype") : preset == "tiny" ? "f32" : "bf16";
        var dtype = DTypes.ParseUserName(dtypeName);
        long shard = a.Has("shard-size") && long.TryParse(a.String("shard-size"), out long s) && s > 0 ? s
            : a.Has("shard-size") ? throw new UsageError("create-model: --shard-size expects a positive number of bytes") : ModelCreator.DefaultMaxShardBytes;
        string tokenizer = TokenizerLocator.Find(a.Has("tokenizer") ? a.String("tokenizer") : null);
        string outDir = a.Required("out");

        var sw = Stopwatch.StartNew();
        Console.Error.WriteLine($"creating '{preset}' checkpoint in {outDir} ({dtype}, seed {a.ULong("seed")})");
        ModelCreator.Create(config, new ModelCreator.Options(outDir, dtype, a.ULong("seed"), tokenizer, shard), Console.Error);
        Console.Error.WriteLine($"done in {sw.Elapsed.TotalSeconds:F1} s");
        return 0;
    }
}
