using System.Runtime.InteropServices;
using SlowFast.Model;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Cli.Commands;

/// <summary>
/// <c>slowfast forward</c>: the logits of every prompt position (and the visual tokens) written to a
/// safetensors file, so any other implementation can be compared with this one.
/// </summary>
public static class ForwardCommand
{
    public static readonly CommandSpec Spec = new("forward",
        "Run one forward pass and write the logits of every prompt position plus the visual tokens to a .safetensors file.",
        [
            new("model", "DIR|ID", ModelArgument.Description + " (pulled into the hub cache on first use)", SlowFast.Hub.KnownModels.Default),
            .. VisualInputOptions.Options,
            PrecisionOption.Spec,
            DesignOption.Spec,
            new("prompt", "TEXT", "the question, put in the chat template (\"<image>\\n\" + TEXT with visual input)", Required: true),
            new("raw", null, "use --prompt verbatim as the whole prompt (\"<image>\" marks the visual tokens)"),
            new("system", "TEXT", "system prompt", Model.Chat.ChatConversation.DefaultSystemPrompt),
            new("out", "FILE", "output .safetensors: logits F32 [P, V], fast_tokens (the visual tokens in the sequence), slow_tokens (slow-fast only), input_ids, token_types", Required: true),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        var err = Console.Error;
        string outPath = a.Required("out");
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };

        VisualInputOptions.CheckExclusive(a);
        var precision = PrecisionOption.Parse(a);
        var design = DesignOption.Parse(a);
        PrecisionOption.Warn(precision, err);
        using var model = SlowFastModel.Load(ModelArgument.Resolve(a.Required("model")), engine: new Model.Engine.EngineOptions { DefaultPrecision = precision, PackDecoderWeights = false });   // one pass: packing would not pay
        var processor = new SlowFastProcessor(model.Config);
        var input = VisualInputOptions.Parse(a, processor);
        string prompt = a.Required("prompt");
        int[] ids = a.Flag("raw")
            ? Model.Chat.MultimodalPrompt.TokenizeWithImage(model.Tokenizer, prompt)
            : model.QuestionPrompt(prompt, VisualInputOptions.HasVisual(a), a.String("system"));
        model.CheckPromptFits(ids, VisualInputOptions.Frames(a, input), "forward", design);
        model.CheckMemory(ids, VisualInputOptions.Frames(a, input), "forward", design);

        // Never from the feature cache: forward is for exact comparisons, so it computes everything (or reads --features).
        var video = VisualInputOptions.EncodeOrLoad(a, model, processor, input, cache: null, err, cancel.Token).Video?.ForDesign(design);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = model.Forward(ids, video, cancel.Token);
        err.WriteLine($"forward   {result.Positions} positions x {result.Vocab} logits in {clock.Elapsed.TotalSeconds:F2} s");

        int hidden = model.Config.HiddenSize;
        var tensors = new List<(TensorSpec Spec, Action<Stream> Write)>
        {
            (new TensorSpec("logits", DType.F32, [result.Positions, result.Vocab]), s => WriteFloats(s, result.Logits)),
            (new TensorSpec("input_ids", DType.I64, [ids.Length]), s => s.Write(MemoryMarshal.AsBytes(ids.Select(i => (long)i).ToArray().AsSpan()))),
            (new TensorSpec("token_types", DType.I64, [result.TokenTypes.Length]), s => s.Write(MemoryMarshal.AsBytes(result.TokenTypes.Select(i => (long)i).ToArray().AsSpan()))),
        };
        if (video != null)
        {
            tensors.Add((new TensorSpec("fast_tokens", DType.F32, [video.FastCount, hidden]), s => WriteFloats(s, video.Fast.AsSpan(0, video.FastCount * hidden))));
            if (video.SlowCount > 0)
                tensors.Add((new TensorSpec("slow_tokens", DType.F32, [video.SlowCount, hidden]), s => WriteFloats(s, video.Slow.AsSpan(0, video.SlowCount * hidden))));
        }
        var writers = tensors.ToDictionary(t => t.Spec.Name, t => t.Write);
        var metadata = new Dictionary<string, string>
        {
            ["model"] = Path.GetFullPath(model.Path),
            ["prompt"] = prompt,
            ["input"] = a.Has("features") ? $"features:{a.Required("features")}" : input == null ? "none" : $"{input.Kind.ToString().ToLowerInvariant()}:{input.Path}",
            ["frames"] = (video?.Plan.Frames ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["design"] = design == VisualDesign.Baseline ? "baseline" : "slowfast",
        };
        try
        {
            SafetensorsWriter.Write(outPath, tensors.Select(t => t.Spec).ToList(), (spec, s) => writers[spec.Name](s), metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserError($"{outPath}: cannot write ({e.Message})");
        }
        err.WriteLine($"wrote     {outPath}");
        return 0;
    }

    private static void WriteFloats(Stream s, ReadOnlySpan<float> values)
    {
        // Little-endian float32, in slices so a [P, V] tensor over 2 GB is fine.
        const int Slice = 1 << 20;
        for (int i = 0; i < values.Length; i += Slice)
            s.Write(MemoryMarshal.AsBytes(values.Slice(i, Math.Min(Slice, values.Length - i))));
    }
}
