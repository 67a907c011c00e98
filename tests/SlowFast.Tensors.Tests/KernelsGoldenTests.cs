using SlowFast.Tensors.IO;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Kernels against golden values computed by PyTorch 1.13 (tools/kernels/make_kernel_fixtures.py,
/// fixtures in Fixtures/kernels/). Tolerances are stated per test; they allow for float32
/// rounding-order differences only.
/// </summary>
public class KernelsGoldenTests
{
    private static string FixturePath(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "SlowFast.sln"))) dir = dir.Parent;
        Assert.True(dir != null, "repository root (SlowFast.sln) not found above the test directory");
        return Path.Combine(dir!.FullName, "tests", "SlowFast.Tensors.Tests", "Fixtures", "kernels", name + ".safetensors");
    }

    private static float[] F(SafetensorsFile f, string name) => f.Get(name).ToFloatArray();
    private static int[] I(SafetensorsFile f, string name) => f.Get(name).AsSpan<int>().ToArray();

    [Fact]
    public void Gelu_matches_torch()
    {
        using var f = SafetensorsFile.Open(FixturePath("gelu"));
        var x = F(f, "x");
        Activations.Gelu(x);
        // torch rounds 1 + erf(x/√2) to float32, an absolute error up to ~|x|·3e-8 for x ≪ 0.
        KernelsReference.AssertClose(F(f, "y"), x, 3e-7, 1e-6, "gelu");
    }

    [Fact]
    public void RmsNorm_matches_torch()
    {
        using var f = SafetensorsFile.Open(FixturePath("rmsnorm"));
        var x = F(f, "x");
        var y = new float[x.Length];
        Norms.RmsNorm(x, F(f, "weight"), 1e-6f, y);
        KernelsReference.AssertClose(F(f, "y"), y, 1e-6, 1e-6, "rmsnorm");
    }

    [Fact]
    public void LayerNorm_matches_torch()
    {
        using var f = SafetensorsFile.Open(FixturePath("layernorm"));
        var x = F(f, "x");
        var y = new float[x.Length];
        Norms.LayerNorm(x, F(f, "weight"), F(f, "bias"), 1e-6f, y);
        KernelsReference.AssertClose(F(f, "y"), y, 2e-6, 2e-6, "layernorm");
    }

    [Fact]
    public void Rope_matches_torch_qwen2_formula()
    {
        using var f = SafetensorsFile.Open(FixturePath("rope"));
        var x = F(f, "x");
        Rope.Apply(x, 3, 64, I(f, "positions"), 1000000f);
        // Same float32 angles as torch; cos/sin differ by at most an ulp or so.
        KernelsReference.AssertClose(F(f, "y"), x, 1e-6, 1e-6, "rope");
    }

    [Fact]
    public void DepthwiseConv_matches_torch_grouped_conv2d()
    {
        using var f = SafetensorsFile.Open(FixturePath("depthwise"));
        var x = F(f, "x");
        var y = new float[x.Length];
        Conv.DepthwiseHwc(x, 9, 11, 20, F(f, "weight"), F(f, "bias"), 7, y);
        KernelsReference.AssertClose(F(f, "y"), y, 1e-5, 1e-5, "depthwise");
    }

    [Fact]
    public void Patchify_and_Linear_match_torch_strided_conv2d()
    {
        using var f = SafetensorsFile.Open(FixturePath("patch_conv"));
        var x = F(f, "x");
        var patches = new float[x.Length];
        Conv.PatchifyChw(x, 3, 12, 8, 4, patches);
        var y = new float[6 * 10];
        MatMul.Linear(patches, 6, WeightMatrix.From(f.Get("weight")), F(f, "bias"), y);
        KernelsReference.AssertClose(F(f, "y"), y, 1e-5, 1e-5, "patch conv");
    }

    [Fact]
    public void Attention_matches_torch_softmax_attention_with_gqa()
    {
        using var f = SafetensorsFile.Open(FixturePath("attention"));
        var q = F(f, "q");
        var k = F(f, "k");
        var v = F(f, "v");
        var y = new float[q.Length];
        Attention.Causal(q, I(f, "positions"), k, v, 6, 2, 32, y);
        KernelsReference.AssertClose(F(f, "y_causal"), y, 2e-6, 1e-5, "causal");
        Attention.Full(q, k, v, 6, 2, 32, y);
        KernelsReference.AssertClose(F(f, "y_full"), y, 2e-6, 1e-5, "full");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(64)]
    public void Linear_with_bf16_weights_matches_torch(int m)
    {
        using var f = SafetensorsFile.Open(FixturePath("linear_bf16"));
        var w = WeightMatrix.From(f.Get("weight"));
        Assert.Equal(DType.BF16, w.DType);
        var x = F(f, $"x{m}");
        var y = new float[m * w.Rows];
        MatMul.Linear(x, m, w, F(f, "bias"), y);
        KernelsReference.AssertClose(F(f, $"y{m}"), y, 1e-5, 1e-5, "linear");
    }
}
