using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SlowFast.Model;

/// <summary>
/// The checkpoint's <c>config.json</c> for <c>model_type</c> <c>llava_qwen_slow_fast</c>: the Qwen2
/// decoder fields, the LLaVA multimodal fields and the slow-fast fields. Property names follow the
/// JSON keys (snake_case in JSON, PascalCase here). Where a key is absent, the value is the one the
/// reference code falls back to (Qwen2Config's defaults, the <c>getattr</c> defaults in the model
/// code, or train.py's ModelArguments defaults, in that order of precedence).
/// </summary>
public sealed partial class SlowFastConfig
{
    public const string ModelType = "llava_qwen_slow_fast";

    // ---- Qwen2 decoder (transformers Qwen2Config defaults) ----
    public int VocabSize { get; set; } = 151936;
    public int HiddenSize { get; set; } = 4096;
    public int IntermediateSize { get; set; } = 22016;
    public int NumHiddenLayers { get; set; } = 32;
    public int NumAttentionHeads { get; set; } = 32;
    /// <summary>Defaults to <see cref="NumAttentionHeads"/> when absent (as Qwen2Config does).</summary>
    public int NumKeyValueHeads { get; set; } = 32;
    public string HiddenAct { get; set; } = "silu";
    public int MaxPositionEmbeddings { get; set; } = 32768;
    public double RopeTheta { get; set; } = 10000.0;
    public double RmsNormEps { get; set; } = 1e-6;
    public bool TieWordEmbeddings { get; set; }
    public bool UseSlidingWindow { get; set; }
    public int? SlidingWindow { get; set; } = 4096;
    public int MaxWindowLayers { get; set; } = 28;
    public double AttentionDropout { get; set; }
    public int? BosTokenId { get; set; }
    public int? EosTokenId { get; set; }
    public string? TorchDtype { get; set; }

    // ---- LLaVA multimodal ----
    /// <summary>"convnext-576" (ConvNeXt-XXL CLIP at 576 px, as released); any other name needs a <c>vision_config</c> (<see cref="Vision"/>).</summary>
    public string? MmVisionTower { get; set; }
    public string MmProjectorType { get; set; } = "linear";
    public int? MmHiddenSize { get; set; }
    public int MmVisionSelectLayer { get; set; } = -1;
    public string MmVisionSelectFeature { get; set; } = "patch";
    public string MmPatchMergeType { get; set; } = "flat";
    /// <summary>2-D average pooling of every frame's tokens, for videos only.</summary>
    public int MmVideoPoolingStride { get; set; } = 2;
    public bool MmUseImStartEnd { get; set; }
    /// <summary>The reference's loader adds an &lt;im_patch&gt; token when this is absent (default true).</summary>
    public bool MmUseImPatchToken { get; set; } = true;
    /// <summary>"square" (train.py default) or "pad" (released models).</summary>
    public string ImageAspectRatio { get; set; } = "square";
    public int? TokenizerModelMaxLength { get; set; }
    public string TokenizerPaddingSide { get; set; } = "right";
    public int? MmTrainingVideoFrames { get; set; }

    // ---- slow-fast ----
    public int CrossAttnEveryNLayers { get; set; } = 8;
    /// <summary>"vanilla", "text-only-vanilla", with optional "-masksystem" / "-flashattn" variants.</summary>
    public string CrossAttnImplementation { get; set; } = "vanilla";
    /// <summary>"whole-dynamic" with optional "-tanh" and "-warmup" (train.py's default "channel-wise-dynamic-sigmoid" has no implementation in the reference).</summary>
    public string CrossAttnGatingType { get; set; } = "channel-wise-dynamic-sigmoid";
    public int CrossAttnMinLayerDepth { get; set; }
    /// <summary>Defaults to the number of layers.</summary>
    public int CrossAttnMaxLayerDepth { get; set; }
    public int CrossAttnHeadNum { get; set; } = 28;
    public int CrossAttnKvHeadNum { get; set; } = 14;
    public bool InitializeCrossAttnKvFromLm { get; set; }
    public int FastTokenSpatialStride { get; set; } = 1;
    public int FastTokenTemporalStride { get; set; } = 1;
    public int FastTokenTemporalSamplingStride { get; set; } = 1;
    public int MinFastFrames { get; set; } = 1;
    public bool TileImageInput { get; set; } = true;

    /// <summary>The vision tower's architecture (resolved from <see cref="MmVisionTower"/> or an explicit "vision_config").</summary>
    public ConvNextConfig Vision { get; set; } = ConvNextConfig.XxLarge576();

    /// <summary>The raw JSON, so a config written back keeps fields this class does not model.</summary>
    public JsonObject Raw { get; private set; } = new();

    public int HeadDim => HiddenSize / NumAttentionHeads;
    public int KeyValueGroups => NumAttentionHeads / NumKeyValueHeads;

    /// <summary>Indices of the hybrid decoder layers: range(min_depth, max_depth, every_n), as the reference builds them.</summary>
    public IReadOnlyList<int> HybridLayers
    {
        get
        {
            var list = new List<int>();
            if (CrossAttnEveryNLayers <= 0) return list;
            for (int i = CrossAttnMinLayerDepth; i < CrossAttnMaxLayerDepth && i < NumHiddenLayers; i += CrossAttnEveryNLayers)
                list.Add(i);
            return list;
        }
    }

    public bool IsHybridLayer(int layer) => HybridLayers.Contains(layer);

    /// <summary>Projector depth for "mlpNx_gelu", 1 for "linear", 0 for "identity".</summary>
    public int ProjectorDepth => MmProjectorType switch
    {
        "linear" => 1,
        "identity" => 0,
        _ => MlpGelu().Match(MmProjectorType) is { Success: true } m ? int.Parse(m.Groups[1].Value) : -1,
    };

    public bool GateHasTanh => CrossAttnGatingType.Contains("tanh");
    public bool GateHasWarmup => CrossAttnGatingType.EndsWith("warmup", StringComparison.Ordinal);
    public bool TextOnlyCrossAttention => CrossAttnImplementation.StartsWith("text-only-vanilla", StringComparison.Ordinal);
    public bool MaskSystemTokens => CrossAttnImplementation.Contains("masksystem");

    [GeneratedRegex(@"^mlp(\d+)x_gelu$")]
    private static partial Regex MlpGelu();

    // ------------------------------------------------------------------ loading

    public static SlowFastConfig Load(string path)
    {
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, "config.json");
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        JsonNode? node;
        try
        {
            // A key given twice is refused while parsing: JsonObject would otherwise throw ArgumentException on first use.
            node = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions
            {
                CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, AllowDuplicateProperties = false,
            });
        }
        catch (JsonException e)
        {
            throw new UserError($"{path}: malformed JSON ({e.Message.Split('\n')[0]})");
        }
        if (node is not JsonObject obj) throw new UserError($"{path}: config is not a JSON object");
        return FromJson(obj, path);
    }

    public static SlowFastConfig FromJson(JsonObject obj, string source)
    {
        var c = new SlowFastConfig { Raw = obj };
        var r = new FieldReader(obj, source);
        string? modelType = r.String("model_type", null);
        if (modelType == null) throw new UserError($"{source}: no model_type (expected '{ModelType}')");
        if (modelType != ModelType)
            throw new UserError($"{source}: unknown model_type '{modelType}' (expected '{ModelType}')");

        c.VocabSize = r.Int("vocab_size", c.VocabSize);
        c.HiddenSize = r.Int("hidden_size", c.HiddenSize);
        c.IntermediateSize = r.Int("intermediate_size", c.IntermediateSize);
        c.NumHiddenLayers = r.Int("num_hidden_layers", c.NumHiddenLayers);
        c.NumAttentionHeads = r.Int("num_attention_heads", c.NumAttentionHeads);
        c.NumKeyValueHeads = r.IntOrNull("num_key_value_heads") ?? c.NumAttentionHeads;
        c.HiddenAct = r.String("hidden_act", c.HiddenAct)!;
        c.MaxPositionEmbeddings = r.Int("max_position_embeddings", c.MaxPositionEmbeddings);
        c.RopeTheta = r.Double("rope_theta", c.RopeTheta);
        c.RmsNormEps = r.Double("rms_norm_eps", c.RmsNormEps);
        c.TieWordEmbeddings = r.Bool("tie_word_embeddings", c.TieWordEmbeddings);
        c.UseSlidingWindow = r.Bool("use_sliding_window", c.UseSlidingWindow);
        c.SlidingWindow = obj.ContainsKey("sliding_window") ? r.IntOrNull("sliding_window") : c.SlidingWindow;
        c.MaxWindowLayers = r.Int("max_window_layers", c.MaxWindowLayers);
        c.AttentionDropout = r.Double("attention_dropout", c.AttentionDropout);
        c.BosTokenId = r.IntOrNull("bos_token_id");
        c.EosTokenId = r.IntOrNull("eos_token_id");
        c.TorchDtype = r.String("torch_dtype", null);
        if (obj["rope_scaling"] is JsonObject)
            throw new UserError($"{source}: rope_scaling is not supported");

        c.MmVisionTower = r.String("mm_vision_tower", null) ?? r.String("vision_tower", null);
        c.MmProjectorType = r.String("mm_projector_type", c.MmProjectorType)!;
        c.MmHiddenSize = r.IntOrNull("mm_hidden_size");
        c.MmVisionSelectLayer = r.Int("mm_vision_select_layer", c.MmVisionSelectLayer);
        c.MmVisionSelectFeature = r.String("mm_vision_select_feature", c.MmVisionSelectFeature)!;
        c.MmPatchMergeType = r.String("mm_patch_merge_type", c.MmPatchMergeType)!;
        c.MmVideoPoolingStride = r.Int("mm_video_pooling_stride", c.MmVideoPoolingStride);
        c.MmUseImStartEnd = r.Bool("mm_use_im_start_end", c.MmUseImStartEnd);
        c.MmUseImPatchToken = r.Bool("mm_use_im_patch_token", c.MmUseImPatchToken);
        c.ImageAspectRatio = r.String("image_aspect_ratio", c.ImageAspectRatio)!;
        c.TokenizerModelMaxLength = r.IntOrNull("tokenizer_model_max_length");
        c.TokenizerPaddingSide = r.String("tokenizer_padding_side", c.TokenizerPaddingSide)!;
        c.MmTrainingVideoFrames = r.IntOrNull("mm_training_video_frames");

        c.CrossAttnEveryNLayers = r.Int("cross_attn_every_n_layers", c.CrossAttnEveryNLayers);
        c.CrossAttnImplementation = r.String("cross_attn_implementation", c.CrossAttnImplementation)!;
        c.CrossAttnGatingType = r.String("cross_attn_gating_type", c.CrossAttnGatingType)!;
        c.CrossAttnMinLayerDepth = r.IntOrNull("cross_attn_min_layer_depth") ?? 0;
        c.CrossAttnMaxLayerDepth = r.IntOrNull("cross_attn_max_layer_depth") ?? c.NumHiddenLayers;
        c.CrossAttnHeadNum = r.Int("cross_attn_head_num", c.CrossAttnHeadNum);
        c.CrossAttnKvHeadNum = r.Int("cross_attn_kv_head_num", c.CrossAttnKvHeadNum);
        c.InitializeCrossAttnKvFromLm = r.Bool("initialize_cross_attn_kv_from_lm", c.InitializeCrossAttnKvFromLm);
        c.FastTokenSpatialStride = r.Int("fast_token_spatial_stride", c.FastTokenSpatialStride);
        c.FastTokenTemporalStride = r.Int("fast_token_temporal_stride", c.FastTokenTemporalStride);
        c.FastTokenTemporalSamplingStride = r.Int("fast_token_temporal_sampling_stride", c.FastTokenTemporalSamplingStride);
        c.MinFastFrames = r.IntOrNull("min_fast_frames") ?? 1;
        c.TileImageInput = r.Bool("tile_image_input", c.TileImageInput);

        c.Vision = ConvNextConfig.Resolve(c.MmVisionTower, obj["vision_config"] as JsonObject, source);
        c.MmHiddenSize ??= c.Vision.HiddenSize;
        c.Validate(source);
        return c;
    }

    /// <summary>Checks the values the model code relies on; one clear error per problem.</summary>
    public void Validate(string source)
    {
        void Need(bool ok, string what) { if (!ok) throw new UserError($"{source}: {what}"); }
        Need(HiddenSize > 0 && NumAttentionHeads > 0 && HiddenSize % NumAttentionHeads == 0, $"hidden_size {HiddenSize} is not a multiple of num_attention_heads {NumAttentionHeads}");
        Need(NumKeyValueHeads > 0 && NumAttentionHeads % NumKeyValueHeads == 0, $"num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {NumKeyValueHeads}");
        Need(HeadDim % 2 == 0, $"head dimension {HeadDim} must be even for rotary embeddings");
        Need(NumHiddenLayers > 0, "num_hidden_layers must be positive");
        Need(IntermediateSize > 0, "intermediate_size must be positive");
        Need(VocabSize > 0, "vocab_size must be positive");
        Need(HiddenAct == "silu", $"unknown hidden_act '{HiddenAct}' (Qwen2 uses silu)");
        Need(RopeTheta > 0, "rope_theta must be positive");
        Need(ProjectorDepth >= 0, $"unknown mm_projector_type '{MmProjectorType}' (expected linear, mlpNx_gelu or identity)");
        Need(MmProjectorType != "identity" || MmHiddenSize == HiddenSize, $"mm_projector_type identity needs mm_hidden_size ({MmHiddenSize}) = hidden_size ({HiddenSize})");
        Need(MmHiddenSize == Vision.HiddenSize, $"mm_hidden_size {MmHiddenSize} does not match the vision tower's output width {Vision.HiddenSize}");
        Need(MmVideoPoolingStride >= 1, "mm_video_pooling_stride must be at least 1");
        Need(CrossAttnEveryNLayers >= 1, "cross_attn_every_n_layers must be at least 1");
        Need(CrossAttnImplementation.StartsWith("vanilla", StringComparison.Ordinal) || CrossAttnImplementation.StartsWith("text-only-vanilla", StringComparison.Ordinal),
            $"unknown cross_attn_implementation '{CrossAttnImplementation}' (expected vanilla or text-only-vanilla[-masksystem][-flashattn])");
        Need(CrossAttnGatingType is "whole-dynamic" or "whole-dynamic-tanh" or "whole-dynamic-warmup" or "whole-dynamic-tanh-warmup",
            $"unknown cross_attn_gating_type '{CrossAttnGatingType}' (the reference implements whole-dynamic[-tanh][-warmup])");
        Need(FastTokenSpatialStride >= 1 && FastTokenTemporalStride >= 1 && FastTokenTemporalSamplingStride >= 1, "fast_token_* strides must be at least 1");
        Need(MinFastFrames >= 1, "min_fast_frames must be at least 1");
        Need(ImageAspectRatio is "square" or "pad" or "anyres", $"unknown image_aspect_ratio '{ImageAspectRatio}'");
        Need(MmPatchMergeType == "flat", $"mm_patch_merge_type '{MmPatchMergeType}' is not supported (only flat)");
        Need(!MmUseImStartEnd, "mm_use_im_start_end is not supported (the reference does not implement it either)");
    }

    /// <summary>The config as JSON (the raw object with every modelled field written back).</summary>
    public string ToJson()
    {
        var o = Raw.DeepClone().AsObject();
        void Set(string k, JsonNode? v) => o[k] = v;
        Set("model_type", ModelType);
        Set("architectures", new JsonArray("LlavaQwenSlowFastForCausalLM"));
        Set("vocab_size", VocabSize);
        Set("hidden_size", HiddenSize);
        Set("intermediate_size", IntermediateSize);
        Set("num_hidden_layers", NumHiddenLayers);
        Set("num_attention_heads", NumAttentionHeads);
        Set("num_key_value_heads", NumKeyValueHeads);
        Set("hidden_act", HiddenAct);
        Set("max_position_embeddings", MaxPositionEmbeddings);
        Set("rope_theta", RopeTheta);
        Set("rms_norm_eps", RmsNormEps);
        Set("tie_word_embeddings", TieWordEmbeddings);
        Set("use_sliding_window", UseSlidingWindow);
        Set("sliding_window", SlidingWindow);
        Set("max_window_layers", MaxWindowLayers);
        Set("attention_dropout", AttentionDropout);
        Set("bos_token_id", BosTokenId);
        Set("eos_token_id", EosTokenId);
        if (TorchDtype != null) Set("torch_dtype", TorchDtype);
        Set("use_cache", true);
        Set("mm_vision_tower", MmVisionTower);
        Set("mm_projector_type", MmProjectorType);
        Set("mm_hidden_size", MmHiddenSize);
        Set("mm_vision_select_layer", MmVisionSelectLayer);
        Set("mm_vision_select_feature", MmVisionSelectFeature);
        Set("mm_patch_merge_type", MmPatchMergeType);
        Set("mm_video_pooling_stride", MmVideoPoolingStride);
        Set("mm_use_im_start_end", MmUseImStartEnd);
        Set("mm_use_im_patch_token", MmUseImPatchToken);
        Set("use_mm_proj", true);
        Set("image_aspect_ratio", ImageAspectRatio);
        Set("tokenizer_model_max_length", TokenizerModelMaxLength);
        Set("tokenizer_padding_side", TokenizerPaddingSide);
        if (MmTrainingVideoFrames != null) Set("mm_training_video_frames", MmTrainingVideoFrames);
        Set("cross_attn_every_n_layers", CrossAttnEveryNLayers);
        Set("cross_attn_implementation", CrossAttnImplementation);
        Set("cross_attn_gating_type", CrossAttnGatingType);
        Set("cross_attn_min_layer_depth", CrossAttnMinLayerDepth);
        Set("cross_attn_max_layer_depth", CrossAttnMaxLayerDepth);
        Set("cross_attn_head_num", CrossAttnHeadNum);
        Set("cross_attn_kv_head_num", CrossAttnKvHeadNum);
        Set("initialize_cross_attn_kv_from_lm", InitializeCrossAttnKvFromLm);
        Set("fast_token_spatial_stride", FastTokenSpatialStride);
        Set("fast_token_temporal_stride", FastTokenTemporalStride);
        Set("fast_token_temporal_sampling_stride", FastTokenTemporalSamplingStride);
        Set("min_fast_frames", MinFastFrames);
        Set("tile_image_input", TileImageInput);
        if (!Vision.IsXxLarge576Default || MmVisionTower != ConvNextConfig.XxLarge576Name)
            Set("vision_config", Vision.ToJson());
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Applies "key=value" overrides (value parsed as JSON when it parses, else as a string), then re-validates.</summary>
    public static SlowFastConfig WithOverrides(SlowFastConfig config, IEnumerable<string> assignments, string source)
    {
        var o = JsonNode.Parse(config.ToJson())!.AsObject();
        var keys = assignments.Select(a => a.Split('=')[0].Trim()).ToHashSet();
        // A new tower without an explicit mm_hidden_size takes its width from the tower.
        if ((keys.Contains("vision_config") || keys.Contains("mm_vision_tower")) && !keys.Contains("mm_hidden_size"))
            o.Remove("mm_hidden_size");
        foreach (var a in assignments)
        {
            int eq = a.IndexOf('=');
            if (eq <= 0) throw new UserError($"--set '{a}': expected key=value");
            string key = a[..eq].Trim();
            string value = a[(eq + 1)..];
            JsonNode? v;
            try { v = JsonNode.Parse(value); }
            catch (JsonException) { v = JsonValue.Create(value); }
            o[key] = v;
        }
        return FromJson(o, source);
    }

    /// <summary>Reads typed fields with one-line errors naming the file and key.</summary>
    private readonly struct FieldReader(JsonObject obj, string source)
    {
        private JsonNode? Get(string key) => obj.TryGetPropertyValue(key, out var n) ? n : null;

        private UserError Bad(string key, string expected) => new($"{source}: field '{key}' should be {expected}, got {Get(key)?.ToJsonString() ?? "null"}");

        public int Int(string key, int fallback) => IntOrNull(key) ?? fallback;

        public int? IntOrNull(string key)
        {
            var n = Get(key);
            if (n == null) return null;
            if (n is JsonValue v)
            {
                if (v.TryGetValue<int>(out int i)) return i;
                if (v.TryGetValue<long>(out long l) && l is >= int.MinValue and <= int.MaxValue) return (int)l;
                if (v.TryGetValue<double>(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
            }
            throw Bad(key, "an integer");
        }

        public double Double(string key, double fallback)
        {
            var n = Get(key);
            if (n == null) return fallback;
            // 1e309 reads as infinity: no setting of this model is infinite, and the config could not be written back.
            if (n is JsonValue v && v.TryGetValue<double>(out double d) && double.IsFinite(d)) return d;
            throw Bad(key, "a finite number");
        }

        public bool Bool(string key, bool fallback)
        {
            var n = Get(key);
            if (n == null) return fallback;
            if (n is JsonValue v && v.TryGetValue<bool>(out bool b)) return b;
            throw Bad(key, "true or false");
        }

        public string? String(string key, string? fallback)
        {
            var n = Get(key);
            if (n == null) return fallback;
            if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
            throw Bad(key, "a string");
        }
    }
}
