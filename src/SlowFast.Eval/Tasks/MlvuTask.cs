namespace SlowFast.Eval.Tasks;

/// <summary>
/// MLVU dev, multiple choice (lmms-eval task mlvu; the reference loads the Hugging Face dataset sy1998/temp, since
/// renamed sy1998/MLVU_dev). Annotations: <c>mlvu/test-*.parquet</c> with <c>video_name</c>, <c>question</c> (the
/// question line followed by four "(A) ..." option lines), <c>answer</c> (a letter) and <c>task_type</c>; videos are
/// <c>DATA/VIDEO_NAME</c> as the dataset's video zips unpack.
/// </summary>
public sealed class MlvuTask : EvalTask
{
    /// <summary>The seven task types of the multiple-choice dev set, in the reference's report order.</summary>
    public static readonly IReadOnlyList<string> TaskTypes = ["topic_reasoning", "ego", "plotQA", "needle", "order", "count", "anomaly_reco"];

    public override string Name => "mlvu";
    public override string Description => "MLVU dev multiple choice (7 task types), accuracy";
    public override IReadOnlyList<string> CategoryDimensions => ["task_type"];

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        var rows = DatasetLayout.ReadSplit(dataDir, "test", "mlvu", "");
        var perVideo = new Dictionary<string, int>(StringComparer.Ordinal);
        var samples = rows.Select(row =>
        {
            var videoName = row.String("video_name");
            var (question, options) = SplitQuestion(row.String("question"), row.Source, row.Index);
            var taskType = row.String("task_type");
            if (!TaskTypes.Contains(taskType))
                throw new UserError($"{row.Source}: record {row.Index}: 'task_type' is '{taskType}', expected one of {string.Join(", ", TaskTypes)}");
            var k = perVideo[videoName] = perVideo.GetValueOrDefault(videoName) + 1;
            return new EvalSample
            {
                // The dataset has no question id: a video's questions are told apart by their order in the file.
                Id = row.StringOrNull("question_id") ?? $"{videoName}#{k}",
                Video = videoName,
                Question = question,
                Options = options,
                Gold = row.String("answer"),
                Categories = new Dictionary<string, string> { ["task_type"] = taskType },
            };
        }).ToList();
        return DatasetLayout.RequireUniqueIds(samples, DatasetLayout.SourceOf(rows));
    }

    /// <summary>
    /// utils.extract_question_and_options: non-empty lines; the first is the question, the next four the options, each
    /// of which must contain "(A)".."(D)" (the first of those it contains is rewritten "A." and so on; any other line
    /// is an error in the reference too).
    /// </summary>
    private static (string Question, IReadOnlyList<string> Options) SplitQuestion(string text, string source, long index)
    {
        var lines = text.Split('\n').Where(l => l.Length > 0).ToList();
        if (lines.Count < 2)
            throw new UserError($"{source}: record {index}: 'question' has no option lines");
        var options = lines.Skip(1).Take(4).Select(line =>
        {
            foreach (var letter in new[] { "A", "B", "C", "D" })
                if (line.Contains($"({letter})", StringComparison.Ordinal))
                    return line.Replace($"({letter})", $"{letter}.", StringComparison.Ordinal);
            throw new UserError($"{source}: record {index}: 'question' option line '{line}' has no (A)-(D) label");
        }).ToList();
        return (lines[0], options);
    }

    // utils.mlvu_doc_to_text: a fixed instruction, the question with "?" added unless it ends in "." or "?", the
    // options one per line, and the fixed answer instruction.
    public override string Prompt(EvalSample sample)
    {
        var question = sample.Question.EndsWith('.') || sample.Question.EndsWith('?') ? sample.Question : sample.Question + "?";
        return "Select the best answer to the following multiple-choice question based on the video.\n"
            + question + "\n" + string.Join("\n", sample.Options)
            + "\nAnswer with the option's letter from the given choices directly.";
    }

    // utils.extract_characters_regex: after trimming, the character before the first ")" if there is one, else the
    // first character, compared case-sensitively with the answer letter ("b" or "The answer is B" are wrong). The
    // reference crashes on an empty answer or a leading ")"; here those read as no answer.
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        var s = output.Trim();
        var bracket = s.IndexOf(')');
        if (bracket >= 0) return bracket > 0 ? s[bracket - 1].ToString() : null;
        return s.Length > 0 ? s[0].ToString() : null;
    }
}
