using SlowFast.Model.Engine;
using SlowFast.Tensors.Kernels;
using SlowFast.Model.Generation;

namespace SlowFast.Model.Tests;

/// <summary>The library API end to end: pixels → vision → prompt → decoder, against the golden fixtures.</summary>
public class ModelTests
{
    /// <summary>A spread of cases for the whole pipeline (every case is checked decoder-only in DecoderGoldenTests).</summary>
    public static TheoryData<string> PipelineCases() =>
        new(new[] { "image_released", "video5_released", "video7_adaptive", "video4_bf16", "video3_masksystem", "text_only", "video5_baseline", "image_baseline", "video4_q4" }
            .Where(n => GoldenCase.Names().Contains(n)));

    [Theory]
    [MemberData(nameof(PipelineCases))]
    public void Pixels_to_logits_and_answer_match_the_reference(string name)
    {
        var g = GoldenCase.Open(name);
        string root = Path.Combine(Path.GetTempPath(), $"slowfast-model-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            // The fixtures hold float32 arithmetic (the engine's default is bf16 where the CPU has it).
            using var model = SlowFastModel.Load(g.CreateCheckpoint(root), engine: new EngineOptions { DefaultPrecision = MatMulPrecision.Float32 });
            var question = g.Meta.GetProperty("question").GetString()!;
            var ids = model.QuestionPrompt(question, g.HasVisual);
            Assert.Equal(g.Ints("input_ids"), ids); // template + tokenizer give the reference's prompt

            Vision.VisualTokens? video = null;
            if (g.HasVisual)
            {
                var pixels = g.Floats("pixel_values");
                video = model.EncodeVideo(pixels, g.Frames);
                Assert.True(TestData.MaxAbsDiff(video.Fast, g.Floats("fast_tokens")) < 1e-4);
                Assert.True(TestData.MaxAbsDiff(video.Slow, g.Floats("slow_tokens")) < 1e-4);
                video = video.ForDesign(g.Design);
            }

            var forward = model.Forward(ids, video);
            Assert.Equal(g.Ints("token_types"), forward.TokenTypes);
            double err = g.CompareLogits(forward.Logits, forward.Vocab);
            Assert.True(err < DecoderGoldenTests.LogitTolerance, $"{name}: max abs logit error {err}");

            var expected = g.Ints("generated_ids");
            var pieces = new List<string>();
            var chat = model.StartConversation(video);
            var answer = chat.Ask(question, new GenerationOptions { MaxNewTokens = expected.Length, StopAtEndTokens = false }, pieces.Add);
            Assert.Equal(expected, answer.TokenIds);
            Assert.Equal(model.Tokenizer.Decode(expected, skipSpecialTokens: true), answer.Text);
            Assert.Equal(answer.Text, string.Concat(pieces));
        }
        finally
        {
            g.Close();
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void A_second_turn_reuses_the_video_and_puts_the_placeholder_only_in_the_first_message()
    {
        using var model = SlowFastModel.Load(TinyCheckpoints.Get(5));
        var pixels = TestData.Normal(3 * 3 * 128 * 128, 1);
        var video = model.EncodeVideo(pixels, 3);
        var chat = model.StartConversation(video);
        var options = new GenerationOptions { MaxNewTokens = 3, StopAtEndTokens = false };
        var first = chat.Ask("What is it?", options);
        var second = chat.Ask("Why?", options);
        Assert.Equal(4, chat.Messages.Count);
        Assert.StartsWith("<image>\n", chat.Messages[0].Text);
        Assert.Equal("Why?", chat.Messages[2].Text);
        Assert.Equal(first.Text, chat.Messages[1].Text);
        Assert.True(second.PromptPositions > first.PromptPositions + 3);
    }

    [Fact]
    public async Task Streaming_yields_the_answer_and_cancellation_stops_generation()
    {
        using var model = SlowFastModel.Load(TinyCheckpoints.Get(5));
        var options = new GenerationOptions { MaxNewTokens = 6, StopAtEndTokens = false };
        var pieces = new List<string>();
        await foreach (var piece in model.StartConversation().AskStreamingAsync("Hello", options)) pieces.Add(piece);
        var direct = model.StartConversation().Ask("Hello", options);
        Assert.Equal(direct.Text, string.Concat(pieces));

        // Cancel from the streaming callback after the first piece: the next token check throws.
        using var cts = new CancellationTokenSource();
        int calls = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => model.StartConversation().Ask("Hello", options with { MaxNewTokens = 50 },
            _ => { calls++; cts.Cancel(); }, cancellation: cts.Token));
        Assert.Equal(1, calls);
    }

    [Fact]
    public void A_concurrent_request_waits_for_the_first()
    {
        using var model = SlowFastModel.Load(TinyCheckpoints.Get(5));
        var options = new GenerationOptions { MaxNewTokens = 4, StopAtEndTokens = false };
        var expected = model.StartConversation().Ask("Hi", options).TokenIds;
        var results = Enumerable.Range(0, 4).AsParallel().WithDegreeOfParallelism(4)
            .Select(_ => model.StartConversation().Ask("Hi", options).TokenIds).ToList();
        Assert.All(results, r => Assert.Equal(expected, r));
    }

    [Fact]
    public void Context_overflow_is_refused_before_vision_or_decoding()
    {
        using var model = SlowFastModel.Load(TinyCheckpoints.Get(5, "tokenizer_model_max_length=45"));
        var ids = model.QuestionPrompt("What happens in this long video?", withVisual: true);
        var e = Assert.Throws<UserError>(() => model.CheckPromptFits(ids, 64, "ask"));
        Assert.Contains("the model's context is 45", e.Message);
        model.CheckPromptFits(ids, 1, "ask"); // an image fits
    }

    [Fact]
    public void A_checkpoint_missing_a_projector_or_tower_weight_is_refused_with_its_name()
    {
        string dir = TinyCheckpoints.Copy(TinyCheckpoints.Get(5, TinyCheckpoints.SmallVocab));
        // The config now calls for a third projector layer and a deeper last tower stage the file does not have.
        string configPath = Path.Combine(dir, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"mlp2x_gelu\"", "\"mlp3x_gelu\""));
        var e = Assert.Throws<UserError>(() => SlowFastModel.Load(dir));
        Assert.Contains("missing tensor 'model.mm_projector.4.weight' (projector)", e.Message);

        string dir2 = TinyCheckpoints.Copy(TinyCheckpoints.Get(5, TinyCheckpoints.SmallVocab));
        var config = SlowFastConfig.Load(dir2);
        config.Vision.Depths[3] = 2;
        File.WriteAllText(Path.Combine(dir2, "config.json"), config.ToJson());
        var e2 = Assert.Throws<UserError>(() => SlowFastModel.Load(dir2));
        Assert.Contains("missing tensor 'model.vision_tower.vision_tower.stages.3.blocks.1.", e2.Message);
        Assert.Contains("(vision tower)", e2.Message);
    }
}
