using System.Text.Json;

namespace SlowFast.Media.Tests;

/// <summary>
/// Our resize + crop against Pillow's own output (tools/media/make_clip_fixtures.py, PIL 9.4 BICUBIC
/// with reducing_gap=None, as Hugging Face's CLIPImageProcessor calls it). Tolerance: 1/255 per
/// value before normalisation (we expect, and count, exact matches).
/// </summary>
public class ClipPreprocessorTests
{
    private static readonly string FixtureDir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "clip");

    public static IEnumerable<object[]> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "manifest.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            yield return [c.GetProperty("source").GetString()!, c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(),
                c.GetProperty("size").GetInt32(), c.GetProperty("aspect").GetString()!, c.GetProperty("expected").GetString()!];
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ResizeAndCrop_MatchesPillow(string source, int width, int height, int size, string aspect, string expectedFile)
    {
        byte[] src = File.ReadAllBytes(Path.Combine(FixtureDir, source));
        byte[] expected = File.ReadAllBytes(Path.Combine(FixtureDir, expectedFile));
        Assert.Equal(3 * width * height, src.Length);
        Assert.Equal(3 * size * size, expected.Length);

        var pre = new ClipPreprocessor(size, aspect == "pad" ? AspectMode.Pad : AspectMode.Crop);
        var actual = new byte[3 * size * size];
        pre.ResizeAndCrop(src, width, height, actual);

        int maxDiff = 0, exact = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            int d = Math.Abs(actual[i] - expected[i]);
            maxDiff = Math.Max(maxDiff, d);
            if (d == 0) exact++;
        }
        Assert.True(maxDiff <= 1, $"{source} -> {size} {aspect}: max difference {maxDiff}/255, {exact}/{actual.Length} exact");
        // Pillow's fixed-point arithmetic is reproduced exactly, so every byte should agree.
        Assert.Equal(actual.Length, exact);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Preprocess_NormalisesTheCroppedBytes(string source, int width, int height, int size, string aspect, string expectedFile)
    {
        byte[] src = File.ReadAllBytes(Path.Combine(FixtureDir, source));
        byte[] expected = File.ReadAllBytes(Path.Combine(FixtureDir, expectedFile));
        var pre = new ClipPreprocessor(size, aspect == "pad" ? AspectMode.Pad : AspectMode.Crop);
        var chw = new float[3 * size * size];
        pre.Preprocess(src, width, height, chw);
        int plane = size * size;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < plane; i++)
            {
                // HF: float32(u / 255), then (x - mean) / std in float32.
                float x = (float)(expected[3 * i + c] / 255.0);
                float want = (x - ClipPreprocessor.ClipMean[c]) / ClipPreprocessor.ClipStd[c];
                Assert.Equal(want, chw[c * plane + i]);
            }
    }

    [Fact]
    public void RepeatedFramesOfDifferentSizes_ReuseNothingStale()
    {
        var pre = new ClipPreprocessor(32);
        var cases = Cases().ToList();
        var outputs = new byte[3 * 32 * 32];
        // Alternate geometries through one instance; each must still match Pillow.
        foreach (var c in cases.Concat(cases).Where(c => (int)c[3] == 32 && (string)c[4] == "square"))
        {
            byte[] src = File.ReadAllBytes(Path.Combine(FixtureDir, (string)c[0]));
            pre.ResizeAndCrop(src, (int)c[1], (int)c[2], outputs);
            Assert.Equal(File.ReadAllBytes(Path.Combine(FixtureDir, (string)c[5])), outputs);
        }
    }

    [Theory]
    [InlineData(1280, 720, 576, 1024, 576)]
    [InlineData(720, 1280, 576, 576, 1024)]
    [InlineData(641, 479, 576, 770, 576)]
    [InlineData(100, 100, 576, 576, 576)]
    public void ResizedSize_IsHuggingFaceShortestEdge(int w, int h, int size, int ew, int eh)
    {
        // int(576 * 641 / 479) = int(770.8...) = 770
        Assert.Equal((ew, eh), ClipPreprocessor.ResizedSize(w, h, size));
    }

    [Fact]
    public void PadFill_IsTheMeanColour()
    {
        // A 4x2 white image padded to 4x4: rows 0 and 3 are the fill int(255 * mean) = (122, 116, 104).
        var pre = new ClipPreprocessor(4, AspectMode.Pad);
        var white = Enumerable.Repeat((byte)255, 4 * 2 * 3).ToArray();
        var output = new byte[4 * 4 * 3];
        pre.ResizeAndCrop(white, 4, 2, output);
        Assert.Equal(new byte[] { 122, 116, 104 }, output[..3]);
        Assert.Equal(new byte[] { 255, 255, 255 }, output[(3 * 4)..(3 * 4 + 3)]);
        Assert.Equal(new byte[] { 122, 116, 104 }, output[(3 * 12)..(3 * 12 + 3)]);
    }
}
