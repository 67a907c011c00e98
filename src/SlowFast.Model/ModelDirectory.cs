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
    /// <summary>
    /// Whether <see cref="Linear"/> packs the decoder's BF16 matrices for the bfloat16 GEMM as it binds
    /// them and releases the stored ones' pages (see <see cref="Open"/>).
    /// </summary>
    public bool PackDecoderAtLoad { get; }
    /// <summary>Why packing at load was asked and not done (<see cref="WhyNotPack"/>); null otherwise.</summary>
    public string? PackingDeclined { get; }
    /// <summary>Time <see cref="Linear"/> has spent packing decoder matrices (<see cref="PackDecoderAtLoad"/>).</summary>
    public TimeSpan DecoderPackingTime { get; private set; }
    /// <summary>Maps each layout name to the name actually stored (older exports use ".gamma" for the layer scale).</summary>
    private readonly Dictionary<string, string> _storedNames;
    private readonly Dictionary<string, WeightSpec> _specs;

    private ModelDirectory(string path, SlowFastConfig config, SafetensorsCheckpoint weights, IReadOnlyList<WeightSpec> layout,
        Dictionary<string, string> stored, CheckpointQuantization? quantization, BlockFormat? quantizeAtLoad, bool packDecoder)
    {
        Path = path;
        Config = config;
        Weights = weights;
        Layout = layout;
        _storedNames = stored;
        _specs = layout.ToDictionary(w => w.Name, StringComparer.Ordinal);
        Quantization = quantization;
        QuantizeAtLoad = quantization == null ? quantizeAtLoad : null;
        if (packDecoder)
        {
            PackingDeclined = WhyNotPack(MatMul.BFloat16Supported, quantization != null || QuantizeAtLoad != null, DecoderPackedBytes(), MemoryEstimate.Available(afterCollection: true));
            PackDecoderAtLoad = PackingDeclined == null;
        }
    }

    /// <summary>
    /// Why the decoder's matrices are not packed at load although asked, or null when they are: packing
    /// needs the bfloat16 GEMM and BF16 weights as stored, and the packed matrices (<paramref name="packedBytes"/>,
    /// held by the process for its life) may take at most 3/4 of the memory <paramref name="available"/>, so
    /// that videos and KV caches still fit; the stored weights, memory-mapped, need no such room.
    /// </summary>
    internal static string? WhyNotPack(bool bf16Gemm, bool quantized, long packedBytes, long available) =>
        !bf16Gemm ? "this CPU has no bfloat16 GEMM (AVX512-BF16)"
        : quantized ? "the decoder's weights are quantized"
        : packedBytes == 0 ? "the decoder's matrices are not stored as BF16"
        : packedBytes > available / 4 * 3 ? FormattableString.Invariant($"packed they would take {packedBytes / 1e9:F1} GB, more than 3/4 of the {available / 1e9:F1} GB available")
        : null;

    /// <summary>
    /// Whether <paramref name="w"/> is one of the decoder's matrices that packing at load replaces: a
    /// BF16 linear weight of the LLM or of a hybrid layer's cross-attention (lm_head included; the
    /// vision tower packs its own, the embedding table is read by rows, a one-row gate as floats).
    /// </summary>
    private bool IsPackedAtLoad(WeightSpec w) =>
        w.Init == WeightInit.Linear && w.Shape.Length == 2 && w.Shape[0] > 1 && (w.Part is ModelPart.Llm or ModelPart.HybridCrossAttention)
        && Weights.Contains(StoredName(w.Name)) && Weights.Entry(StoredName(w.Name)).DType == DType.BF16;

    private string StoredName(string name) => _storedNames.TryGetValue(name, out var stored) ? stored : name;

    /// <summary>Bytes the decoder's matrices take packed for the bfloat16 GEMM (what packing at load allocates).</summary>
    public long DecoderPackedBytes() =>
        Layout.Where(IsPackedAtLoad).Sum(w => MatMul.PackedBFloat16Bytes((int)w.Shape[0], (int)w.Shape[1]));

    /// <param name="quantizeAtLoad">Quantize the decoder's linear weights to this format as they are bound
    /// (<see cref="Linear"/>), without writing anything; ignored for a checkpoint that is quantized already.</param>
    /// <param name="packDecoder">Pack the decoder's BF16 matrices for the bfloat16 GEMM as they are bound,
    /// in place of the stored ones (whose pages are released; float32 products map them back). Declined
    /// (<see cref="PackingDeclined"/>) without the bfloat16 GEMM, for quantized or non-BF16 weights, or when
    /// the packed matrices would take more than 3/4 of the memory available.</param>
    public static ModelDirectory Open(string dir, BlockFormat? quantizeAtLoad = null, bool packDecoder = false)
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
            return new ModelDirectory(dir, config, weights, layout, stored, quantization, quantizeAtLoad, packDecoder);
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
    /// weight that can be, its blocks quantized into memory now, or with <see cref="PackDecoderAtLoad"/>
    /// and a decoder matrix, the matrix packed for the bfloat16 GEMM now.
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
        if (PackDecoderAtLoad && _specs.TryGetValue(name, out var decoderSpec) && IsPackedAtLoad(decoderSpec))
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            var packed = MatMul.PackForBFloat16(matrix);
            view.ReleasePages();   // bfloat16 products read only the strips; a float32 one maps the pages back
            DecoderPackingTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
            return packed;
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
