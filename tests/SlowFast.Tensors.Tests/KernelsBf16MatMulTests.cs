using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// <see cref="MatMulPrecision.BFloat16"/> products (BF16-stored weights) against a double-precision
/// reference that first rounds the inputs to bfloat16 (DTypes.FloatToBF16, PyTorch's rounding). On a
/// CPU without AVX512-BF16 the same calls run in float32, and the tests check that instead.
/// </summary>
[Collection(GemmTunablesCollection.Name)]
public class KernelsBf16MatMulTests
{
    // The products of bfloat16 pairs are exact in float32; only the float32 sums round: error ~ K.
    private static double Tol(int k) => 2e-6 * k + 1e-6;

    public static IEnumerable<object[]> Shapes()
    {
        // Rows: decoding-sized (the rounded-rows path), below, at and past a 6-row tile and a 120-row task;
        // columns: partial 16-lane groups and 64-column strips, more than one 256-column task;
        // features: odd K, K past the 4096 features of one block (two blocks, the last shorter).
        foreach (int m in new[] { 1, 5, 16, 17, 23, 121, 250 })
            foreach (var (n, k) in new[] { (64, 256), (70, 300), (33, 16), (130, 531), (300, 1001), (16, 1), (1, 2), (257, 2), (40, 4501) })
                yield return new object[] { m, n, k };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BFloat16_Linear_matches_rounded_operand_reference(int m, int n, int k)
    {
        var x = KernelsReference.Random(m * k, 1);
        var (w, wValues) = Bf16Weights(KernelsReference.Random(n * k, 2), n, k);
        var b = KernelsReference.Random(n, 3);
        var y = new float[m * n];
        MatMul.Linear(x, m, w, b, y, MatMulPrecision.BFloat16);
        var expected = KernelsReference.Linear(MatMul.BFloat16Supported ? RoundBf16(x) : x, m, wValues, n, k, b);
        KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void With_and_without_bias(bool withBias)
    {
        int m = 40, n = 96, k = 1100;
        var x = KernelsReference.Random(m * k, 4);
        var (w, wValues) = Bf16Weights(KernelsReference.Random(n * k, 5), n, k);
        var b = withBias ? KernelsReference.Random(n, 6) : null;
        var y = new float[m * n];
        Array.Fill(y, float.NaN);   // every output must be written
        MatMul.Linear(x, m, w, b ?? ReadOnlySpan<float>.Empty, y, MatMulPrecision.BFloat16);
        var expected = KernelsReference.Linear(MatMul.BFloat16Supported ? RoundBf16(x) : x, m, wValues, n, k, b);
        KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y");
    }

    [Theory]
    [InlineData(250, 1100, 300, false)]   // 5 bands of 256 columns (the last 76): both panels reused twice
    [InlineData(130, 700, 301, true)]     // 3 bands, odd K, bias, 2 row blocks (the second 10 rows)
    [InlineData(17, 300, 64, false)]      // 2 bands, one row block
    public void Many_bands_with_packing_ahead(int m, int n, int k, bool withBias)
    {
        // Small panels make small shapes take the path of big ones: band b+1 packed into the other panel
        // while band b runs, rows rounded between tasks. Every output must be written exactly.
        long saved = MatMul.BlockedGemm.PanelBytes;
        MatchesReferenceWith(m, n, k, withBias, 21,
            () => MatMul.BlockedGemm.PanelBytes = 1024,   // below one task's columns: each band is NC = 256 columns
            () => MatMul.BlockedGemm.PanelBytes = saved);
    }

    [Theory]
    [InlineData(37, 150, 301, 4, false)]    // 38 blocks of 4 pairs, the last 3 with the odd K's half pair
    [InlineData(130, 90, 1000, 64, true)]   // 8 blocks of 64 pairs, the last 52; bias, two row blocks
    [InlineData(19, 70, 700, 100, false)]   // 350 pairs in 4 equal blocks: 88, 88, 88 and 86
    public void Feature_blocks_add_up(int m, int n, int k, int maxBlockPairs, bool withBias)
    {
        // Long K runs in several feature blocks: the first writes (or adds to the bias in) each output
        // tile, the later ones add to it. Small blocks make small shapes take that path.
        int saved = MatMul.BlockedGemm.MaxBlockPairs;
        MatchesReferenceWith(m, n, k, withBias, 31,
            () => MatMul.BlockedGemm.MaxBlockPairs = maxBlockPairs,
            () => MatMul.BlockedGemm.MaxBlockPairs = saved);
    }

    /// <summary>
    /// One bf16 GEMM with a tuning setting changed for the call (<paramref name="set"/>, then
    /// <paramref name="restore"/>): every output written, and equal to the rounded-operand reference.
    /// </summary>
    private static void MatchesReferenceWith(int m, int n, int k, bool withBias, int seed, Action set, Action restore)
    {
        if (!MatMul.BFloat16Supported) return;   // the float32 path has no bands or feature blocks
        var x = KernelsReference.Random(m * k, seed);
        var (w, wValues) = Bf16Weights(KernelsReference.Random(n * k, seed + 1), n, k);
        var b = withBias ? KernelsReference.Random(n, seed + 2) : null;
        var y = new float[m * n];
        Array.Fill(y, float.NaN);
        set();
        try { MatMul.Linear(x, m, w, b ?? ReadOnlySpan<float>.Empty, y, MatMulPrecision.BFloat16); }
        finally { restore(); }
        var expected = KernelsReference.Linear(RoundBf16(x), m, wValues, n, k, b);
        KernelsReference.AssertClose(expected, y, Tol(k), 1e-5, "y");
    }

    [Theory]
    [InlineData(250, 1100, 300, true, 0, 0)]       // one band, bias
    [InlineData(130, 700, 301, false, 1024, 0)]    // 3 bands of 256 columns read from the packed strips, odd K, no bias
    [InlineData(37, 150, 301, true, 1024, 4)]      // several bands and 38 feature blocks: the bias then C added to
    [InlineData(121, 70, 4501, true, 0, 0)]        // two feature blocks, a partial strip of 6 columns
    public unsafe void Weights_packed_once_give_the_products_of_packing_per_call(int m, int n, int k, bool withBias, long panelBytes, int maxBlockPairs)
    {
        if (!MatMul.BFloat16Supported) return;
        var x = KernelsReference.Random(m * k, 41);
        var (w, wValues) = Bf16Weights(KernelsReference.Random(n * k, 42), n, k);
        var b = withBias ? KernelsReference.Random(n, 43) : null;
        var packed = MatMul.PackForBFloat16(w);
        Assert.True(packed.Bf16Strips != null);
        Assert.True(packed.Data == w.Data);   // the stored weights stay for every other path
        // The fused path reads the same strips: the scaled residual add on top of the packed product.
        var residual = KernelsReference.Random(m * n, 44);
        var residualOnly = KernelsReference.Random(m * n, 44);
        var scale = KernelsReference.Random(n, 45);
        var fusedY = new float[m * n];
        var perCall = new float[m * n];
        var once = new float[m * n];
        Array.Fill(once, float.NaN);
        long savedPanel = MatMul.BlockedGemm.PanelBytes;
        int savedBlock = MatMul.BlockedGemm.MaxBlockPairs;
        try
        {
            if (panelBytes > 0) MatMul.BlockedGemm.PanelBytes = panelBytes;
            if (maxBlockPairs > 0) MatMul.BlockedGemm.MaxBlockPairs = maxBlockPairs;
            MatMul.Linear(x, m, w, b ?? ReadOnlySpan<float>.Empty, perCall, MatMulPrecision.BFloat16);
            MatMul.Linear(x, m, packed, b ?? ReadOnlySpan<float>.Empty, once, MatMulPrecision.BFloat16);
            MatMul.LinearFused(x, m, packed, b ?? ReadOnlySpan<float>.Empty, fusedY, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, residual);
            // Without y the product goes only into the residual, from the task's tile: the same sums.
            MatMul.LinearFused(x, m, packed, b ?? ReadOnlySpan<float>.Empty, Span<float>.Empty, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, residualOnly);
        }
        finally
        {
            MatMul.BlockedGemm.PanelBytes = savedPanel;
            MatMul.BlockedGemm.MaxBlockPairs = savedBlock;
        }
        Assert.Equal(perCall, once);
        KernelsReference.AssertClose(KernelsReference.Linear(RoundBf16(x), m, wValues, n, k, b), once, Tol(k), 1e-5, "y");
        Assert.Equal(once, fusedY);
        var expectedResidual = KernelsReference.Random(m * n, 44);
        for (int i = 0; i < m * n; i++) expectedResidual[i] += once[i] * scale[i % n];
        Assert.Equal(expectedResidual, residual);
        Assert.Equal(expectedResidual, residualOnly);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public unsafe void Each_strip_prefetches_the_strip_computed_after_it(bool widened)
    {
        if (!MatMul.BFloat16Supported) return;
        // 3 row blocks (the last 10 rows: a full-tile call and a rest call) × 3 column blocks (256, 256, 128
        // columns), K in two blocks of pairs: a task runs its strips block by block (both tile arithmetics).
        int m = 250, n = 640, k = 4501;
        var savedTiles = Bf16TileKernel.Tiles;
        Bf16TileKernel.Tiles = widened ? Bf16TileKernel.Arithmetic.WidenedFma : Bf16TileKernel.Arithmetic.DotProduct;
        var x = KernelsReference.Random(m * k, 46);
        var packed = MatMul.PackForBFloat16(Bf16Weights(KernelsReference.Random(n * k, 47), n, k).Matrix);
        nint start = (nint)packed.Bf16Strips, end = start + (nint)((long)n * ((k + 1) / 2) * 4);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(int Task, nint B, nint Prefetch)>();
        var y = new float[m * n];
        MatMul.BlockedGemm.StripObserver = (task, b, prefetch) => { if (b >= start && b < end) seen.Enqueue((task, b, prefetch)); };
        try { MatMul.Linear(x, m, packed, ReadOnlySpan<float>.Empty, y, MatMulPrecision.BFloat16); }
        finally
        {
            MatMul.BlockedGemm.StripObserver = null;
            Bf16TileKernel.Tiles = savedTiles;
        }

        // A task runs on one core, so its strips arrive in the order it computed them.
        var tasks = seen.GroupBy(s => s.Task).OrderBy(g => g.Key).Select(g => g.ToList()).ToList();
        Assert.Equal(9, tasks.Count);
        Assert.Equal([8, 8, 4, 8, 8, 4, 8, 8, 4], tasks.Select(t => t.Count));
        for (int t = 0; t < tasks.Count; t++)
            for (int i = 0; i < tasks[t].Count; i++)
            {
                // The next strip of the task, then the first of the next task; the band's last strip: itself (in cache).
                nint expected = i + 1 < tasks[t].Count ? tasks[t][i + 1].B : t + 1 < tasks.Count ? tasks[t + 1][0].B : tasks[t][i].B;
                Assert.True(expected == tasks[t][i].Prefetch, $"task {t}, strip call {i}: prefetched {tasks[t][i].Prefetch - start}, computed next {expected - start}");
            }
    }

    [Fact]
    public unsafe void Only_BF16_weights_are_packed_for_the_bfloat16_gemm()
    {
        var f32 = WeightMatrix.FromFloats(new float[64], 8, 8);
        var e = Assert.Throws<ArgumentException>(() => MatMul.PackForBFloat16(f32));
        Assert.Contains("only BF16 weights", e.Message);
        var bf16 = Bf16Weights(KernelsReference.Random(64, 46), 8, 8).Matrix;
        var packed = MatMul.PackForBFloat16(bf16);
        Assert.True(MatMul.PackForBFloat16(packed).Bf16Strips == packed.Bf16Strips);   // packed once, not again
        Assert.Equal(MatMul.BFloat16Supported, packed.Bf16Strips != null);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    public void F32_and_F16_weights_stay_float32(DType type)
    {
        // Rounding them would throw away precision the checkpoint has: the option leaves them alone.
        int m = 32, n = 40, k = 300;
        var x = KernelsReference.Random(m * k, 9);
        var wf = KernelsReference.Random(n * k, 10);
        var w = type == DType.F32 ? WeightMatrix.FromFloats(wf, n, k)
            : WeightMatrix.FromHalfBits(wf.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray(), DType.F16, n, k);
        var a = new float[m * n];
        var c = new float[m * n];
        MatMul.Linear(x, m, w, ReadOnlySpan<float>.Empty, a);
        MatMul.Linear(x, m, w, ReadOnlySpan<float>.Empty, c, MatMulPrecision.BFloat16);
        Assert.Equal(a, c);
    }

    [Fact]
    public void Inputs_round_to_nearest_even_like_PyTorch()
    {
        // y = x · I: each output is one input rounded to bfloat16, exactly (products by 1, sums with 0).
        // (No NaN here: NaN · 0 would spread it over the whole row.)
        int m = 16, n = 32;
        float[] specials =
        {
            1f, -1f, 1.00390625f /* tie: 1 + 2^-8 → 1 */, 1.01171875f /* tie: 1 + 3·2^-8 → 1 + 2^-6 */, 3.14159265f,
            1e-3f, -65504.1f, 3.3e38f, 1.0000001f, 0.33333334f, -2.7182817f, 0f, -0f, 255.5f, 7.0e-39f /* denormal */, 2.5e10f,
        };
        var x = new float[m * n];
        for (int i = 0; i < x.Length; i++) x[i] = i < specials.Length ? specials[i] : (float)Math.Sin(i) * (i + 1);
        var identity = new float[n * n];
        for (int i = 0; i < n; i++) identity[i * n + i] = 1f;
        var y = new float[m * n];
        MatMul.Linear(x, m, Bf16Weights(identity, n, n).Matrix, ReadOnlySpan<float>.Empty, y, MatMulPrecision.BFloat16);
        if (!MatMul.BFloat16Supported) { Assert.Equal(x, y); return; }
        for (int i = 0; i < x.Length; i++)
        {
            float expected = DTypes.BF16ToFloat(DTypes.FloatToBF16(x[i]));
            if (Math.Abs(expected) < 1.2e-38f) Assert.Equal(0f, Math.Abs(y[i]));   // vdpbf16ps flushes denormals
            else Assert.True(expected == y[i], $"element {i}: {x[i]:R} should round to {expected:R}, got {y[i]:R}");
        }
    }

    [Fact]
    public void This_machine_class_runs_the_bfloat16_kernel()
    {
        // The project's machines (and CI) have AVX512-BF16; if /proc/cpuinfo says so, the kernel must be in use.
        bool cpuHas = File.Exists("/proc/cpuinfo") && File.ReadAllText("/proc/cpuinfo").Contains(" avx512_bf16");
        bool disabled = Environment.GetEnvironmentVariable("SLOWFAST_NO_JIT") == "1";
        Assert.Equal(cpuHas && !disabled && OperatingSystem.IsLinux(), MatMul.BFloat16Supported);
    }

    private static float[] RoundBf16(float[] v) => v.Select(f => DTypes.BF16ToFloat(DTypes.FloatToBF16(f))).ToArray();

    /// <summary>BF16-stored weights made from <paramref name="values"/>, and what they hold as float32.</summary>
    [Theory]
    [InlineData(250, 70, 300, 2048, 1 << 23)]   // partial 6-row tile, a masked 16-column group, one block of features
    [InlineData(130, 200, 301, 48, 1 << 23)]    // odd K in four blocks: the earlier blocks' sums kept in the tile
    [InlineData(37, 330, 128, 16, 1024)]        // two bands (256 and 74 columns: a strip of 64, one of 10), several blocks
    public void A_product_only_added_into_the_residual_equals_writing_y_then_adding_it(int m, int n, int k, int blockPairs, long panelBytes)
    {
        // fc2 as the tower runs it: y never written out, only added into the residual (layer scale, then the
        // add) from the task's tile, after all blocks of features; the same as y written and added separately.
        var x = KernelsReference.Random(m * k, 61);
        var (w, _) = Bf16Weights(KernelsReference.Random(n * k, 62), n, k);
        var bias = KernelsReference.Random(n, 63);
        var scale = KernelsReference.Random(n, 64);
        var y = new float[m * n];
        var expected = KernelsReference.Random(m * n, 65);
        var residual = (float[])expected.Clone();
        var withY = (float[])expected.Clone();
        MatMul.BlockedGemm.MaxBlockPairs = blockPairs;
        MatMul.BlockedGemm.PanelBytes = panelBytes;
        try
        {
            MatMul.Linear(x, m, w, bias, y, MatMulPrecision.BFloat16);
            for (int i = 0; i < expected.Length; i++) expected[i] += y[i] * scale[i % n];
            if (!MatMul.CanFuse(w, m, MatMulPrecision.BFloat16)) return;
            MatMul.LinearFused(x, m, w, bias, Span<float>.Empty, MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, residual);
            MatMul.LinearFused(x, m, w, bias, new float[m * n], MatMulPrecision.BFloat16, new LinearFusion { ResidualScale = scale }, withY);
        }
        finally
        {
            MatMul.BlockedGemm.MaxBlockPairs = 2048;
            MatMul.BlockedGemm.PanelBytes = 8 << 20;
        }
        Assert.Equal(expected, withY);
        Assert.Equal(expected, residual);
        Assert.Throws<ArgumentException>(() => MatMul.LinearFused(x, m, w, bias, Span<float>.Empty, MatMulPrecision.BFloat16,
            new LinearFusion { Gelu = true, ResidualScale = scale }, residual));   // GELU needs y: not dropped silently
    }

    private static (WeightMatrix Matrix, float[] Values) Bf16Weights(float[] values, int n, int k) =>
        (WeightMatrix.FromHalfBits(values.Select(DTypes.FloatToBF16).ToArray(), DType.BF16, n, k), RoundBf16(values));
}
