using SlowFast.Media;

namespace SlowFast.Fuzz.Targets;

/// <summary>A pixels file (the model's --pixels input): a safetensors file checked for the tensors, shapes and values the vision tower needs.</summary>
public sealed class PixelsTarget : FuzzTarget
{
    public override string Name => "pixels";
    public override string Description => "pixels file (PixelsFile.Read)";

    public override void Run(byte[] input) => PixelsFile.Read(Scratch.Write("input.pixels.safetensors", input));
}
