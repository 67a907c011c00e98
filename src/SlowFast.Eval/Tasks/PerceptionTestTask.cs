using System.Globalization;
using System.Text.RegularExpressions;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// Perception Test validation, multiple choice (lmms-eval task perceptiontest_val_mc, dataset
/// lmms-lab/PerceptionTest_Val). Annotations: <c>mc_question_val/validation-*.parquet</c> with <c>video_name</c>,
/// <c>question_id</c>, <c>question</c>, <c>options</c> (three), <c>answer_id</c>, <c>area</c>, <c>reasoning</c>,
/// <c>tag</c>; videos are <c>videos/VIDEO_NAME.mp4</c>. The reference reports accuracy only, with no breakdown (area
/// and reasoning are kept in <see cref="EvalSample.Fields"/>).
/// </summary>
public sealed partial class PerceptionTestTask : EvalTask
{
    public override string Name => "perceptiontest_val_mc";
    public override string Description => "Perception Test validation multiple choice (19,140 questions), accuracy";

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        var rows = DatasetLayout.ReadSplit(dataDir, "validation", "mc_question_val");
        var samples = rows.Select(row =>
        {
            var videoName = row.String("video_name");
            var options = row.StringList("options");
            var answer = row.String("answer_id");
            if (!int.TryParse(answer, NumberStyles.Integer, CultureInfo.InvariantCulture, out var a) || a < 0 || a >= options.Count)
                throw new UserError($"{row.Source}: record {row.Index}: 'answer_id' is '{answer}', expected an index below {options.Count}");
            return new EvalSample
            {
                // question_id counts a video's questions, so it is unique only together with the video.
                Id = videoName + "/" + row.String("question_id"),
                Video = DatasetLayout.Video(dataDir, "videos", videoName),
                Question = row.String("question"),
                Options = options,
                Gold = DatasetLayout.Letter(a),
                Fields = new Dictionary<string, string>
                {
                    ["area"] = row.StringOrNull("area") ?? "",
                    ["reasoning"] = row.StringOrNull("reasoning") ?? "",
                },
            };
        }).ToList();
        return DatasetLayout.RequireUniqueIds(samples, DatasetLayout.SourceOf(rows));
    }

    // utils.perceptiontest_val_doc_to_text with the yaml's pre_prompt: options labelled A., B. and then C. for every
    // further one (the reference's labelling; the dataset has three options), and the post-prompt the code sets.
    public override string Prompt(EvalSample sample) =>
        "Select the best answer to the following multiple-choice question based on the video.\n"
        + sample.Question + string.Concat(sample.Options.Select((o, i) => "\n" + (i == 0 ? "A" : i == 1 ? "B" : "C") + ". " + o))
        + "\nAnswer with the option's letter from the given choices directly.";

    // utils.perceptiontest_val_process_results_mc: the first upper-case A-D standing alone as a word in the trimmed
    // output, so "A man opens the door" reads as A, and "D" (no fourth option) is always wrong.
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        var match = LoneLetter().Match(output.Trim());
        return match.Success ? match.Groups[1].Value : null;
    }

    [GeneratedRegex(@"\b([A-D])\b")]
    private static partial Regex LoneLetter();
}
