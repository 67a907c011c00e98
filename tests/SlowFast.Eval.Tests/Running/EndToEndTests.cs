using SlowFast.Eval.Running;
using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;
using SlowFast.Media;

namespace SlowFast.Eval.Tests.Running;

/// <summary>`eval` over every miniature benchmark with a tiny checkpoint: every sample logged, prompted, parsed and scored by its task.</summary>
[Collection(EvalCollection.Name)]
public sealed class EndToEndTests(EvalFixture fixture)
{
    [Theory]
    [MemberData(nameof(EvalFixture.MiniatureTasks), MemberType = typeof(EvalFixture))]
    public void Every_miniature_benchmark_runs_end_to_end(string taskName)
    {
        var (results, dir) = fixture.Baseline(taskName);
        var (dataDir, count) = fixture.Data(taskName);
        var task = TaskCatalog.Get(taskName);
        var samples = task.Load(dataDir).ToDictionary(s => s.Id);
        var log = EvalFixture.Log(dir);

        Assert.Equal(count, samples.Count);
        Assert.Equal(count, log.Count);
        Assert.Equal(samples.Keys.Order(), log.Select(r => r.Id).Order());
        Assert.True(results["complete"]!.GetValue<bool>());
        Assert.Equal(count, results["answered"]!.GetValue<int>());
        foreach (var r in log)
        {
            var sample = samples[r.Id];
            Assert.Equal(sample.Gold, r.Gold);
            if (r.Failed)
            {
                Assert.Equal("", r.Output);
                Assert.False(r.Correct);
                Assert.NotNull(r.Error);
                continue;
            }
            // The logged prompt is the task's, the parsed answer its reading of the raw output, the verdict its own.
            var facts = EvalVideo.Open(dataDir, sample, new VideoOptions { Frames = EvalFixture.Frames }, default).Facts;
            var prepared = task.WithVideoFacts(sample, facts);
            Assert.Equal(task.Prompt(prepared), r.Prompt);
            Assert.Equal(task.ExtractAnswer(r.Output, prepared), r.Answer);
            Assert.Equal(task.IsCorrect(r.Answer, prepared), r.Correct);
            Assert.NotNull(r.Timings);
            Assert.True(r.Tokens!.Generated is > 0 and <= EvalFixture.MaxNewTokens);
        }
        var score = task.Score(log.Select(r => r.ToScored()).ToList());
        Assert.Equal(Math.Round(score.Overall, 4), results["score"]!["overall"]!.GetValue<double>());
        Assert.Equal(log.Count(r => r.Failed), results["failed"]!.GetValue<int>());
        Assert.Contains($"# {taskName}:", File.ReadAllText(Path.Combine(dir, EvalResults.MarkdownFileName)));
        Assert.True(File.Exists(Path.Combine(dir, EvalResults.JsonFileName)));

        // A benchmark with private answers leaves its grader's file: one entry per question, -1 where nothing was read.
        string submission = Path.Combine(dir, "submission.json");
        if (task.SubmissionFile([]) is null) Assert.False(File.Exists(submission));
        else
        {
            var entries = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(submission))!.AsObject();
            Assert.Equal(log.Select(r => Path.GetFileNameWithoutExtension(r.Video)).Order(), entries.Select(e => e.Key).Order());
            foreach (var r in log)
                Assert.Equal(r.Answer == null ? -1 : r.Answer[0] - 'A', entries[Path.GetFileNameWithoutExtension(r.Video)]!.GetValue<int>());
        }
    }

    [Fact]
    public void Missing_and_undecodable_videos_are_counted_listed_and_scored_wrong()
    {
        var (mme, _) = fixture.Baseline("videomme");
        Assert.Equal([VideoMmeMiniData.MissingVideo], mme["missing_videos"]!.AsArray().Select(v => v!.GetValue<string>().Replace('\\', '/')));
        Assert.Equal(1, mme["failures"]![FailureKind.MissingVideo]!.GetValue<int>());

        var (mv, mvDir) = fixture.Baseline("mvbench");
        Assert.Equal([MvBenchMini.UndecodableVideo], mv["undecodable_videos"]!.AsArray().Select(v => v!.GetValue<string>().Replace('\\', '/')));
        var broken = EvalFixture.Log(mvDir).Single(r => r.Id == "action_count/0");
        Assert.Equal(FailureKind.UndecodableVideo, broken.ErrorKind);
        // MVBench's metric leaves the empty output out of its sub-task (the reference's aggregation), VideoMME's counts it wrong.
        var actionCount = mv["score"]!["categories"]!.AsArray().Single(c => c!["value"]!.GetValue<string>() == "action_count")!;
        Assert.Equal((1, 0), (actionCount["samples"]!.GetValue<int>(), actionCount["counted"]!.GetValue<int>()));
        Assert.Equal(5, mme["score"]!["counted"]!.GetValue<int>());
    }

    [Fact]
    public void Questions_about_one_video_reuse_its_encoding_and_shared_prompt_prefix()
    {
        var (results, dir) = fixture.Baseline("videomme");
        var log = EvalFixture.Log(dir);
        var first = log.Single(r => r.Id == "001-1");
        var second = log.Single(r => r.Id == "001-2");
        Assert.False(first.VideoReused);
        Assert.True(second.VideoReused);
        Assert.Equal(0, second.Timings!.Vision);
        // The system prompt, the video's fast tokens and the template's lead-in are served from the engine's prefix cache.
        Assert.True(second.Tokens!.Reused > 0, "no prompt positions were reused");
        Assert.Equal(2, results["timing"]!["videos_encoded"]!.GetValue<int>());
    }

    [Fact]
    public void Episodic_reasoning_frames_are_thinned_to_the_frame_count()
    {
        var (_, dir) = fixture.Baseline("mvbench");
        var record = EvalFixture.Log(dir).Single(r => r.Id == "episodic_reasoning/0");
        Assert.False(record.Failed, record.Error);
        Assert.Equal(EvalFixture.Frames, record.Frames);
    }
}
