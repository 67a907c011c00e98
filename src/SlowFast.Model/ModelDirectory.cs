using SlowFast.Model.Quantization;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Model;

/// <summary>
/// A checkpoint directory opened and checked: its config, its memory-mapped weights, and the proof
/// that every tensor the config calls for is there with the right shape. Loading never converts the
/// weights: they stay mapped in their stored dtype.
/// </summary>
public sealed class ModelDirectory : IDisposable
{
    public string Path { get; }
    public SlowFastConfig Config { get; }
    public SafetensorsCheckpoint Weights { get; }
    public IReadOnlyList<WeightSpec> Layout { get; }
    /// <summary>The block-quantized tensors of a checkpoint written by <c>slowfast quantize</c>; null for a plain one.</summary>
    public CheckpointQuantization? Quantization { get; }
    /// <summary>The format <see cref="Linear"/> quantizes the decoder's plain linear weights to, in memory (null: none).</summary>
    public BlockFormat? QuantizeAtLoad { get; }
    /// <summary>Maps each layout name to the name actually stored (older exports use ".gamma" for the layer scale).</summary>
    private readonly Dictionary<string, string> _storedNames;
    private readonly Dictionary<string, WeightSpec> _specs;

    private ModelDirectory(string path, SlowFastConfig config, SafetensorsCheckpoint weights, IReadOnlyList<WeightSpec> layout,
        Dictionary<string, string> stored, CheckpointQuantization? quantization, BlockFormat? quantizeAtLoad)
    {
        Path = path;
        Config = config;
        Weights = weights;
        Layout = layout;
        _storedNames = stored;
        _specs = layout.ToDictionary(w => w.Name, StringComparer.Ordinal);
        Quantization = quantization;
        QuantizeAtLoad = quantization == null ? quantizeAtLoad : null;
    }

    /// <param name="quantizeAtLoad">Quantize the decoder's linear weights to this format as they are bound
    /// (<see cref="Linear"/>), without writing anything; ignored for a checkpoint that is quantized already.</param>
    public static ModelDirectory Open(string dir, BlockFormat? quantizeAtLoad = null)
    {
        if (File.Exists(dir)) throw new UserError($"{dir}: is a file; --model takes a checkpoint directory");
        if (!Directory.Exists(dir)) throw new UserError($"{dir}: model directory not found");
        string configPath = System.IO.Path.Combine(dir, "config.json");
        var config = SlowFastConfig.Load(configPath);
        var quantization = CheckpointQuantization.FromConfig(config.Raw, configPath);
        var weights = SafetensorsCheckpoint.Open(dir);
        try
        {
            var layout = CheckpointLayout.For(config);
            var stored = Check(dir, config, weights, layout, quantization);
            return new ModelDirectory(dir, config, weights, layout, stored, quantization, quantizeAtLoad);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private static Dictionary<string, string> Check(string dir, SlowFastConfig config, SafetensorsCheckpoint weights, IReadOnlyList<WeightSpec> layout,
        CheckpointQuantization? quantization)
    {
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        if (quantization != null)
            foreach (string name in quantization.Tensors)
                if (!layout.Any(w => w.Name == name && CheckpointQuantization.IsQuantizable(w, includeVision: true)))
                    throw new UserError($"{dir}: config.json lists '{name}' as quantized, but it is not a linear weight of this model that can be");
        foreach (var w in layout)
        {
            if (quantization != null && quantization.Tensors.Contains(w.Name))
            {
                if (!weights.Contains(w.Name))
                    throw new UserError($"{dir}: checkpoint is missing quantized tensor '{w.Name}' that config.json lists");
                string scales = w.Name + CheckpointQuantization.ScalesSuffix;
                if (!weights.Contains(scales))
                    throw new UserError($"{dir}: quantized tensor '{w.Name}' has no scales tensor '{scales}'");
                try
                {
                    QuantizedWeights.FromTensors(quantization.Format, w.Shape[0], w.Shape[1], weights.Get(w.Name), weights.Get(scales));
                }
                catch (UserError error)
                {
                    throw new UserError($"{dir}: {error.Message}");
                }
                stored[w.Name] = w.Name;
                continue;
            }
            string? found = CheckpointLayout.AlternativeNames(w.Name).FirstOrDefault(weights.Contains);
            if (found == null)
            {
                if (IsOptional(w.Name)) continue;
                throw new UserError($"{dir}: checkpoint is missing tensor '{w.Name}' ({Describe(w.Part)}) that config.json calls for");
            }
            var e = weights.Entry(found);
            if (!e.Shape.SequenceEqual(w.Shape))
                throw new UserError($"{dir}: tensor '{found}' has shape [{string.Join(", ", e.Shape)}] but config.json implies [{string.Join(", ", w.Shape)}]");
            if (e.DType is not (DType.F32 or DType.BF16 or DType.F16))
                throw new UserError($"{dir}: tensor '{found}' has dtype {e.DType}; weights must be F32, BF16 or F16");
            stored[w.Name] = found;
        }
        return stored;
    }

    /// <summary>The ConvNeXt classifier head is never used for visual tokens.</summary>
    private static bool IsOptional(string name) => name.StartsWith(CheckpointLayout.VisionPrefix + "head.", StringComparison.Ordinal);

    private static string Describe(ModelPart p) => p switch
    {
        ModelPart.VisionTower => "vision tower",
        ModelPart.Projector => "projector",
        ModelPart.HybridCrossAttention => "hybrid cross-attention",
        _ => "language model",
    };

    /// <summary>A weight by its reference name.</summary>
    public TensorView Get(string name) =>
        _storedNames.TryGetValue(name, out var stored) ? Weights.Get(stored) : Weights.Get(name);

    public bool Has(string name) => _storedNames.ContainsKey(name);

    /// <summary>
    /// A linear weight by its reference name, as the kernels take it: the stored blocks of a quantized
    /// checkpoint; the stored matrix of a plain one, or, with <see cref="QuantizeAtLoad"/> and a decoder
    /// weight that can be, its blocks quantized into memory now.
    /// </summary>
    public WeightMatrix Linear(string name)
    {
        if (Quantization != null && Quantization.Tensors.Contains(name))
        {
            var spec = _specs[name];
            return QuantizedWeights.FromTensors(Quantization.Format, spec.Shape[0], spec.Shape[1], Weights.Get(name),
                Weights.Get(name + CheckpointQuantization.ScalesSuffix));
        }
        var view = Get(name);
        var matrix = WeightMatrix.From(view);
        if (QuantizeAtLoad is BlockFormat format && _specs.TryGetValue(name, out var w) && CheckpointQuantization.IsQuantizable(w, includeVision: false))
        {
            var quantized = QuantizedWeights.Quantize(matrix, format);
            view.ReleasePages();   // the stored matrix is not read again: only the blocks stay resident
            return quantized;
        }
        return matrix;
    }

    /// <summary>Parameter counts by part, from the tensors actually stored.</summary>
    public IReadOnlyDictionary<ModelPart, long> ParameterCounts()
    {
        var counts = Enum.GetValues<ModelPart>().ToDictionary(p => p, _ => 0L);
        foreach (var e in Weights.Entries) counts[PartOf(e.Name)] += e.ElementCount;
        return counts;
    }

    public static ModelPart PartOf(string name) =>
        name.StartsWith(CheckpointLayout.VisionPrefix, StringComparison.Ordinal) || name.StartsWith("model.vision_tower.", StringComparison.Ordinal) ? ModelPart.VisionTower
        : name.StartsWith(CheckpointLayout.ProjectorPrefix, StringComparison.Ordinal) ? ModelPart.Projector
        : name.Contains(".cross_attn_", StringComparison.Ordinal) ? ModelPart.HybridCrossAttention
        : ModelPart.Llm;

    /// <summary>The stored dtypes, most common first (a checkpoint is normally all one dtype).</summary>
    public IReadOnlyList<(DType DType, long Bytes)> StoredDTypes() =>
        Weights.Entries.GroupBy(e => e.DType).Select(g => (g.Key, g.Sum(e => e.ByteLength))).OrderByDescending(t => t.Item2).ToList();

    public void Dispose() => Weights.Dispose();
}
