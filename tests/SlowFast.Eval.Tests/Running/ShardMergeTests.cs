using System.Text.Json.Nodes;
using SlowFast.Cli.Tests;
using SlowFast.Eval.Running;
using SlowFast.Eval.Tasks;

namespace SlowFast.Eval.Tests.Running;

/// <summary>--shard I/N and `eval merge`: four shards merged give exactly the unsharded run's answers and results.</summary>
[Collection(EvalCollection.Name)]
public sealed class ShardMergeTests(EvalFixture fixture)
{
    /// <summary>What must not depend on how the run was split (timings and the shard list may).</summary>
    private static readonly string[] SameFields = ["task", "frames", "fps", "max_new_tokens", "samples", "answered", "complete", "failed", "failures", "missing_videos", "undecodable_videos", "score"];

    [Theory]
    [InlineData("videomme")]
    [InlineData("mvbench")]
    public void Four_shards_merged_equal_the_single_run(string task)
    {
        var (single, singleDir) = fixture.Baseline(task);
        string root = Path.Combine(fixture.Root, "runs", task, "shards");
        var shardDirs = new List<string>();
        for (int i = 0; i < 4; i++)
        {
            string dir = Path.Combine(root, $"shard-{i}");
            EvalRunner.Run(fixture.Options(task, dir) with { Shard = new Shard(i, 4) }, TextWriter.Null);
            shardDirs.Add(dir);
        }
        string merged = Path.Combine(root, "merged");
        var r = SlowfastProcess.Run(["eval", "merge", .. shardDirs, "--out", merged]);
        Assert.True(r.ExitCode == 0, r.Stderr);

        var mergedResults = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(merged, EvalResults.JsonFileName)))!;
        foreach (var field in SameFields)
            Assert.True(JsonNode.DeepEquals(single[field], mergedResults[field]), $"{field}: {single[field]?.ToJsonString()} vs {mergedResults[field]?.ToJsonString()}");
        Assert.Equal(4, mergedResults["shards"]!.AsArray().Count);

        var a = EvalFixture.Log(singleDir);
        var b = EvalFixture.Log(merged);
        Assert.Equal(a.Select(x => (x.Id, x.Prompt, x.Output, x.Answer, x.Correct, x.ErrorKind)), b.Select(x => (x.Id, x.Prompt, x.Output, x.Answer, x.Correct, x.ErrorKind)));
        Assert.Contains($"{task}: ", r.Stdout);
    }

    [Fact]
    public void Shards_partition_the_samples_by_video()
    {
        var samples = Enumerable.Range(0, 23).Select(i => new EvalSample { Id = $"q{i}", Video = $"v{i / 3 % 5}.mp4", Question = "?", Gold = "A" }).ToList();
        var shards = Enumerable.Range(0, 4).Select(i => new Shard(i, 4).Select(samples)).ToList();
        Assert.Equal(Enumerable.Range(0, 23), shards.SelectMany(s => s.Select(x => x.Index)).Order());
        foreach (var video in samples.Select(s => s.Video).Distinct())
            Assert.Single(shards, s => s.Any(x => x.Sample.Video == video));
        Assert.Equal(shards[1].Select(x => x.Index), new Shard(1, 4).Select(samples).Select(x => x.Index)); // deterministic
        Assert.Equal(new Shard(2, 4), Shard.Parse("2/4"));
        foreach (var bad in new[] { "4/4", "-1/4", "1", "a/b", "0/0" })
            Assert.Throws<UserError>(() => Shard.Parse(bad));
    }

    [Fact]
    public void Merge_refuses_a_missing_or_unfinished_shard()
    {
        string root = Path.Combine(fixture.Root, "runs", "merge-refusals");
        var dirs = new List<string>();
        for (int i = 0; i < 2; i++)
        {
            string dir = Path.Combine(root, $"shard-{i}");
            EvalRunner.Run(fixture.Options("videomme", dir) with { Shard = new Shard(i, 2), Limit = 3 }, TextWriter.Null);
            dirs.Add(dir);
        }
        var missing = SlowfastProcess.Run("eval", "merge", dirs[0], "--out", Path.Combine(root, "m1"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("shard(s) 1/2 missing", missing.Stderr);

        // Drop shard 1's last answer: it no longer holds all its samples.
        string log = Path.Combine(dirs[1], AnswerLog.FileName);
        var lines = File.ReadAllLines(log);
        File.WriteAllLines(log, lines[..^1]);
        var unfinished = SlowfastProcess.Run("eval", "merge", dirs[0], dirs[1], "--out", Path.Combine(root, "m2"));
        Assert.Equal(1, unfinished.ExitCode);
        Assert.Contains("incomplete", unfinished.Stderr);
    }
}
