using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class NextQaTaskTests
{
    private static readonly NextQaTask Task = new();

    private static EvalSample Sample(string question = "why did the boy pick up the ball") => new()
    {
        Id = "4010069381_0", Video = "NExTVideo/4010069381.mp4", Question = question,
        Options = ["to throw it ", "to clean up", "to give it to the dog", "to play catch", "to hide it"], Gold = "C",
    };

    [Fact]
    public void Loads_numeric_video_ids_and_answer_indices()
    {
        using var data = new MiniData(new NextQaMini());
        var samples = Task.Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(["4010069381_0", "4010069381_1", "7249003952_0"], samples.Select(s => s.Id));
        Assert.Equal(["C", "A", "E"], samples.Select(s => s.Gold));
        Assert.Equal(Path.Combine("NExTVideo", "4010069381.mp4"), samples[0].Video);
        Assert.Equal("TN", samples[1].Fields["type"]);
        TaskScoring.AssertVideosExist(data.Dir, samples);
    }

    [Fact]
    public void Prompt_is_the_reference_template()
    {
        const string Head = "Select the best answer to the following multiple-choice question based on the video.\n";
        const string Options = "\nA. to throw it\nB. to clean up\nC. to give it to the dog\nD. to play catch\nE. to hide it\n";
        const string Tail = "Answer with the option's letter from the given choices directly.";
        Assert.Equal(Head + "why did the boy pick up the ball?" + Options + Tail, Task.Prompt(Sample()));
        Assert.Equal(Head + "describe what the boy does after that." + Options + Tail, Task.Prompt(Sample("describe what the boy does after that.")));
    }

    [Theory]
    [InlineData("B", "B")]
    [InlineData("(C) to give it to the dog", "C")]
    [InlineData("The answer is E.", "E")]
    [InlineData("A or B", "B")] // the last mention wins
    [InlineData("he wanted to give it to the dog today", "C")] // option text in an answer of more than five words
    [InlineData("to hide it", "?")]
    [InlineData("b", "?")]
    [InlineData("", "?")]
    public void Answer_extraction_follows_the_reference(string output, string expected)
    {
        var sample = Sample();
        var want = expected == "?" ? ChoiceParsing.StableRandomChoice(["A", "B", "C", "D", "E"], sample.Id) : expected;
        Assert.Equal(want, Task.ExtractAnswer(output, sample));
    }

    [Fact]
    public void Scoring_is_exact_match_accuracy()
    {
        using var data = new MiniData(new NextQaMini());
        var samples = Task.Load(data.Dir);
        var (overall, byCategory) = TaskScoring.Score(Task, samples, new Dictionary<string, string>
        {
            ["4010069381_0"] = "C. to give it to the dog", ["4010069381_1"] = "(A) runs away", ["7249003952_0"] = "D",
        });
        Assert.Equal(200.0 / 3, overall, 9);
        Assert.Empty(byCategory);
    }

    [Fact]
    public void Bad_annotations_are_user_errors_naming_file_and_field()
    {
        var dir = Directory.CreateTempSubdirectory("sf-nextqa-bad-").FullName;
        try
        {
            Assert.Contains("MC", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
            Directory.CreateDirectory(Path.Combine(dir, "MC"));
            var file = Path.Combine(dir, "MC", "test.csv");
            File.WriteAllText(file, "video,qid,question,answer,a0,a1,a2,a4\n123,0,why,1,a,b,c,e\n");
            var e = Assert.Throws<UserError>(() => Task.Load(dir));
            Assert.Contains(file, e.Message);
            Assert.Contains("'a3'", e.Message);

            File.WriteAllText(file, "video,qid,question,answer,a0,a1,a2,a3,a4\n123,0,why,five,a,b,c,d,e\n");
            Assert.Contains("'answer'", Assert.Throws<UserError>(() => Task.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
