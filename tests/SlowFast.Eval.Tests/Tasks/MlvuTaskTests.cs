using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class MlvuTaskTests
{
    private static readonly MlvuTask Task = new();

    [Fact]
    public void Loads_questions_with_their_option_lines_and_task_types()
    {
        using var data = new MiniData(new MlvuMini());
        var samples = Task.Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(["movie101_1.mp4#1", "movie101_1.mp4#2", "needle_7.mp4#1", "needle_7.mp4#2"], samples.Select(s => s.Id));
        Assert.Equal("What did the man hold after the rain?", samples[1].Question);
        Assert.Equal(["A. an umbrella", "B. a cup", "C. a book", "D. a phone"], samples[1].Options);
        Assert.Equal(["B", "A", "C", "D"], samples.Select(s => s.Gold));
        Assert.Equal("plotQA", samples[2].Categories["task_type"]);
        TaskScoring.AssertVideosExist(data.Dir, samples);
    }

    [Fact]
    public void Prompts_are_the_reference_template()
    {
        using var data = new MiniData(new MlvuMini());
        var samples = Task.Load(data.Dir);
        const string Head = "Select the best answer to the following multiple-choice question based on the video.\n";
        const string Tail = "\nAnswer with the option's letter from the given choices directly.";
        // A "?" is added unless the question ends in "." or "?"; the blank line in the second question is dropped.
        Assert.Equal(Head + "What is the main topic of the video?\nA. cooking\nB. sports\nC. travel\nD. music" + Tail, Task.Prompt(samples[0]));
        Assert.Equal(Head + "What did the man hold after the rain?\nA. an umbrella\nB. a cup\nC. a book\nD. a phone" + Tail, Task.Prompt(samples[1]));
        Assert.Equal(Head + "Choose the colour of the inserted frame.\nA. red\nB. green\nC. blue\nD. white" + Tail, Task.Prompt(samples[2]));
    }

    [Theory]
    [InlineData("B", "B")]
    [InlineData("(C) The man", "C")]
    [InlineData("C) The man", "C")]
    [InlineData("  D. something", "D")]
    [InlineData("The answer is C.", "T")] // the first character, as the reference reads it
    [InlineData("b", "b")] // not upper-cased: wrong against "B"
    [InlineData("A (see option (B))", "B")] // the letter before the first ")"
    [InlineData("", null)]
    [InlineData(") oops", null)]
    public void Answer_extraction_follows_the_reference(string output, string? expected)
    {
        var sample = new EvalSample { Id = "x", Video = "v.mp4", Question = "q", Gold = "B" };
        Assert.Equal(expected, Task.ExtractAnswer(output, sample));
    }

    [Fact]
    public void Scoring_breaks_down_by_task_type()
    {
        using var data = new MiniData(new MlvuMini());
        var samples = Task.Load(data.Dir);
        var (overall, byCategory) = TaskScoring.Score(Task, samples, new Dictionary<string, string>
        {
            ["movie101_1.mp4#1"] = "(B) sports", ["movie101_1.mp4#2"] = "a", ["needle_7.mp4#1"] = "C", ["needle_7.mp4#2"] = "The answer is D",
        });
        Assert.Equal(50.0, overall);
        Assert.Equal(50.0, byCategory["task_type=topic_reasoning"]);
        Assert.Equal(50.0, byCategory["task_type=plotQA"]);
        Assert.Equal(["task_type"], Task.CategoryDimensions);
    }

    [Fact]
    public void Bad_annotations_are_user_errors_naming_file_and_field()
    {
        var dir = Directory.CreateTempSubdirectory("sf-mlvu-bad-").FullName;
        try
        {
            Assert.Contains("mlvu", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
            Directory.CreateDirectory(Path.Combine(dir, "mlvu"));
            var file = Path.Combine(dir, "mlvu", "test.jsonl");
            File.WriteAllText(file, """{"video_name": "v.mp4", "question": "Why?\nA) x\nB) y", "answer": "A", "task_type": "ego"}""" + "\n");
            var e = Assert.Throws<UserError>(() => Task.Load(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains("'question'", e.Message);

            File.WriteAllText(file, """{"video_name": "v.mp4", "question": "Why?\n(A) x\n(B) y", "answer": "A", "task_type": "sports"}""" + "\n");
            Assert.Contains("'task_type'", Assert.Throws<UserError>(() => Task.Load(dir)).Message);

            File.WriteAllText(file, """{"question": "Why?\n(A) x\n(B) y", "answer": "A", "task_type": "ego"}""" + "\n");
            Assert.Contains("'video_name'", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
