using SlowFast.Model.Vision;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;
using static SlowFast.Model.Tests.VisionTestSupport;

namespace SlowFast.Model.Tests;

/// <summary>The ConvNeXt tower against the scalar channels-first reference in VisionScalarReference.</summary>
public class VisionTowerTests
{
    /// <summary>A small vocabulary keeps these checkpoints quick to make; the vision weights do not depend on it.</summary>
    internal const string SmallVocab = "vocab_size=512";

    // Custom tower: odd channel counts (scalar tails in every kernel), 3 stages, 5×5 kernels, patch 2.
    internal const string OddTower = """vision_config={"architecture":"convnext","depths":[2,1,1],"dims":[12,20,36],"image_size":40,"patch_size":2,"kernel_size":5,"norm_eps":1e-6,"num_classes":0}""";

    [Theory]
    [InlineData("tiny")]
    [InlineData("odd")]
    public void Tower_matches_scalar_reference(string which)
    {
        string dir = which == "tiny" ? Checkpoint(overrides: [SmallVocab]) : Checkpoint(overrides: [SmallVocab, OddTower, "mm_hidden_size=36"]);
        using var model = ModelDirectory.Open(dir);
        var tower = new ConvNextTower(model);
        int s = model.Config.Vision.ImageSize;
        var pixels = RandomFloats(3 * s * s, seed: 7, scale: 2f);

        var tokens = new float[tower.TokensPerFrame * tower.Channels];
        tower.EncodeFrame(pixels, tokens);

        var expected = VisionScalarReference.Tower(model, pixels);
        Assert.Equal(model.Config.Vision.TokensPerFrame * model.Config.Vision.Dims[^1], expected.Length);
        Assert.True(MaxAbs(expected) > 0.1, "reference output is degenerate");
        AssertClose(expected, tokens, 1e-4 * Math.Max(1, MaxAbs(expected)), "tower tokens");
    }

    [Fact]
    public void Batch_of_frames_equals_frames_one_by_one_and_reports_progress()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [SmallVocab]));
        var tower = new ConvNextTower(model);
        int frame = tower.FrameFloats, perFrame = tower.TokensPerFrame * tower.Channels;
        var pixels = RandomFloats(3 * frame, seed: 11);
        var all = new float[3 * perFrame];
        var reports = new List<int>();
        tower.EncodeFrames(pixels, 3, all, new SyncProgress(reports));
        Assert.Equal([1, 2, 3], reports);

        var one = new float[perFrame];
        for (int f = 0; f < 3; f++)
        {
            tower.EncodeFrame(pixels.AsSpan(f * frame, frame), one);
            Assert.Equal(one, all.AsSpan(f * perFrame, perFrame).ToArray());
        }
        // Frames differ, so their tokens differ (a tower that ignored its input would pass the above).
        Assert.NotEqual(all.AsSpan(0, perFrame).ToArray(), all.AsSpan(perFrame, perFrame).ToArray());
    }

    [Theory]
    [InlineData(4 * 48 * 7)]  // 7 rows at the last stage, more at earlier ones: chunks evened out
    [InlineData(1)]           // one pixel row at a time (the few-row matrix product path)
    public void Mlp_in_row_chunks_gives_the_same_tokens(int hiddenFloats)
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [SmallVocab]));
        var tower = new ConvNextTower(model);
        var pixels = RandomFloats(tower.FrameFloats, seed: 21, scale: 2f);
        var whole = new float[tower.TokensPerFrame * tower.Channels];
        tower.EncodeFrame(pixels, whole);

        tower.MlpHiddenFloats = hiddenFloats;
        tower.MinMlpRows = 1;
        var chunked = new float[whole.Length];
        tower.EncodeFrame(pixels, chunked);
        AssertClose(whole, chunked, 1e-5 * Math.Max(1, MaxAbs(whole)), "chunked MLP");
    }

    [Theory]
    [InlineData(false, 2)]   // groups of 2 and 1 frames
    [InlineData(true, 2)]
    [InlineData(true, 3)]    // one group of all 3
    public void Last_stage_on_several_frames_at_once_equals_frame_by_frame(bool bf16, int lastStageFrames)
    {
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [SmallVocab]));
        var tower = new ConvNextTower(model) { Precision = bf16 ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32, LastStageFrames = lastStageFrames };
        int frame = tower.FrameFloats, perFrame = tower.TokensPerFrame * tower.Channels;
        var pixels = RandomFloats(3 * frame, seed: 17, scale: 2f);
        var grouped = new float[3 * perFrame];
        var reports = new List<int>();
        tower.EncodeFrames(pixels, 3, grouped, new SyncProgress(reports));
        Assert.Equal([1, 2, 3], reports);
        var expected = new float[3 * perFrame];
        for (int f = 0; f < 3; f++) tower.EncodeFrame(pixels.AsSpan(f * frame, frame), expected.AsSpan(f * perFrame, perFrame));
        // More rows may take another product kernel (in bf16: the GEMM instead of the row kernel),
        // which sums in another order: equal up to float32 rounding.
        AssertClose(expected, grouped, 1e-5 * Math.Max(1, MaxAbs(expected)), "grouped last stage");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fused_row_work_gives_the_same_tokens_bit_for_bit(bool bf16)
    {
        // LayerNorm inside the depthwise conv and layer scale + residual inside fc2's bf16 product
        // do the same float32 operations as the separate passes.
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [SmallVocab]));
        var tower = new ConvNextTower(model) { Precision = bf16 ? MatMulPrecision.BFloat16 : MatMulPrecision.Float32 };
        var pixels = RandomFloats(tower.FrameFloats, seed: 31, scale: 2f);
        var fused = new float[tower.TokensPerFrame * tower.Channels];
        var profile = new TowerProfile();
        tower.Profile = profile;
        tower.EncodeFrame(pixels, fused);
        tower.Profile = null;
        tower.FuseRowWork = false;
        var separate = new float[fused.Length];
        tower.EncodeFrame(pixels, separate);
        Assert.Equal(separate, fused);
        bool ranFused = profile.Entries.Any(e => e.Op == TowerProfile.Fc2Fused);
        Assert.Equal(bf16 && MatMul.BFloat16Supported, ranFused);
        // ... and fc1 handed its GELU-ed output to fc2 as bfloat16 rows.
        Assert.Equal(bf16 && MatMul.BFloat16Supported, profile.Entries.Any(e => e.Op == TowerProfile.Fc1GeluBf16));
    }

    [Fact]
    public void Packing_time_is_counted_once_at_the_first_bfloat16_frame()
    {
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [SmallVocab]));
        var tower = new ConvNextTower(model) { Precision = MatMulPrecision.BFloat16 };
        var pixels = RandomFloats(tower.FrameFloats, seed: 41);
        var tokens = new float[tower.TokensPerFrame * tower.Channels];
        Assert.Equal(TimeSpan.Zero, tower.PackingTime);
        tower.EncodeFrame(pixels, tokens);
        var first = tower.PackingTime;
        Assert.Equal(MatMul.BFloat16Supported, first > TimeSpan.Zero);
        tower.EncodeFrame(pixels, tokens);
        Assert.Equal(first, tower.PackingTime);             // packed once: later frames add nothing
        tower.ReleaseBuffers();
        tower.EncodeFrame(pixels, tokens);
        Assert.Equal(MatMul.BFloat16Supported, tower.PackingTime > first);   // the dropped copy is packed again, and counted

        // Nothing is packed without PackWeights, nor in float32 arithmetic.
        var lean = new ConvNextTower(model) { Precision = MatMulPrecision.BFloat16, PackWeights = false };
        lean.EncodeFrame(pixels, tokens);
        Assert.Equal(TimeSpan.Zero, lean.PackingTime);
        var f32 = new ConvNextTower(model);
        f32.EncodeFrame(pixels, tokens);
        Assert.Equal(TimeSpan.Zero, f32.PackingTime);
    }

    [Fact]
    public void Matrix_bytes_to_prepare_are_what_the_first_frame_makes_and_nothing_once_made()
    {
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [SmallVocab]));
        var weights = ConvNextWeights.Load(model);
        long packed = weights.PreparedBytes(packBf16: true, int8Mlps: false);
        Assert.Equal(MatMul.BFloat16Supported, packed > 0);

        // What Prepared allocates is what PreparedBytes counts, up to the small objects around the arrays
        // (about 3 KB here; the smallest packed matrix, the stem's, is 6 KB).
        weights.Prepared(packBf16: true, int8Mlps: false);   // the packing threads' scratch, made once
        long before = GC.GetAllocatedBytesForCurrentThread();
        weights.Prepared(packBf16: true, int8Mlps: false);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before - packed, 0, 4096);

        var tower = new ConvNextTower(model) { Precision = MatMulPrecision.BFloat16 };
        Assert.Equal(packed, tower.MatrixBytesToPrepare(MatMulPrecision.BFloat16));
        Assert.Equal(0, tower.MatrixBytesToPrepare(MatMulPrecision.Float32));   // float32 reads the checkpoint's matrices
        tower.EncodeFrame(RandomFloats(tower.FrameFloats, seed: 47), new float[tower.TokensPerFrame * tower.Channels]);
        Assert.Equal(0, tower.MatrixBytesToPrepare(MatMulPrecision.BFloat16));   // made once, kept
        tower.ReleaseBuffers();
        Assert.Equal(packed, tower.MatrixBytesToPrepare(MatMulPrecision.BFloat16));
        Assert.Equal(0, new ConvNextTower(model) { PackWeights = false }.MatrixBytesToPrepare(MatMulPrecision.BFloat16));

        // Int8 MLPs: their int8 copies instead of their packed ones (the stem and downsamples still packed).
        var int8 = new ConvNextTower(model) { MlpInt8 = true };
        long int8Bytes = weights.PreparedBytes(packBf16: MatMul.BFloat16Supported, int8Mlps: true);
        Assert.Equal(MatMul.Int8ChannelsSupported ? int8Bytes : packed, int8.MatrixBytesToPrepare(MatMulPrecision.BFloat16));
        Assert.Equal(MatMul.Int8ChannelsSupported ? weights.PreparedBytes(packBf16: false, int8Mlps: true) : 0, int8.MatrixBytesToPrepare(MatMulPrecision.Float32));
        if (MatMul.Int8ChannelsSupported) Assert.True(weights.PreparedBytes(false, true) > 0);
    }

    [Theory]
    [InlineData(MatMulPrecision.Float32)]
    [InlineData(MatMulPrecision.BFloat16)]
    public void Int8_mlps_stay_close_to_the_float_tower(MatMulPrecision precision)
    {
        if (!MatMul.Int8ChannelsSupported) return;
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [SmallVocab]));
        var exact = new ConvNextTower(model);
        var int8 = new ConvNextTower(model) { Precision = precision, MlpInt8 = true, Profile = new TowerProfile() };
        var pixels = RandomFloats(2 * exact.FrameFloats, seed: 43, scale: 2f);
        var reference = new float[2 * exact.TokensPerFrame * exact.Channels];
        var tokens = new float[reference.Length];
        exact.EncodeFrames(pixels, 2, reference);
        int8.EncodeFrames(pixels, 2, tokens);
        double diff = 0, norm = 0;
        for (int i = 0; i < tokens.Length; i++) { diff += Math.Pow(tokens[i] - reference[i], 2); norm += Math.Pow(reference[i], 2); }
        double relative = Math.Sqrt(diff / norm);
        Assert.InRange(relative, 1e-5, 0.05);   // quantized (not the float tower), yet close to it
        var ops = int8.Profile!.Entries.Select(e => e.Op).ToHashSet();
        Assert.Contains(TowerProfile.Fc1GeluInt8, ops);   // GELU and the residual fused into the int8 tiles
        Assert.Contains(TowerProfile.Fc2FusedInt8, ops);
        Assert.DoesNotContain(TowerProfile.Gelu, ops);
        Assert.DoesNotContain(TowerProfile.ScaleResidual, ops);
        Assert.DoesNotContain(TowerProfile.Fc1, ops);
        Assert.DoesNotContain(TowerProfile.Fc1GeluBf16, ops);
        Assert.True(int8.PackingTime > TimeSpan.Zero);   // the int8 copies are made once, and timed

        // The same tower with the row work as separate passes gives the same tokens bit for bit.
        var separate = new ConvNextTower(model) { Precision = precision, MlpInt8 = true, FuseRowWork = false, Profile = new TowerProfile() };
        var separateTokens = new float[tokens.Length];
        separate.EncodeFrames(pixels, 2, separateTokens);
        Assert.Equal(tokens, separateTokens);
        var separateOps = separate.Profile!.Entries.Select(e => e.Op).ToHashSet();
        Assert.Contains(TowerProfile.Fc1Int8, separateOps);
        Assert.Contains(TowerProfile.Gelu, separateOps);
        Assert.Contains(TowerProfile.ScaleResidual, separateOps);

        // Each row's int8 product depends on that row alone (its own scale, exact integer sums), so a
        // frame alone gives the same tokens as the frames together through the last stage.
        int8.Profile = null;
        var alone = new float[exact.TokensPerFrame * exact.Channels];
        int8.EncodeFrame(pixels.AsSpan(exact.FrameFloats, exact.FrameFloats), alone);
        Assert.Equal(tokens.AsSpan(alone.Length).ToArray(), alone);
    }

    [Fact]
    public void Int8_mlp_matrices_are_not_also_packed_for_bf16()
    {
        // Under MlpInt8 fc1 and fc2 never run in bfloat16, so the bf16 packing (as much memory again as
        // the matrices) leaves them out; the stem and the downsamples are still packed.
        using var model = ModelDirectory.Open(Checkpoint(dtype: DType.BF16, overrides: [SmallVocab]));
        var w = ConvNextWeights.Load(model).Prepared(packBf16: true, int8Mlps: true);
        Assert.Equal(MatMul.BFloat16Supported, w.StemConv.IsPackedForBFloat16);
        Assert.Equal(MatMul.BFloat16Supported, w.Stages[1].Downsample!.Conv.IsPackedForBFloat16);
        foreach (var b in w.Stages.SelectMany(s => s.Blocks))
        {
            Assert.False(b.Fc1.IsPackedForBFloat16);
            Assert.False(b.Fc2.IsPackedForBFloat16);
            Assert.NotNull(b.Fc1Int8);
            Assert.NotNull(b.Fc2Int8);
        }
        var packedOnly = ConvNextWeights.Load(model).Prepared(packBf16: true, int8Mlps: false);
        Assert.All(packedOnly.Stages.SelectMany(s => s.Blocks), b => Assert.Equal(MatMul.BFloat16Supported, b.Fc1.IsPackedForBFloat16 && b.Fc1Int8 == null));
    }

    [Fact]
    public void Profile_counts_every_op_of_every_frame()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [SmallVocab]));
        var c = model.Config.Vision;
        var tower = new ConvNextTower(model) { Profile = new TowerProfile() };
        var pixels = RandomFloats(tower.FrameFloats, seed: 5);
        var tokens = new float[tower.TokensPerFrame * tower.Channels];
        tower.EncodeFrame(pixels, tokens);
        tower.EncodeFrame(pixels, tokens);
        var p = tower.Profile;
        Assert.Equal(2, p.Frames);
        Assert.All(p.Entries, e => Assert.True(e.Seconds >= 0));
        int side = c.ImageSize / c.PatchSize;
        for (int s = 0; s < c.Dims.Length; s++)
        {
            if (s > 0) side /= 2;
            long pixelsPerFrame = (long)side * side;
            var fc1 = p.Entries.Single(e => e.Stage == s && e.Op == TowerProfile.Fc1);   // float32: the products are not fused
            Assert.Equal(2.0 * 2 * c.Depths[s] * pixelsPerFrame * c.Dims[s] * 4 * c.Dims[s], fc1.Flops);
            var dw = p.Entries.Single(e => e.Stage == s && e.Op == TowerProfile.DepthwiseNorm);   // the norm is, in any arithmetic
            Assert.Equal(2 * c.Depths[s], dw.Calls);
            Assert.Equal(s > 0, p.Entries.Any(e => e.Stage == s && e.Op == TowerProfile.Downsample));
        }
        Assert.Equal(2, p.Entries.Single(e => e.Op == TowerProfile.Stem).Calls);
    }

    [Fact]
    public void Wrong_frame_size_is_rejected()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [SmallVocab]));
        var tower = new ConvNextTower(model);
        var tokens = new float[tower.TokensPerFrame * tower.Channels];
        Assert.Throws<ArgumentException>(() => tower.EncodeFrame(new float[tower.FrameFloats - 1], tokens));
    }

    [Fact]
    public void Cancellation_stops_encoding()
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [SmallVocab]));
        var tower = new ConvNextTower(model);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var pixels = new float[2 * tower.FrameFloats];
        var tokens = new float[2 * tower.TokensPerFrame * tower.Channels];
        Assert.ThrowsAny<OperationCanceledException>(() => tower.EncodeFrames(pixels, 2, tokens, cancel: cts.Token));
    }

    /// <summary>IProgress that records synchronously (Progress&lt;T&gt; posts asynchronously).</summary>
    internal sealed class SyncProgress(List<int> into) : IProgress<int>
    {
        public void Report(int value) { lock (into) into.Add(value); }
    }
}
