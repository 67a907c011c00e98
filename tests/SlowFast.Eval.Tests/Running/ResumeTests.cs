using System.Diagnostics;
using SlowFast.Cli.Tests;
using SlowFast.Eval.Running;

namespace SlowFast.Eval.Tests.Running;

/// <summary>A real `slowfast eval` process killed mid-run, then continued with --resume: nothing lost, nothing answered twice.</summary>
[Collection(EvalCollection.Name)]
public sealed class ResumeTests(EvalFixture fixture)
{
    private string[] Args(string task, string outDir) =>
    [
        "eval", "--model", fixture.ModelDir, "--task", task, "--data", fixture.Data(task).Dir, "--out", outDir,
        "--frames", EvalFixture.Frames.ToString(), "--max-new-tokens", EvalFixture.MaxNewTokens.ToString(), "--precision", "f32",
    ];

    [Fact]
    public void Killed_mid_run_then_resumed_gives_the_uninterrupted_answers()
    {
        const string task = "mvbench";
        var (single, singleDir) = fixture.Baseline(task);
        string outDir = Path.Combine(fixture.Root, "runs", task, "killed");
        string log = Path.Combine(outDir, AnswerLog.FileName);

        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(SlowfastProcess.Dll);
        foreach (var a in Args(task, outDir)) psi.ArgumentList.Add(a);
        psi.Environment["SLOWFAST_CACHE_DIR"] = SlowfastProcess.CacheDir;
        using (var p = Process.Start(psi)!)
        {
            _ = p.StandardOutput.ReadToEndAsync();
            _ = p.StandardError.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            while (!(File.Exists(log) && File.ReadAllText(log).Contains('\n')) && !p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(10);
            Assert.False(p.HasExited, "the run ended before it could be killed");
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        var before = AnswerLog.Read(log);
        int total = fixture.Data(task).Samples;
        Assert.InRange(before.Count, 1, total - 1);
        Assert.False(File.Exists(Path.Combine(outDir, EvalResults.JsonFileName)));

        // Without --resume the directory is refused; with it, only the rest is asked.
        var refused = SlowfastProcess.Run(Args(task, outDir));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("--resume", refused.Stderr);
        var resumed = SlowfastProcess.Run([.. Args(task, outDir), "--resume"]);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains($"{before.Count} already answered, {total - before.Count} to go", resumed.Stderr);

        var after = EvalFixture.Log(outDir);
        Assert.Equal(total, after.Count);
        Assert.Equal(total, after.Select(r => r.Id).Distinct().Count());
        foreach (var r in before) Assert.Equal(r, after.Single(x => x.Id == r.Id) with { Categories = r.Categories });
        var plain = EvalFixture.Log(singleDir);
        Assert.Equal(plain.Select(x => (x.Id, x.Output, x.Answer, x.Correct)), after.Select(x => (x.Id, x.Output, x.Answer, x.Correct)));
        Assert.Contains("\"complete\": true", File.ReadAllText(Path.Combine(outDir, EvalResults.JsonFileName)));

        // A resume with other settings is refused rather than mixed in.
        var other = SlowfastProcess.Run([.. Args(task, outDir)[..^6], "--frames", "2", "--max-new-tokens", "8", "--precision", "f32", "--resume"]);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("different run", other.Stderr);
    }

    [Fact]
    public void A_half_written_last_line_is_dropped_and_that_sample_runs_again()
    {
        string dir = Path.Combine(fixture.Root, "runs", "torn");
        var options = fixture.Options("videomme", dir) with { Limit = 2 };
        EvalRunner.Run(options, TextWriter.Null);
        string log = Path.Combine(dir, AnswerLog.FileName);
        string[] lines = File.ReadAllLines(log);
        File.WriteAllText(log, lines[0] + "\n" + lines[1][..(lines[1].Length / 2)]);
        Assert.Single(AnswerLog.Read(log));

        var results = EvalRunner.Run(options with { Resume = true }, TextWriter.Null);
        Assert.Equal(2, results["answered"]!.GetValue<int>());
        Assert.Equal(2, File.ReadAllLines(log).Length);
        Assert.Equal(2, AnswerLog.Read(log).Count);
    }

    [Fact]
    public void Usage_errors_are_one_line()
    {
        var noTask = SlowfastProcess.Run("eval", "--model", fixture.ModelDir, "--data", fixture.Root);
        Assert.Equal(2, noTask.ExitCode);
        Assert.Contains("--task is required", noTask.Stderr);
        var unknown = SlowfastProcess.Run("eval", "--model", fixture.ModelDir, "--task", "nope", "--data", fixture.Root);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("unknown task 'nope' (known: ", unknown.Stderr);
        Assert.Contains("mvbench", unknown.Stderr);
        var noData = SlowfastProcess.Run("eval", "--model", fixture.ModelDir, "--task", "videomme", "--data", Path.Combine(fixture.Root, "none"));
        Assert.Equal(1, noData.ExitCode);
        Assert.Single(noData.StderrLines);
        var badShard = SlowfastProcess.Run("eval", "--model", fixture.ModelDir, "--task", "videomme", "--data", fixture.Root, "--shard", "3/3");
        Assert.Equal(1, badShard.ExitCode);
        Assert.Contains("--shard must be I/N", badShard.Stderr);
    }
}
