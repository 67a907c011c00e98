using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// The bfloat16 GEMM's two tile arithmetics (<see cref="Bf16TileKernel.Arithmetic"/>): vdpbf16ps, and
/// FMAs on operands widened to float32 for CPUs whose vdpbf16ps is slower than their FMAs. The
/// widened tiles are held bit for bit to a scalar model of their arithmetic (per output, a pair's odd
/// product then its even one, each one rounding, pairs in order, a block's sums then added to the
/// bias or to the earlier blocks' result), and to vdpbf16ps's sums within float32 rounding.
/// </summary>
[Collection(GemmTunablesCollection.Name)]
public class KernelsBf16WidenedTilesTests
{
    public static IEnumerable<object[]> Shapes()
    {
        // Past the row kernel's rows (decoding's few rows never reach the GEMM): partial 6-row tiles, masked
        // 16-column groups, odd K, several 64-column strips and tasks, and (with blockPairs) K in several
        // feature blocks, the last shorter.
        yield return new object[] { 17, 64, 256, 0, true };
        yield return new object[] { 23, 70, 301, 0, true };
        yield return new object[] { 121, 300, 1001, 0, false };
        yield return new object[] { 130, 90, 1000, 64, true };
        yield return new object[] { 37, 150, 301, 4, false };
        yield return new object[] { 250, 33, 4501, 0, true };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Widened_tiles_compute_exactly_their_scalar_model(int m, int n, int k, int blockPairs, bool withBias)
    {
        if (!MatMul.BFloat16Supported) return;
        var (x, w, wBits, bias) = Operands(m, n, k, withBias, seed: 71);
        var y = Run(Bf16TileKernel.Arithmetic.WidenedFma, x, m, w, bias, blockPairs);
        int effectivePairs = blockPairs > 0 ? blockPairs : MatMul.BlockedGemm.MaxBlockPairs;
        var expected = ScalarModel(x, m, wBits, n, k, bias, BlockPairsOf(k, effectivePairs));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(y[i]),
                $"y[{i / n}, {i % n}]: model {expected[i]:R}, widened tiles {y[i]:R}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Both_arithmetics_give_the_same_sums(int m, int n, int k, int blockPairs, bool withBias)
    {
        if (!MatMul.BFloat16Supported) return;
        var (x, w, _, bias) = Operands(m, n, k, withBias, seed: 81);
        var dot = Run(Bf16TileKernel.Arithmetic.DotProduct, x, m, w, bias, blockPairs);
        var fma = Run(Bf16TileKernel.Arithmetic.WidenedFma, x, m, w, bias, blockPairs);
        // Intel defines vdpbf16ps as the odd product added, then the even one, each rounded once, as the
        // widened tiles do: there the two are equal bit for bit (no denormals here). Other makers' vdpbf16ps
        // may add the pair otherwise: within float32 rounding of sums over K.
        if (IsIntel()) Assert.Equal(dot, fma);
        else KernelsReference.AssertClose(dot, fma, 2e-6 * k + 1e-6, 1e-5, "widened vs vdpbf16ps");
    }

    private static bool IsIntel() => File.Exists("/proc/cpuinfo") && File.ReadAllText("/proc/cpuinfo").Contains("GenuineIntel");

    [Fact]
    public void Widened_tiles_keep_denormals_that_vdpbf16ps_flushes()
    {
        // y = x · I: each output is its input rounded to bfloat16 (products by 1, sums with 0).
        if (!MatMul.BFloat16Supported) return;
        int m = 24, n = 16;
        var x = new float[m * n];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 3 == 0 ? 7.0e-39f : 1.5f) * (i + 1);
        var identity = new float[n * n];
        for (int i = 0; i < n; i++) identity[i * n + i] = 1f;
        var w = WeightMatrix.FromHalfBits(identity.Select(DTypes.FloatToBF16).ToArray(), DType.BF16, n, n);
        var y = Run(Bf16TileKernel.Arithmetic.WidenedFma, x, m, w, null, 0);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(DTypes.BF16ToFloat(DTypes.FloatToBF16(x[i])), y[i]);
    }

    [Fact]
    public void The_choice_follows_the_measured_rates_unless_the_environment_sets_it()
    {
        if (!MatMul.BFloat16Supported) return;
        string? forced = Environment.GetEnvironmentVariable("SLOWFAST_BF16_TILES");
        double ratio = Bf16TileKernel.MeasuredFmaToDotRatio;
        if (forced is "dot" or "fma")
        {
            Assert.Equal(forced == "fma", Bf16TileKernel.Tiles == Bf16TileKernel.Arithmetic.WidenedFma);
            return;
        }
        // The two register-only loops measured: the ratio is a rate, and picks the arithmetic; measured again,
        // it picks the same (the machines seen are far from the threshold: about 2 on the Intel Xeon, below 1 on AMD Zen 5).
        Assert.InRange(ratio, 0.1, 10);
        Assert.Equal(ratio >= Bf16TileKernel.WidenedFmaAdvantage, Bf16TileKernel.Tiles == Bf16TileKernel.Arithmetic.WidenedFma);
        double again = Bf16PeakKernel.FmaToDotRatio();
        Assert.Equal(ratio >= Bf16TileKernel.WidenedFmaAdvantage, again >= Bf16TileKernel.WidenedFmaAdvantage);
    }

    private static float[] Run(Bf16TileKernel.Arithmetic tiles, float[] x, int m, WeightMatrix w, float[]? bias, int blockPairs)
    {
        var y = new float[m * w.Rows];
        Array.Fill(y, float.NaN);   // every output must be written
        var savedTiles = Bf16TileKernel.Tiles;
        int savedMax = MatMul.BlockedGemm.MaxBlockPairs;
        Bf16TileKernel.Tiles = tiles;
        if (blockPairs > 0) MatMul.BlockedGemm.MaxBlockPairs = blockPairs;
        try { MatMul.Linear(x, m, w, bias ?? ReadOnlySpan<float>.Empty, y, MatMulPrecision.BFloat16); }
        finally
        {
            Bf16TileKernel.Tiles = savedTiles;
            MatMul.BlockedGemm.MaxBlockPairs = savedMax;
        }
        return y;
    }

    private static (float[] X, WeightMatrix W, ushort[] WBits, float[]? Bias) Operands(int m, int n, int k, bool withBias, int seed)
    {
        var x = KernelsReference.Random(m * k, seed);
        var wBits = KernelsReference.Random(n * k, seed + 1).Select(DTypes.FloatToBF16).ToArray();
        var bias = withBias ? KernelsReference.Random(n, seed + 2) : null;
        return (x, WeightMatrix.FromHalfBits(wBits, DType.BF16, n, k), wBits, bias);
    }

    /// <summary>The GEMM's blocks of pairs: as many equal blocks (a multiple of the unroll) as <paramref name="maxPairs"/> allows.</summary>
    private static int BlockPairsOf(int k, int maxPairs)
    {
        int pairs = (k + 1) / 2, blocks = (pairs + maxPairs - 1) / maxPairs, unroll = Bf16TileKernel.Unroll;
        return ((pairs + blocks - 1) / blocks + unroll - 1) / unroll * unroll;
    }

    /// <summary>
    /// The widened tiles' arithmetic, one output at a time in float32: inputs rounded to bfloat16
    /// (nearest even), per block of pairs s = fma(odd, odd, s) then fma(even, even, s) from 0, and the
    /// block's s added to the bias (first block; nothing without one) or to the result so far.
    /// </summary>
    private static float[] ScalarModel(float[] x, int m, ushort[] w, int n, int k, float[]? bias, int blockPairs)
    {
        int pairs = (k + 1) / 2;
        float A(int i, int kk) => kk < k ? DTypes.BF16ToFloat(DTypes.FloatToBF16(x[i * k + kk])) : 0f;
        float W(int j, int kk) => kk < k ? DTypes.BF16ToFloat(w[j * k + kk]) : 0f;
        var y = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float result = 0;
                for (int p0 = 0; p0 < pairs; p0 += blockPairs)
                {
                    float s = 0;
                    for (int p = p0; p < Math.Min(p0 + blockPairs, pairs); p++)
                    {
                        s = MathF.FusedMultiplyAdd(A(i, 2 * p + 1), W(j, 2 * p + 1), s);
                        s = MathF.FusedMultiplyAdd(A(i, 2 * p), W(j, 2 * p), s);
                    }
                    result = p0 == 0 ? (bias != null ? s + bias[j] : s) : result + s;
                }
                y[i * n + j] = result;
            }
        return y;
    }
}
