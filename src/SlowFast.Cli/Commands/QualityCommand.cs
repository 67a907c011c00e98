using SlowFast.Benchmarks;
using SlowFast.Model;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast bench --quality</c>: a quantized decoder against its original (<see cref="QualityBench"/>).</summary>
internal static class QualityCommand
{
    public static int Run(ParsedArgs a, string? model, string preset)
    {
        var formats = a.Required("quantize").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(BlockFormats.Parse).Distinct().ToList();
        if (formats.Count == 0) throw new UsageError("bench: --quantize names no format");
        if (model == null && preset == "7b") throw new UsageError("bench --quality: the 7b preset has no temporary checkpoint; give --model DIR");
        string? temp = null;
        try
        {
            string dir = model ?? CreateTemporary(preset, out temp);
            string source = model ?? $"preset {preset} (temporary checkpoint, random BF16 weights)";
            var result = QualityBench.Run(dir, source, formats, a.Int("frames", 1, 10_000), a.Int("steps", 0, 100_000),
                PrecisionOption.Parse(a), Console.Error);
            string markdown = QualityBench.ToMarkdown(result, "slowfast bench " + string.Join(' ', Environment.GetCommandLineArgs().Skip(2)));
            File.WriteAllText(a.Required("markdown"), markdown);
            Console.Error.WriteLine($"wrote {a.Required("markdown")}");
            Console.Out.Write(a.Flag("json") ? result.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n" : markdown);
            return 0;
        }
        finally
        {
            if (temp != null) try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
        }
    }

    private static string CreateTemporary(string preset, out string temp)
    {
        temp = Directory.CreateTempSubdirectory("slowfast-quality-").FullName;
        string dir = Path.Combine(temp, "preset-" + preset);
        Console.Error.WriteLine($"preset {preset}: writing a temporary BF16 checkpoint with random weights");
        ModelCreator.Create(Presets.Get(preset), new ModelCreator.Options(dir, Tensors.DType.BF16, 0, ConvNextStageBench.PlaceholderTokenizer(temp)));
        return dir;
    }
}
