using System.Text.Json.Nodes;

namespace SlowFast.Model;

/// <summary>
/// The ConvNeXt vision tower's shape. The released checkpoints name their tower "convnext-576", which
/// the reference hard-codes as timm's convnext_xxlarge (CLIP LAION-2B) at 576 px: depths 3/4/30/3,
/// dims 384/768/1536/3072, patch-4 stem, LayerNorm eps 1e-5, a 1000-class head that is never used.
/// Other towers (the tiny and small test presets) describe themselves in config.json's
/// "vision_config" object with the same keys as the JSON names here.
/// </summary>
public sealed record ConvNextConfig
{
    public const string XxLarge576Name = "convnext-576";

    public int[] Depths { get; init; } = [3, 4, 30, 3];
    public int[] Dims { get; init; } = [384, 768, 1536, 3072];
    public int ImageSize { get; init; } = 576;
    public int PatchSize { get; init; } = 4;
    public int KernelSize { get; init; } = 7;
    public double NormEps { get; init; } = 1e-5;
    /// <summary>Classifier head classes (head.norm + head.fc weights exist in the checkpoint but are unused); 0 = no head.</summary>
    public int NumClasses { get; init; } = 1000;

    public static ConvNextConfig XxLarge576() => new();

    public bool IsXxLarge576Default => Depths.SequenceEqual([3, 4, 30, 3]) && Dims.SequenceEqual([384, 768, 1536, 3072])
        && ImageSize == 576 && PatchSize == 4 && KernelSize == 7 && NormEps == 1e-5 && NumClasses == 1000;

    /// <summary>Width of the final stage: the visual tokens' channel count (the projector's input).</summary>
    public int HiddenSize => Dims[^1];

    /// <summary>Total spatial reduction: the stem's patch size, then 2× per later stage.</summary>
    public int Reduction => PatchSize * (1 << (Dims.Length - 1));

    /// <summary>Tokens along one side of the final feature map (18 for 576 px).</summary>
    public int TokensPerSide => ImageSize / Reduction;

    public int TokensPerFrame => TokensPerSide * TokensPerSide;

    public static ConvNextConfig Resolve(string? towerName, JsonObject? explicitConfig, string source)
    {
        if (explicitConfig != null) return FromJson(explicitConfig, source);
        if (towerName == null) throw new UserError($"{source}: no mm_vision_tower (a slow-fast checkpoint needs a vision tower)");
        if (towerName == XxLarge576Name) return XxLarge576();
        throw new UserError($"{source}: unknown mm_vision_tower '{towerName}' (known: {XxLarge576Name}; other towers need a vision_config block)");
    }

    public static ConvNextConfig FromJson(JsonObject o, string source)
    {
        string arch = (string?)o["architecture"] ?? "convnext";
        if (arch != "convnext") throw new UserError($"{source}: vision_config architecture '{arch}' is not supported (only convnext)");
        int[] Ints(string key, int[] fallback)
        {
            if (o[key] is not JsonArray a) return fallback;
            try { return a.Select(n => (int)n!).ToArray(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            { throw new UserError($"{source}: vision_config.{key} should be a list of integers"); }
        }
        int Int(string key, int fallback) => o[key] is JsonValue v && v.TryGetValue<int>(out int i) ? i : fallback;
        var c = new ConvNextConfig
        {
            Depths = Ints("depths", [3, 4, 30, 3]),
            Dims = Ints("dims", [384, 768, 1536, 3072]),
            ImageSize = Int("image_size", 576),
            PatchSize = Int("patch_size", 4),
            KernelSize = Int("kernel_size", 7),
            NormEps = o["norm_eps"] is JsonValue e && e.TryGetValue<double>(out double eps) && double.IsFinite(eps) ? eps : 1e-5,
            NumClasses = Int("num_classes", 1000),
        };
        if (c.Depths.Length != c.Dims.Length || c.Depths.Length == 0)
            throw new UserError($"{source}: vision_config depths and dims must have the same, non-zero length");
        if (c.Depths.Any(d => d < 1) || c.Dims.Any(d => d < 1)) throw new UserError($"{source}: vision_config depths and dims must be positive");
        if (c.ImageSize % c.Reduction != 0) throw new UserError($"{source}: vision_config image_size {c.ImageSize} is not a multiple of the tower's reduction {c.Reduction}");
        if (c.KernelSize % 2 != 1) throw new UserError($"{source}: vision_config kernel_size must be odd");
        return c;
    }

    public JsonObject ToJson() => new()
    {
        ["architecture"] = "convnext",
        ["depths"] = new JsonArray(Depths.Select(d => (JsonNode)d).ToArray()),
        ["dims"] = new JsonArray(Dims.Select(d => (JsonNode)d).ToArray()),
        ["image_size"] = ImageSize,
        ["patch_size"] = PatchSize,
        ["kernel_size"] = KernelSize,
        ["norm_eps"] = NormEps,
        ["num_classes"] = NumClasses,
    };
}
