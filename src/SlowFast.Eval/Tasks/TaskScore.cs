namespace SlowFast.Eval.Tasks;

/// <summary>
/// One answered sample as the metric sees it (everything comes from the answer log, so a run can be re-scored and
/// shards merged without the data): its categories, the raw output, the parsed answer and whether it was right.
/// </summary>
/// <param name="Failed">The sample could not be answered (missing video, decoding error, time limit): its output is
/// empty, as the reference's model wrapper returns "" on any such error, and it is scored wrong.</param>
public sealed record ScoredSample(string Id, IReadOnlyDictionary<string, string> Categories, string Output, string? Answer, bool Correct, bool Failed);

/// <summary>Accuracy for one value of one category dimension (e.g. task_type = "Counting Problem").</summary>
/// <param name="Counted">Samples in the denominator (a task may leave some out, e.g. MVBench's empty outputs).</param>
public sealed record CategoryScore(string Dimension, string Value, int Samples, int Counted, int Correct, double Score);

/// <summary>A task's result: the headline score (percent) and its breakdowns, with the counts behind them.</summary>
/// <param name="Overall">The number the reference reports for the task, in percent.</param>
/// <param name="Samples">All samples scored.</param>
/// <param name="Counted">Samples in the headline denominator.</param>
/// <param name="Method">One line saying how <paramref name="Overall"/> is computed (printed in results.md).</param>
public sealed record TaskScore(double Overall, int Samples, int Counted, int Correct, IReadOnlyList<CategoryScore> Categories, string Method)
{
    /// <summary>Plain accuracy: correct / all, overall and per value of each dimension (values in ordinal order, so a merged run lists them as the single run does).</summary>
    public static TaskScore Accuracy(IReadOnlyList<ScoredSample> samples, IReadOnlyList<string> dimensions)
    {
        int correct = samples.Count(s => s.Correct);
        var categories = new List<CategoryScore>();
        foreach (var dimension in dimensions)
            foreach (var group in samples.Where(s => s.Categories.ContainsKey(dimension)).GroupBy(s => s.Categories[dimension]).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                int n = group.Count(), c = group.Count(s => s.Correct);
                categories.Add(new CategoryScore(dimension, group.Key, n, n, c, Percent(c, n)));
            }
        return new TaskScore(Percent(correct, samples.Count), samples.Count, samples.Count, correct, categories, "accuracy: correct / all samples");
    }

    /// <summary>100 * part / whole, 0 when whole is 0 (as the reference's aggregations do).</summary>
    public static double Percent(int part, int whole) => whole > 0 ? 100.0 * part / whole : 0;
}
