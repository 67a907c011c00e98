using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class EgoSchemaTaskTests
{
    private static readonly EgoSchemaSubsetTask Subset = new();
    private static readonly string[] Letters = ["A", "B", "C", "D", "E"];

    private static EvalSample Sample(string id = "q-001") => new()
    {
        Id = id, Video = "videos/v.mp4", Question = "What is the overall goal of c's actions in the video?",
        Options = EgoSchemaMiniData.Options, Gold = "B",
    };

    [Fact]
    public void Subset_loads_the_parquet_with_answer_indices_as_letters_and_finds_upper_case_videos()
    {
        using var data = new MiniData(new EgoSchemaSubsetMini());
        var samples = Subset.Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(["q-001", "q-002", "q-003"], samples.Select(s => s.Id));
        Assert.Equal(["B", "E", "A"], samples.Select(s => s.Gold));
        Assert.Equal(Path.Combine("videos", "ego-video-2.MP4"), samples[1].Video);
        Assert.Equal(EgoSchemaMiniData.Options, samples[0].Options);
        TaskScoring.AssertVideosExist(data.Dir, samples);
    }

    [Fact]
    public void Full_set_loads_without_answers_and_never_counts_correct()
    {
        using var data = new MiniData(new EgoSchemaFullMini());
        var task = new EgoSchemaTask();
        var samples = task.Load(data.Dir);
        Assert.Equal(3, samples.Count);
        Assert.All(samples, s => Assert.Equal("", s.Gold));
        Assert.False(task.IsCorrect("B", samples[0]));
        TaskScoring.AssertVideosExist(data.Dir, samples);

        var submission = EgoSchemaTaskBase.Submission([(samples[0], "B"), (samples[1], null), (samples[2], "E")]);
        Assert.Equal("""{"ego-video-1":1,"ego-video-2":-1,"ego-video-3":4}""", submission.ToJsonString());
    }

    [Fact]
    public void Prompt_is_the_reference_template()
    {
        Assert.Equal(
            "Select the best answer to the following multiple-choice question based on the video.\n"
            + "What is the overall goal of c's actions in the video?\nOptions:\n"
            + "A. c cleans the kitchen\nB. c cooks a meal\nC. c repairs a bicycle\nD. c paints a wall\nE. c reads a book\n"
            + "Answer with the option's letter from the given choices directly.",
            Subset.Prompt(Sample()));
    }

    // "?" marks the reference's random pick when nothing names an option (a stable pick per sample id here).
    [Theory]
    [InlineData("B", "B")]
    [InlineData("(B) c cooks a meal", "B")]
    [InlineData("The answer is C.", "C")]
    [InlineData("Answer: (C)", "C")]
    [InlineData("E", "E")]
    [InlineData("I think the answer is D because c paints", "D")]
    [InlineData("The correct option is B. c cooks a meal", "B")]
    [InlineData("A. c cleans the kitchen, not B.", "A")] // "A." starts before "B ": the earliest mention wins
    [InlineData("(D) c paints a wall. (A) is wrong", "D")]
    [InlineData("a. c cleans the kitchen is what c does here", "A")] // option text, prefix included, in a long answer
    [InlineData("c cooks a meal in the kitchen with friends", "?")] // option text without its "B." prefix is not found
    [InlineData("b", "?")]
    [InlineData("", "?")]
    public void Answer_extraction_follows_the_reference(string output, string expected)
    {
        var sample = Sample();
        var want = expected == "?" ? ChoiceParsing.StableRandomChoice(Letters, sample.Id) : expected;
        Assert.Equal(want, Subset.ExtractAnswer(output, sample));
    }

    [Fact]
    public void Random_fallback_is_stable_per_sample_and_spread_over_the_choices()
    {
        Assert.Equal(Subset.ExtractAnswer("", Sample("x")), Subset.ExtractAnswer("no idea", Sample("x")));
        var picks = Enumerable.Range(0, 200).Select(i => Subset.ExtractAnswer("", Sample("id-" + i)) ?? "none").ToHashSet();
        Assert.Equal(Letters.ToHashSet(), picks);
    }

    [Fact]
    public void Scoring_counts_parsed_letters_against_the_answer_index()
    {
        using var data = new MiniData(new EgoSchemaSubsetMini());
        var samples = Subset.Load(data.Dir);
        var (overall, byCategory) = TaskScoring.Score(Subset, samples, new Dictionary<string, string>
        {
            ["q-001"] = "(B) c cooks a meal", ["q-002"] = "E.", ["q-003"] = "The answer is C.",
        });
        Assert.Equal(200.0 / 3, overall, 9);
        Assert.Empty(byCategory);
    }

    [Fact]
    public void Bad_annotations_are_user_errors_naming_file_and_field()
    {
        var dir = Directory.CreateTempSubdirectory("sf-ego-bad-").FullName;
        try
        {
            var e = Assert.Throws<UserError>(() => Subset.Load(dir));
            Assert.Contains("Subset", e.Message);

            Directory.CreateDirectory(Path.Combine(dir, "Subset"));
            var file = Path.Combine(dir, "Subset", "test.json");
            File.WriteAllText(file, """[{"question_idx": "q", "video_idx": "v", "question": "?", "option": ["A. x", "B. y"], "answer": "0"}]""");
            e = Assert.Throws<UserError>(() => Subset.Load(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains("'option'", e.Message);

            File.WriteAllText(file, """[{"question_idx": "q", "video_idx": "v", "question": "?", "option": ["a", "b", "c", "d", "e"], "answer": "7"}]""");
            Assert.Contains("'answer'", Assert.Throws<UserError>(() => Subset.Load(dir)).Message);

            File.WriteAllText(file, """[{"question_idx": "q", "video_idx": "v", "option": ["a", "b", "c", "d", "e"], "answer": "1"}]""");
            Assert.Contains("'question'", Assert.Throws<UserError>(() => Subset.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
