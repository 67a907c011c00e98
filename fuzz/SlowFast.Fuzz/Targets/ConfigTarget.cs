using SlowFast.Model;

namespace SlowFast.Fuzz.Targets;

/// <summary>A checkpoint's config.json read into <see cref="SlowFastConfig"/> with its validation, then written back and read again.</summary>
public sealed class ConfigTarget : FuzzTarget
{
    public override string Name => "config";
    public override string Description => "config.json into SlowFastConfig (with validation)";

    public override void Run(byte[] input)
    {
        string path = Scratch.Write("config.json", input);
        var config = SlowFastConfig.Load(path);
        // A config that loads must survive its own round trip: what it writes is what it reads.
        string again = Scratch.Write("config.again.json", System.Text.Encoding.UTF8.GetBytes(config.ToJson()));
        SlowFastConfig.Load(again);
    }
}
