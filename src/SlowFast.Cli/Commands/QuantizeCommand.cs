using System.Diagnostics;
using SlowFast.Model.Quantization;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Cli.Commands;

/// <summary>
/// <c>slowfast quantize</c>: writes a copy of a checkpoint whose linear weights are block-quantized
/// (llama.cpp's Q8_0 or Q4_0 blocks; layout in README "Quantized weights"). Also owns <c>--quantize</c>,
/// the same quantization done in memory when <c>ask</c>/<c>serve</c> load a plain checkpoint.
/// </summary>
public static class QuantizeCommand
{
    public static readonly CommandSpec Spec = new("quantize",
        "Write a checkpoint with 8- or 4-bit block-quantized linear weights (decoder projections and lm_head; --vision adds the projector and vision tower MLPs).",
        [
            new("model", "DIR|ID", ModelArgument.Description + " (its BF16/F16/F32 original)", Required: true),
            new("to", "q8|q4", "block format: q8 (llama.cpp Q8_0, 8.5 bits a weight) or q4 (Q4_0, 4.5 bits a weight)", Required: true),
            new("out", "DIR", "directory to write (must not exist or be empty)", Required: true),
            new("vision", null, "also quantize the projector and the ConvNeXt blocks' MLP matrices (the vision tower's output then changes too)"),
        ],
        Run,
        Details: "Any command's --model takes the result. Streams tensor by tensor: memory stays small whatever the checkpoint's size.");

    /// <summary><c>--quantize q8|q4</c> on <c>ask</c> and <c>serve</c>.</summary>
    public static readonly OptionSpec AtLoadOption = new("quantize", "q8|q4",
        "quantize the decoder's weights at load, in memory, without writing (see `slowfast quantize`); default: as stored");

    public static BlockFormat? ParseAtLoad(ParsedArgs a) => a.String("quantize") is { } text ? BlockFormats.Parse(text) : null;

    private static int Run(ParsedArgs a)
    {
        var format = BlockFormats.Parse(a.Required("to"));
        string dir = ModelArgument.Resolve(a.Required("model"));
        string outDir = a.Required("out");
        var err = Console.Error;
        var clock = Stopwatch.StartNew();
        err.WriteLine($"quantize  {dir} to {format.Name()} in {outDir}");
        var summary = CheckpointQuantizer.Run(dir, outDir, format, a.Flag("vision"), err);
        err.WriteLine($"quantize  {summary.QuantizedTensors} matrices, {summary.SourceBytes / 1e9:F2} GB → {summary.WrittenBytes / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }
}
