using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class TempCompassTaskTests
{
    private static readonly TempCompassTask Task = new();

    private static EvalSample Sample() => new()
    {
        Id = "1025370803/speed#1", Video = "videos/1025370803.mp4", Question = "What is the speed of the car?\nA. slow\nB. fast\nC. normal\nD. not moving",
        Gold = "B", Fields = new Dictionary<string, string> { ["answer"] = "B. fast" },
    };

    [Fact]
    public void Loads_questions_keyed_by_video_aspect_and_order()
    {
        using var data = new MiniData(new TempCompassMini());
        var samples = Task.Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(["1025370803/speed#1", "1025370803/speed#2", "1025370803/direction#1", "8829017312/direction#1"], samples.Select(s => s.Id));
        Assert.Equal(["B", "C", "A", "B"], samples.Select(s => s.Gold));
        Assert.Equal("direction", samples[3].Categories["dim"]);
        TaskScoring.AssertVideosExist(data.Dir, samples);
    }

    [Fact]
    public void Prompt_is_the_reference_template()
    {
        Assert.Equal(
            "Select the best answer to the following multiple-choice question based on the video.\n"
            + "What is the speed of the car?\nA. slow\nB. fast\nC. normal\nD. not moving\n"
            + "Answer with the option's letter from the given choices directly.",
            Task.Prompt(Sample()));
    }

    [Theory]
    [InlineData("B. fast", "B")] // the whole answer string
    [InlineData("B", "B")]
    [InlineData("A", "A")]
    [InlineData("B) fast", "B")]
    [InlineData("A. slow", "A")]
    [InlineData("B.", "B")]
    [InlineData(" B", null)] // not trimmed: the reference hands this to its GPT judge
    [InlineData("b", null)]
    [InlineData("The answer is B.", null)]
    [InlineData("(B) fast", null)]
    [InlineData("E", null)]
    [InlineData("", null)]
    public void Answer_extraction_follows_the_reference(string output, string? expected) =>
        Assert.Equal(expected, Task.ExtractAnswer(output, Sample()));

    [Fact]
    public void Scoring_breaks_down_by_aspect()
    {
        using var data = new MiniData(new TempCompassMini());
        var samples = Task.Load(data.Dir);
        var (overall, byCategory) = TaskScoring.Score(Task, samples, new Dictionary<string, string>
        {
            ["1025370803/speed#1"] = "B. fast", ["1025370803/speed#2"] = "C", ["1025370803/direction#1"] = "The car moves left", ["8829017312/direction#1"] = "A",
        });
        Assert.Equal(50.0, overall);
        Assert.Equal(100.0, byCategory["dim=speed"]);
        Assert.Equal(0.0, byCategory["dim=direction"]);
    }

    [Fact]
    public void Bad_annotations_are_user_errors_naming_file_and_field()
    {
        var dir = Directory.CreateTempSubdirectory("sf-tc-bad-").FullName;
        try
        {
            Assert.Contains("multi-choice", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
            Directory.CreateDirectory(Path.Combine(dir, "multi-choice"));
            var file = Path.Combine(dir, "multi-choice", "test.json");
            File.WriteAllText(file, """[{"video_id": "1", "question": "Q?\nA. x\nB. y", "answer": "A. x"}]""");
            var e = Assert.Throws<UserError>(() => Task.Load(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains("'dim'", e.Message);

            File.WriteAllText(file, """[{"video_id": "1", "question": "Q?\nA. x\nB. y", "answer": "", "dim": "speed"}]""");
            Assert.Contains("'answer'", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
