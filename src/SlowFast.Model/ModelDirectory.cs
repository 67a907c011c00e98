using SlowFast.Tensors;
using SlowFast.Tensors.IO;

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
    /// <summary>Maps each layout name to the name actually stored (older exports use ".gamma" for the layer scale).</summary>
    private readonly Dictionary<string, string> _storedNames;

    private ModelDirectory(string path, SlowFastConfig config, SafetensorsCheckpoint weights, IReadOnlyList<WeightSpec> layout, Dictionary<string, string> stored)
    {
        Path = path;
        Config = config;
        Weights = weights;
        Layout = layout;
        _storedNames = stored;
    }

    public static ModelDirectory Open(string dir)
    {
        if (File.Exists(dir)) throw new UserError($"{dir}: is a file; --model takes a checkpoint directory");
        if (!Directory.Exists(dir)) throw new UserError($"{dir}: model directory not found");
        var config = SlowFastConfig.Load(System.IO.Path.Combine(dir, "config.json"));
        var weights = SafetensorsCheckpoint.Open(dir);
        try
        {
            var layout = CheckpointLayout.For(config);
            var stored = Check(dir, config, weights, layout);
            return new ModelDirectory(dir, config, weights, layout, stored);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private static Dictionary<string, string> Check(string dir, SlowFastConfig config, SafetensorsCheckpoint weights, IReadOnlyList<WeightSpec> layout)
    {
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var w in layout)
        {
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
