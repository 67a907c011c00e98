using SlowFast.Model.Decoder;

namespace SlowFast.Model.Tests;

/// <summary>
/// The compute-cost formulas against the multiply-adds and additions the scalar reference
/// implementations perform, counted one by one in their loops (<see cref="OpCounter"/>) on tiny shapes.
/// </summary>
public class ComputeCostTests
{
    public static TheoryData<string[], int> Decoders() => new()
    {
        { new[] { "vocab_size=400" }, 5 },                                         // text-only, hybrid layers 0 and 2
        { new[] { "vocab_size=400", "cross_attn_implementation=vanilla" }, 3 },    // every row cross-attends
        { new[] { "vocab_size=400", "cross_attn_implementation=text-only-vanilla-masksystem", "cross_attn_every_n_layers=1" }, 4 },
        { new[] { "vocab_size=400", "tie_word_embeddings=true", "fast_token_temporal_stride=1" }, 2 },
    };

    /// <summary>A prompt of 3 text rows, the visual rows, then 5 text rows, with random embeddings.</summary>
    private static (float[] Embeddings, int[] Types) Prompt(int hidden, int visual, int extraTextRows = 0)
    {
        var types = Enumerable.Repeat(TokenTypes.UserText, 3).Concat(Enumerable.Repeat(TokenTypes.Visual, visual))
            .Concat(Enumerable.Repeat(TokenTypes.UserText, 5 + extraTextRows)).ToArray();
        return (TestData.Normal(types.Length * hidden, 5, 0.5f), types);
    }

    [Theory]
    [MemberData(nameof(Decoders))]
    public void Llm_parts_match_the_multiply_adds_of_the_scalar_decoder(string[] overrides, int frames)
    {
        using var model = ModelDirectory.Open(TinyCheckpoints.Get(3, overrides));
        var c = model.Config;
        var cost = ComputeCost.For(c, frames, VisualDesign.SlowFast, new PromptText(8, 3));
        var plan = cost.Plan;
        Assert.Equal(8 + plan.FastTokens, cost.Positions);
        var (embeddings, types) = Prompt(c.HiddenSize, plan.FastTokens);
        var slow = TestData.Normal(plan.SlowTokens * c.HiddenSize, 6, 0.5f);
        var reference = new DecoderScalarReference(model);

        reference.Forward(embeddings, types, slow, plan.SlowTokens);
        var counted = new Dictionary<string, long>(reference.Counted);
        int p = types.Length;
        // The scalar reference computes lm_head for every row; the prefill counts the last one.
        Assert.Equal(2.0 * (counted["layers"] + counted["lm_head"] / p), cost.Part(ComputeCost.Prefill).Flops);
        Assert.Equal(2.0 * counted["slow kv"], cost.Part(ComputeCost.SlowKeyValues).Flops);
        Assert.Equal(2.0 * counted["cross"], cost.Part(ComputeCost.CrossAttention).Flops);
        Assert.True(counted["cross"] > 0 && counted["slow kv"] > 0);

        // One decoding step = the layers of a forward over P + 1 rows minus those over P rows, plus lm_head for one row.
        var (longer, longerTypes) = Prompt(c.HiddenSize, plan.FastTokens, extraTextRows: 1);
        reference.Forward(longer, longerTypes, null, 0);
        long layersLonger = reference.Counted["layers"];
        reference.Forward(embeddings, types, null, 0);
        Assert.Equal(2.0 * (layersLonger - reference.Counted["layers"] + counted["lm_head"] / p), cost.Part(ComputeCost.DecodeStep).Flops);
    }

    [Fact]
    public void Baseline_prefill_matches_the_scalar_decoder_with_every_frame_in_the_sequence()
    {
        using var model = ModelDirectory.Open(TinyCheckpoints.Get(3, TinyCheckpoints.SmallVocab));
        var c = model.Config;
        var cost = ComputeCost.For(c, 5, VisualDesign.Baseline, new PromptText(8, 3));
        Assert.Equal(8 + cost.Plan.SlowTokens, cost.Positions);
        Assert.Equal(0, cost.Part(ComputeCost.SlowKeyValues).Flops);
        Assert.Equal(0, cost.Part(ComputeCost.CrossAttention).Flops);
        var (embeddings, types) = Prompt(c.HiddenSize, cost.Plan.SlowTokens);
        var reference = new DecoderScalarReference(model);
        reference.Forward(embeddings, types, null, 0);
        Assert.Equal(2.0 * (reference.Counted["layers"] + reference.Counted["lm_head"] / types.Length), cost.Part(ComputeCost.Prefill).Flops);
    }

    public static TheoryData<string[], int> Visions() => new()
    {
        { Array.Empty<string>(), 5 },                                  // adaptive temporal pooling 5 -> 2 frames
        { new[] { "fast_token_spatial_stride=2", "fast_token_temporal_sampling_stride=2", "min_fast_frames=1" }, 9 },
        { new[] { "mm_projector_type=mlp3x_gelu" }, 1 },               // an image: no video pooling
        { new[] { "fast_token_spatial_stride=2" }, 1 },                // an image with spatially pooled fast tokens
    };

    [Theory]
    [MemberData(nameof(Visions))]
    public void Vision_projector_and_pooling_match_the_scalar_reference(string[] overrides, int frames)
    {
        using var model = ModelDirectory.Open(TinyCheckpoints.Get(4, [.. TinyCheckpoints.SmallVocab, .. overrides]));
        var c = model.Config;
        var cost = ComputeCost.For(c, frames);

        OpCounter.Reset();
        VisionScalarReference.Tower(model, TestData.Normal(3 * c.Vision.ImageSize * c.Vision.ImageSize, 8, 1f));
        Assert.Equal(2.0 * OpCounter.MultiplyAdds * frames, cost.Part(ComputeCost.VisionTower).Flops);

        int rows = frames * c.Vision.TokensPerFrame;
        OpCounter.Reset();
        var projected = VisionScalarReference.Project(model, TestData.Normal(rows * c.Vision.HiddenSize, 9, 1f), rows);
        Assert.Equal(2.0 * OpCounter.MultiplyAdds, cost.Part(ComputeCost.Projector).Flops);

        OpCounter.Reset();
        VisionScalarReference.SlowFast(c, projected, frames, c.Vision.TokensPerSide, c.HiddenSize);
        Assert.Equal((double)OpCounter.Additions, cost.Part(ComputeCost.Pooling).Flops);
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("small")]
    [InlineData("7b")]
    public void Weight_bytes_are_the_checkpoint_tensors_each_part_reads(string preset)
    {
        var c = Presets.Get(preset);
        var specs = CheckpointLayout.For(c);
        double Sum(Func<WeightSpec, bool> which) => specs.Where(which).Sum(s => (double)s.ElementCount);
        var cost = ComputeCost.For(c, 16, weightBytesPerElement: 2);
        double h = c.HiddenSize, embedding = (double)c.VocabSize * h;

        double tower = Sum(s => s.Part == ModelPart.VisionTower && !s.Name.Contains(".head.", StringComparison.Ordinal));
        Assert.Equal(2 * tower, cost.Part(ComputeCost.VisionTower).WeightBytes);
        Assert.Equal(2 * Sum(s => s.Part == ModelPart.Projector), cost.Part(ComputeCost.Projector).WeightBytes);
        // A decoding step reads every decoder weight, lm_head (the embedding matrix when tied) and one embedding row.
        double llm = Sum(s => s.Part == ModelPart.Llm);
        Assert.Equal(2 * (llm - (c.TieWordEmbeddings ? 0 : embedding) + h), cost.Part(ComputeCost.DecodeStep).WeightBytes);
        // The hybrid additions, plus each hybrid layer's input norm applied to the slow tokens.
        Assert.Equal(2 * (Sum(s => s.Part == ModelPart.HybridCrossAttention) + c.HybridLayers.Count * h),
            cost.Part(ComputeCost.SlowKeyValues).WeightBytes + cost.Part(ComputeCost.CrossAttention).WeightBytes);
    }

    [Fact]
    public void The_released_strides_keep_the_sequence_of_the_16_frame_baseline()
    {
        // s1t4 at 64, s1t6 at 96 and s2t4 at 128 frames all put 16 fast frames in the sequence, as many
        // positions as the baseline's 16 frames: the extra LLM work is the slow tokens' K/V and cross-attention.
        var baseline = ComputeCost.For(Presets.SevenB(), 16, VisualDesign.Baseline);
        foreach (var (frames, sampling, temporal) in new[] { (64, 1, 4), (96, 1, 6), (128, 2, 4) })
        {
            var c = Presets.SevenB();
            c.FastTokenTemporalSamplingStride = sampling;
            c.FastTokenTemporalStride = temporal;
            var cost = ComputeCost.For(c, frames);
            Assert.Equal(baseline.Positions, cost.Positions);
            Assert.Equal(baseline.Part(ComputeCost.Prefill).Flops, cost.Part(ComputeCost.Prefill).Flops);
            Assert.Equal(frames * 81L, cost.CrossAttendedTokens);
            Assert.InRange(cost.LlmPrefillFlops / baseline.LlmPrefillFlops, 1.001, 1.05);
        }
    }

    [Fact]
    public void A_prompt_with_more_text_before_the_video_than_in_all_is_refused()
    {
        Assert.Throws<UserError>(() => ComputeCost.For(Presets.Tiny(), 4, prompt: new PromptText(3, 5)));
    }
}

/// <summary>The memory estimate that refuses an over-long video before any work.</summary>
public class MemoryEstimateTests
{
    [Fact]
    public void The_estimate_counts_the_tokens_their_keys_and_values_and_the_kv_cache()
    {
        var c = Presets.SevenB();
        var e = MemoryEstimate.For(c, 1536, textTokens: 26, answerTokens: 0);
        var plan = VisualTokenPlan.For(c, 1536);
        Assert.Equal((plan.SlowTokens + plan.FastTokens) * 3584L * 4, e.VisualTokens);
        Assert.Equal(4L * plan.SlowTokens * 2 * 512 * 4, e.SlowKeyValues);          // 4 hybrid layers, 4 KV heads of 128
        Assert.Equal(28L * (26 + plan.FastTokens) * 2 * 512 * 4, e.KvCache);
        var baseline = MemoryEstimate.For(c, 1536, VisualDesign.Baseline, textTokens: 26, answerTokens: 0);
        Assert.Equal(0, baseline.SlowKeyValues);
        Assert.Equal(28L * (26 + plan.SlowTokens) * 2 * 512 * 4, baseline.KvCache); // every frame's tokens in the sequence
    }

    [Fact]
    public void Int8_mlps_count_a_byte_an_element_instead_of_the_bf16_packed_two()
    {
        // ConvNeXt-XXL's blocks' fc1/fc2: 8·C² elements a block, depths 3/4/30/3 at C = 384/768/1536/3072.
        var c = Presets.SevenB();
        long mlpElements = 0;
        for (int s = 0; s < 4; s++) mlpElements += c.Vision.Depths[s] * 8L * c.Vision.Dims[s] * c.Vision.Dims[s];
        var bf16 = MemoryEstimate.For(c, 64);
        var int8 = MemoryEstimate.For(c, 64, visionInt8: true);
        Assert.Equal(mlpElements, bf16.Vision - int8.Vision);
        Assert.Equal(bf16.Total - int8.Total, bf16.Vision - int8.Vision);
    }

    [Fact]
    public void A_model_counts_the_tower_matrices_it_has_yet_to_make_and_not_those_it_holds()
    {
        // The estimate takes the tower's matrices as that tower will make them for the engine's arithmetic
        // (packed bf16, int8 MLPs, or nothing in float32), and not at all once made: they are then part of
        // what the process holds, which the available memory already leaves out.
        string dir = TinyCheckpoints.Get("tiny", 5, SlowFast.Tensors.DType.BF16);   // BF16 matrices: packed for bf16 arithmetic
        using var model = SlowFastModel.Load(dir);
        int[] ids = [1, 2, 3];
        var precision = model.Engine.Options.DefaultPrecision;
        long toMake = model.Vision.Tower.MatrixBytesToPrepare(precision);
        Assert.Equal(SlowFast.Tensors.Kernels.MatMul.BFloat16Supported, toMake > 0);
        long exact = MemoryEstimate.For(model.Config, 8, textTokens: 3, towerMatrixBytes: toMake).Total;
        model.CheckMemory(ids, 8, available: exact);
        Assert.Throws<UserError>(() => model.CheckMemory(ids, 8, available: exact - 1));
        Assert.Equal(0, model.Vision.Tower.MatrixBytesToPrepare(SlowFast.Tensors.Kernels.MatMulPrecision.Float32));
        model.CheckMemory(ids, 8, available: exact - toMake, precision: SlowFast.Tensors.Kernels.MatMulPrecision.Float32);

        model.PrepareVision();
        Assert.Equal(0, model.Vision.Tower.MatrixBytesToPrepare(precision));
        model.CheckMemory(ids, 8, available: exact - toMake);

        // Int8 MLPs (with AVX512-VNNI) count a byte an element where the packed bf16 copy counts two.
        using var int8 = SlowFastModel.Load(dir, engine: new Engine.EngineOptions { VisionInt8 = true });
        long int8ToMake = int8.Vision.Tower.MatrixBytesToPrepare(precision);
        if (SlowFast.Tensors.Kernels.MatMul.Int8ChannelsSupported && SlowFast.Tensors.Kernels.MatMul.BFloat16Supported) Assert.True(int8ToMake < toMake);
        long int8Exact = MemoryEstimate.For(int8.Config, 8, textTokens: 3, towerMatrixBytes: int8ToMake).Total;
        int8.CheckMemory(ids, 8, available: int8Exact);
        Assert.Throws<UserError>(() => int8.CheckMemory(ids, 8, available: int8Exact - 1));
    }

    [Fact]
    public void A_request_over_the_available_memory_is_refused_with_the_estimate()
    {
        var e = MemoryEstimate.For(Presets.SevenB(), 1536);
        e.Check(1536, "ask", available: e.Total);
        var error = Assert.Throws<UserError>(() => e.Check(1536, "ask", available: e.Total - 1));
        Assert.Contains("1536 frames need about", error.Message);
        Assert.Contains("use fewer frames", error.Message);
    }
}
