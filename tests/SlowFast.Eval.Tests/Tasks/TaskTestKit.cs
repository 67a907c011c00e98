using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

/// <summary>Shared steps of the task tests: a miniature in a temp directory, and scoring a log of raw outputs.</summary>
public sealed class MiniData : IDisposable
{
    public MiniData(IMiniBenchmark mini)
    {
        Dir = Directory.CreateTempSubdirectory("sf-task-" + mini.Task + "-").FullName;
        Count = mini.Write(Dir);
    }

    public string Dir { get; }

    /// <summary>What <see cref="IMiniBenchmark.Write"/> said it wrote.</summary>
    public int Count { get; }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

public static class TaskScoring
{
    /// <summary>
    /// Accuracy (%) overall and per category value ("dimension=value") of <paramref name="outputs"/> (sample id → raw
    /// model output), each answer read by the task's own rules.
    /// </summary>
    public static (double Overall, IReadOnlyDictionary<string, double> ByCategory) Score(EvalTask task, IReadOnlyList<EvalSample> samples, IReadOnlyDictionary<string, string> outputs)
    {
        var results = samples.Select(s => (Sample: s, Correct: task.IsCorrect(task.ExtractAnswer(outputs[s.Id], s), s))).ToList();
        var byCategory = new Dictionary<string, double>();
        foreach (var dim in task.CategoryDimensions)
            foreach (var group in results.GroupBy(r => r.Sample.Categories[dim]))
                byCategory[$"{dim}={group.Key}"] = 100.0 * group.Count(r => r.Correct) / group.Count();
        return (100.0 * results.Count(r => r.Correct) / results.Count, byCategory);
    }

    /// <summary>Every sample's video exists under the data directory.</summary>
    public static void AssertVideosExist(string dataDir, IEnumerable<EvalSample> samples)
    {
        foreach (var s in samples)
            Assert.True(File.Exists(Path.Combine(dataDir, s.Video)), $"{s.Id}: video {s.Video} not written");
    }
}
