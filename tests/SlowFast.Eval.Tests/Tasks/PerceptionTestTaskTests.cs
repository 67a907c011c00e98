using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class PerceptionTestTaskTests
{
    private static readonly PerceptionTestTask Task = new();

    private static EvalSample Sample(params string[] options) => new()
    {
        Id = "video_10909/0", Video = "videos/video_10909.mp4", Question = "Which object did the person put down first?",
        Options = options.Length > 0 ? options : ["the cup", "the plate", "the spoon"], Gold = "B",
    };

    [Fact]
    public void Loads_questions_keyed_by_video_and_question_id()
    {
        using var data = new MiniData(new PerceptionTestMini());
        var samples = Task.Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(["video_10909/0", "video_10909/1", "video_7012/0"], samples.Select(s => s.Id));
        Assert.Equal(["B", "C", "A"], samples.Select(s => s.Gold));
        Assert.Equal("memory", samples[0].Fields["area"]);
        Assert.Empty(Task.CategoryDimensions);
        TaskScoring.AssertVideosExist(data.Dir, samples);
    }

    [Fact]
    public void Prompt_is_the_reference_template()
    {
        Assert.Equal(
            "Select the best answer to the following multiple-choice question based on the video.\n"
            + "Which object did the person put down first?\nA. the cup\nB. the plate\nC. the spoon\n"
            + "Answer with the option's letter from the given choices directly.",
            Task.Prompt(Sample()));
        // The reference labels every option after the second "C.".
        Assert.EndsWith("\nA. w\nB. x\nC. y\nC. z\nAnswer with the option's letter from the given choices directly.", Task.Prompt(Sample("w", "x", "y", "z")));
    }

    [Theory]
    [InlineData("B", "B")]
    [InlineData("(B) the plate", "B")]
    [InlineData("The answer is C.", "C")]
    [InlineData("Option B.", "B")]
    [InlineData("  C  ", "C")]
    [InlineData("A man picks up the plate", "A")] // the article reads as option A, as in the reference
    [InlineData("D", "D")] // there is no D: wrong
    [InlineData("b", null)]
    [InlineData("AB", null)]
    [InlineData("", null)]
    public void Answer_extraction_follows_the_reference(string output, string? expected) =>
        Assert.Equal(expected, Task.ExtractAnswer(output, Sample()));

    [Fact]
    public void Scoring_is_plain_accuracy()
    {
        using var data = new MiniData(new PerceptionTestMini());
        var samples = Task.Load(data.Dir);
        var (overall, byCategory) = TaskScoring.Score(Task, samples, new Dictionary<string, string>
        {
            ["video_10909/0"] = "A man picks up the plate", ["video_10909/1"] = "C", ["video_7012/0"] = "A",
        });
        Assert.Equal(200.0 / 3, overall, 9);
        Assert.Empty(byCategory);
    }

    [Fact]
    public void Bad_annotations_are_user_errors_naming_file_and_field()
    {
        var dir = Directory.CreateTempSubdirectory("sf-pt-bad-").FullName;
        try
        {
            Assert.Contains("mc_question_val", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
            Directory.CreateDirectory(Path.Combine(dir, "mc_question_val"));
            var file = Path.Combine(dir, "mc_question_val", "validation.json");
            File.WriteAllText(file, """[{"video_name": "v", "question_id": "0", "question": "?", "options": ["a", "b", "c"], "answer_id": "3"}]""");
            var e = Assert.Throws<UserError>(() => Task.Load(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains("'answer_id'", e.Message);

            File.WriteAllText(file, """[{"video_name": "v", "question_id": "0", "question": "?", "options": "a b c", "answer_id": "0"}]""");
            Assert.Contains("'options'", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
