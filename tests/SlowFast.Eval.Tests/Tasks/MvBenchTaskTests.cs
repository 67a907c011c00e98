using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

/// <summary>MVBench against the reference's lmms_eval/tasks/mvbench (utils.py, the 20 sub-task yaml files and the group file).</summary>
public sealed class MvBenchTaskTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-mvbench-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static EvalSample Sample(string gold = "B") => new()
    {
        Id = "action_antonym/0", Video = "ssv2_video/a.webm", Question = "What is the action performed by the person in the video?",
        Options = ["Pushing something", "Pulling something", "Not sure"], Gold = gold,
        Categories = new Dictionary<string, string> { ["task"] = "action_antonym" },
    };

    // Fixture written from mvbench_doc_to_text: system_prompt + "\n" + question + "\n" + "X. option\n" for each + post_prompt.
    private const string PromptFixture =
        "Select the best answer to the following multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) of the correct option.\n" +
        "What is the action performed by the person in the video?\n" +
        "A. Pushing something\nB. Pulling something\nC. Not sure\n" +
        "Answer with the option's letter from the given choices directly.";

    [Fact]
    public void Prompt_is_the_reference_template()
    {
        Assert.Equal(PromptFixture, new MvBenchTask().Prompt(Sample()));
    }

    [Theory]
    [InlineData("B", "B")]
    [InlineData("b", "B")]
    [InlineData("A. Pushing something", "A")]
    [InlineData("c.not sure", "C")]                      // "X." at the start, any case
    [InlineData("A.\nPushing", "A")]                     // \s* crosses the newline
    [InlineData("(B) Pulling something", "B")]
    [InlineData("The answer is C.", "C")]
    [InlineData("I think it is a dog", "A")]             // a standalone "a" reads as A, as in the reference
    [InlineData("Pulling something", "pulling something")] // no letter: the flattened text, which matches nothing
    [InlineData("f. something", "f something")]          // F is not an option letter there
    [InlineData("Option (E)!", "E")]
    [InlineData("\"D\"", "D")]
    [InlineData("", null)]
    public void Answer_extraction_follows_mcq_acc(string output, string? expected)
    {
        Assert.Equal(expected, new MvBenchTask().ExtractAnswer(output, Sample()));
    }

    [Theory]
    [InlineData("B", "B", true)]
    [InlineData("Pulling something", "B", false)]        // the option's text is not its letter
    [InlineData("B", "", false)]                          // an answer that is none of the candidates
    public void Correct_when_the_read_answer_is_the_right_letter(string output, string gold, bool correct)
    {
        var task = new MvBenchTask();
        var sample = Sample(gold);
        Assert.Equal(correct, task.IsCorrect(task.ExtractAnswer(output, sample), sample));
    }

    [Fact]
    public void Periods_not_before_a_digit_go_at_most_32_times()
    {
        // re.sub(pattern, "", text, re.UNICODE) passes 32 as the count: the 33rd period stays.
        string dots = new('.', 40);
        Assert.Equal("xy" + new string('.', 8), MvBenchTask.ReadAnswer("x" + dots[..20] + "y" + dots[..20]));
        Assert.Equal("3.5", MvBenchTask.ReadAnswer("3.5."));
    }

    [Fact]
    public void Score_leaves_empty_outputs_out_and_weights_sub_tasks_by_size()
    {
        static ScoredSample S(string task, bool correct, string output = "A") =>
            new("id", new Dictionary<string, string> { ["task"] = task }, output, output == "" ? null : "A", correct, false);
        var score = new MvBenchTask().Score(
        [
            S("action_antonym", true), S("action_antonym", true), S("action_antonym", false), S("action_antonym", false, output: ""),
            S("moving_count", true), S("moving_count", false),
        ]);
        var antonym = score.Categories.Single(c => c.Value == "action_antonym");
        Assert.Equal((4, 3, 2), (antonym.Samples, antonym.Counted, antonym.Correct));
        Assert.Equal(200.0 / 3, antonym.Score, 10);
        Assert.Equal(50, score.Categories.Single(c => c.Value == "moving_count").Score);
        Assert.Equal((4 * 200.0 / 3 + 2 * 50) / 6, score.Overall, 10);
        // The group file's order: moving_count before action_antonym.
        Assert.Equal(["moving_count", "action_antonym"], score.Categories.Select(c => c.Value));
        Assert.Equal(0, new MvBenchTask().Score([S("state_change", true, output: "")]).Overall);
    }

    [Fact]
    public void Load_reads_each_sub_task_json_and_its_video_folder()
    {
        new MvBenchMini().Write(_dir);
        var samples = new MvBenchTask().Load(_dir);
        Assert.Equal(["episodic_reasoning/0", "action_antonym/0", "action_antonym/1", "action_antonym/2", "action_count/0"], samples.Select(s => s.Id));
        var antonym = samples[1];
        Assert.Equal(Path.Combine("ssv2_video", "clip_1.webm"), antonym.Video);
        Assert.Equal("B", antonym.Gold);
        Assert.Equal("action_antonym", antonym.Categories["task"]);
        Assert.Equal("D", samples[0].Gold);
        Assert.True(Directory.Exists(Path.Combine(_dir, samples[0].Video)));
        Assert.Equal(MvBenchMini.UndecodableVideo, samples[4].Video.Replace('\\', '/'));
        Assert.Throws<UserError>(() => new MvBenchTask().Load(Path.Combine(_dir, "json")));
    }
}
