using System.Text.Json;
using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;
using SlowFast.Tensors.Kernels;
using static SlowFast.Model.Tests.VisionTestSupport;

namespace SlowFast.Model.Tests;

/// <summary>
/// The vision path against the golden fixtures of tools/reference/make_golden.py (an independent
/// PyTorch implementation of the reference): for every case with visual input, re-create the tiny
/// checkpoint from the case's metadata, check its fingerprint, encode the stored pixel_values and
/// compare the tower features, the projected tokens and the fast and slow tokens.
/// </summary>
/// <remarks>
/// Tolerance: max abs error 1e-4 (tools/reference/README.md: the float32 reference is within ~1e-6 of
/// float64; the C# code sums in other orders). BF16 checkpoints: the weights widen to float32 exactly
/// and both sides compute in float32, so the bound is the same.
/// </remarks>
public class VisionGoldenTests
{
    private const double Tolerance = 1e-4;
    /// <summary>bf16 math: inputs near a bfloat16 rounding tie can round differently on the two sides (see DecoderGoldenTests).</summary>
    private const double Bf16MathTolerance = 2e-2;
    /// <summary>
    /// int8 MLPs: the same, for an input within float32 noise of a quantization tie (x · 127 / max|x| at
    /// k + 0.5): one step of one element moves an output by s_x · s_w · q_w, about 1e-3 here.
    /// </summary>
    private const double Int8Tolerance = 2e-2;

    private static string GoldenDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "golden");

    public static TheoryData<string> VisualCases()
    {
        var data = new TheoryData<string>();
        foreach (var name in VisualCaseNames()) data.Add(name);
        return data;
    }

    private static List<string> VisualCaseNames()
    {
        var names = new List<string>();
        foreach (var path in Directory.GetFiles(GoldenDir, "*.safetensors").OrderBy(p => p, StringComparer.Ordinal))
        {
            using var f = SafetensorsFile.Open(path);
            if (f.Contains("vision_features")) names.Add(Path.GetFileNameWithoutExtension(path));
        }
        return names;
    }

    [Fact]
    public void Golden_cases_cover_images_videos_and_adaptive_pooling()
    {
        var cases = VisualCaseNames();
        var metas = cases.Select(c => Metadata(Path.Combine(GoldenDir, c + ".safetensors"))).ToList();
        Assert.Contains(metas, m => m.GetProperty("input").GetString() == "image");
        Assert.Contains(metas, m => m.GetProperty("input").GetString() == "video" && m.GetProperty("frames").GetInt32() % 2 == 1);
        Assert.True(cases.Count >= 5, $"only {cases.Count} golden cases with visual input");
    }

    [Theory]
    [MemberData(nameof(VisualCases))]
    public void Vision_tokens_match_golden(string name)
    {
        string path = Path.Combine(GoldenDir, name + ".safetensors");
        using var golden = SafetensorsFile.Open(path);
        var meta = Metadata(path);
        string preset = meta.GetProperty("preset").GetString()!;
        ulong seed = meta.GetProperty("seed").GetUInt64();
        var dtype = meta.GetProperty("dtype").GetString() switch { "f32" => DType.F32, "bf16" => DType.BF16, "f16" => DType.F16, var d => throw new InvalidOperationException($"dtype {d}") };
        var overrides = meta.GetProperty("overrides").EnumerateArray().Select(e => e.GetString()!).ToList();
        int frames = meta.GetProperty("frames").GetInt32();

        // The vision path does not depend on the vocabulary, and the weights are generated per
        // element index, so a small vocabulary gives the same vision weights (and the same
        // fingerprint: the first values of embed_tokens and lm_head) while keeping creation quick.
        overrides.Add(VisionTowerTests.SmallVocab);
        using var model = ModelDirectory.Open(Checkpoint(preset, seed, dtype, [.. overrides]));
        CheckFingerprint(model, golden, meta);

        var encoder = new VisionEncoder(model);
        bool bf16Math = meta.TryGetProperty("bf16_math", out var b) && b.GetBoolean();
        if (bf16Math)
        {
            if (!MatMul.BFloat16Supported) return;   // the decoder test checks the float32 fallback
            encoder.Tower.Precision = encoder.Projector.Precision = MatMulPrecision.BFloat16;
        }
        bool int8 = meta.TryGetProperty("vision_int8", out var i8) && i8.GetBoolean();
        if (int8)
        {
            if (!MatMul.Int8ChannelsSupported) return;
            encoder.Tower.MlpInt8 = true;
        }
        double tolerance = bf16Math ? Bf16MathTolerance : int8 ? Int8Tolerance : Tolerance;
        var pixels = golden.Get("pixel_values").ToFloatArray();
        Assert.Equal([frames, 3, encoder.ImageSize, encoder.ImageSize], golden.Get("pixel_values").Shape.ToArray());

        var tokens = encoder.Encode(pixels, frames, keepIntermediates: true);

        AssertClose(golden.Get("vision_features").ToFloatArray(), tokens.Features, tolerance, $"{name}: vision_features");
        AssertClose(golden.Get("projected").ToFloatArray(), tokens.Projected, tolerance, $"{name}: projected");
        AssertClose(golden.Get("slow_tokens").ToFloatArray(), tokens.Slow, tolerance, $"{name}: slow_tokens");
        AssertClose(golden.Get("fast_tokens").ToFloatArray(), tokens.Fast, tolerance, $"{name}: fast_tokens");
        if (bf16Math)
        {
            // The bf16 arithmetic really ran: float32 features are on average measurably further from this
            // fixture (the worst element is a rounding-tie flip on either side, so the mean is compared).
            encoder.Tower.Precision = encoder.Projector.Precision = MatMulPrecision.Float32;
            var f32 = encoder.Encode(pixels, frames, keepIntermediates: true);
            var expected = golden.Get("projected").ToFloatArray();
            double bf16Err = MeanAbsDiff(expected, tokens.Projected!), f32Err = MeanAbsDiff(expected, f32.Projected!);
            Assert.True(f32Err > 2 * bf16Err, $"{name}: float32 is {f32Err} from the bf16-math fixture, bf16 math {bf16Err}");
        }
        if (int8)
        {
            // The int8 arithmetic really ran: the float32 tower is on average measurably further from this fixture.
            var f32 = new VisionEncoder(model).Encode(pixels, frames, keepIntermediates: true);
            var expected = golden.Get("vision_features").ToFloatArray();
            double int8Err = MeanAbsDiff(expected, tokens.Features!), f32Err = MeanAbsDiff(expected, f32.Features!);
            Assert.True(f32Err > 10 * int8Err, $"{name}: float32 is {f32Err} from the int8 fixture, int8 {int8Err}");
        }
        Assert.Equal(meta.GetProperty("fast_tokens").GetInt32(), tokens.FastCount);
        Assert.Equal(meta.GetProperty("slow_tokens").GetInt32(), tokens.SlowCount);
        Assert.Equal(golden.Get("fast_tokens").Dim(0), tokens.Plan.FastTokens);
        Assert.Equal(golden.Get("slow_tokens").Dim(0), tokens.Plan.SlowTokens);
        Assert.Equal(meta.GetProperty("input").GetString() == "video", tokens.IsVideo);
    }

    private static double MeanAbsDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Average();

    private static void CheckFingerprint(ModelDirectory model, SafetensorsFile golden, JsonElement meta)
    {
        var expected = golden.Get("fingerprint").ToFloatArray();
        var names = meta.GetProperty("fingerprint_names").EnumerateArray().Select(e => e.GetString()!).ToList();
        int per = expected.Length / names.Count;
        var actual = new List<float>();
        foreach (var n in names)
        {
            var v = new float[per];
            model.Get(n).ToFloat(0, v);
            actual.AddRange(v);
        }
        Assert.True(expected.SequenceEqual(actual), $"re-created checkpoint does not match the fixture's fingerprint ({string.Join(", ", names)})");
    }

    private static JsonElement Metadata(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return JsonDocument.Parse(f.Metadata["case"]).RootElement.Clone();
    }
}
