using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class LongVideoBenchTaskTests
{
    private static readonly LongVideoBenchTask Task = new();

    private static EvalSample Sample() => new()
    {
        Id = "86CxyhFV9MI_0", Video = "videos/86CxyhFV9MI.mp4", Question = "What vehicle appears when the narrator says hello?",
        Options = ["a red car", "a blue bus", "a green bike", "a yellow boat"], Gold = "B",
        Fields = new Dictionary<string, string> { ["parsed_choices"] = "4" },
    };

    [Fact]
    public void Loads_the_parquet_dropping_unused_option_slots()
    {
        using var data = new MiniData(new LongVideoBenchMini());
        var samples = Task.Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(["86CxyhFV9MI_0", "86CxyhFV9MI_1", "q2lYGhbLs9k_0"], samples.Select(s => s.Id));
        Assert.Equal(["B", "C", "A"], samples.Select(s => s.Gold));
        Assert.Equal(["it rains", "a dog barks", "the lights go out"], samples[1].Options);
        Assert.Equal(5, samples[2].Options.Count);
        Assert.Equal("600", samples[2].Categories["duration_group"]);
        Assert.Equal("E3E", samples[1].Categories["question_category"]);
        Assert.Equal(Path.Combine("videos", "86CxyhFV9MI.mp4"), samples[0].Video);
        TaskScoring.AssertVideosExist(data.Dir, samples);
    }

    [Fact]
    public void Loads_the_json_release_with_candidate_lists()
    {
        var dir = Directory.CreateTempSubdirectory("sf-lvb-json-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "lvb_val.json"), """
                [{"video_id": "abc", "id": "abc_0", "video_path": "abc.mp4", "question": "Which?", "candidates": ["x", "y", "z"],
                  "correct_choice": 2, "duration_group": 3600, "question_category": "T3O"}]
                """);
            var sample = Assert.Single(Task.Load(dir));
            Assert.Equal(["x", "y", "z"], sample.Options);
            Assert.Equal("C", sample.Gold);
            Assert.Equal("3600", sample.Categories["duration_group"]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Prompt_is_the_reference_template_ending_in_a_newline()
    {
        Assert.Equal(
            "Select the best answer to the following multiple-choice question based on the video.\n"
            + "What vehicle appears when the narrator says hello?\nA. a red car\nB. a blue bus\nC. a green bike\nD. a yellow boat\n"
            + "Answer with the option's letter from the given choices directly.\n",
            Task.Prompt(Sample()));
    }

    [Theory]
    [InlineData("B", "B")]
    [InlineData("A.", "A")]
    [InlineData("(B) a blue bus", "B")]
    [InlineData("The answer is C.", "C")]
    [InlineData("The answer is (A), not (C).", "C")] // the last bracketed letter wins
    [InlineData("A and B are wrong, C is right", "C")] // the last " X " wins
    [InlineData("A. a red car. B. a blue bus.", "A")] // "X." only: positions of " X " are all -1, the first wins
    [InlineData("it is a blue bus for sure here", "B")] // option text in an answer of more than five words
    [InlineData("a blue bus", "?")] // too short for the text match
    [InlineData("E", "?")] // no fifth option
    [InlineData("b", "?")]
    [InlineData("", "?")]
    public void Answer_extraction_follows_the_reference(string output, string expected)
    {
        var sample = Sample();
        var want = expected == "?" ? ChoiceParsing.StableRandomChoice(["A", "B", "C", "D"], sample.Id) : expected;
        Assert.Equal(want, Task.ExtractAnswer(output, sample));
    }

    [Fact]
    public void Scoring_breaks_down_by_duration_group_and_question_category()
    {
        using var data = new MiniData(new LongVideoBenchMini());
        var samples = Task.Load(data.Dir);
        var (overall, byCategory) = TaskScoring.Score(Task, samples, new Dictionary<string, string>
        {
            ["86CxyhFV9MI_0"] = "(B)", ["86CxyhFV9MI_1"] = "A", ["q2lYGhbLs9k_0"] = "The answer is A.",
        });
        Assert.Equal(200.0 / 3, overall, 9);
        Assert.Equal(50.0, byCategory["duration_group=15"]);
        Assert.Equal(100.0, byCategory["duration_group=600"]);
        Assert.Equal(100.0, byCategory["question_category=S2E"]);
        Assert.Equal(0.0, byCategory["question_category=E3E"]);
    }

    [Fact]
    public void Bad_annotations_are_user_errors_naming_file_and_field()
    {
        var dir = Directory.CreateTempSubdirectory("sf-lvb-bad-").FullName;
        try
        {
            Assert.Contains("validation", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
            var file = Path.Combine(dir, "validation.json");
            File.WriteAllText(file, """[{"id": "a_0", "video_path": "a.mp4", "question": "Which?", "option0": "x", "option1": "y", "duration_group": 15, "question_category": "S2E"}]""");
            var e = Assert.Throws<UserError>(() => Task.Load(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains("'correct_choice'", e.Message);

            File.WriteAllText(file, """[{"id": "a_0", "video_path": "a.mp4", "question": "Which?", "option0": "x", "option1": "y", "correct_choice": 3, "duration_group": 15, "question_category": "S2E"}]""");
            Assert.Contains("'correct_choice'", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
