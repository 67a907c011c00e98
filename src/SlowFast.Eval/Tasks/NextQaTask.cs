using System.Globalization;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// NExT-QA test, multiple choice (lmms-eval task nextqa_mc_test, dataset lmms-lab/NExTQA config MC; the reference's
/// nextqa_qwen.sh runs the nextqa group, whose open-ended parts are scored by WUPS and are not provided here).
/// Annotations: <c>MC/test-*.parquet</c> with <c>video</c>, <c>qid</c>, <c>question</c>, <c>a0</c>..<c>a4</c>,
/// <c>answer</c> (the right option's index) and <c>type</c>; videos are <c>NExTVideo/VIDEO.mp4</c> (from videos.zip).
/// The reference reports accuracy only (the question type is kept in <see cref="EvalSample.Fields"/>).
/// </summary>
public sealed class NextQaTask : EvalTask
{
    private static readonly string[] Choices = ["A", "B", "C", "D", "E"];

    public override string Name => "nextqa_mc_test";
    public override string Description => "NExT-QA test multiple choice (8,564 questions), accuracy";

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        var rows = DatasetLayout.ReadSplit(dataDir, "test", "MC");
        var samples = rows.Select(row =>
        {
            var video = row.String("video");
            var answer = row.NumberOrNull("answer") ?? throw new UserError($"{row.Source}: record {row.Index} has no 'answer' field");
            if (answer < 0 || answer >= Choices.Length || answer != Math.Floor(answer))
                throw new UserError($"{row.Source}: record {row.Index}: 'answer' is {answer}, expected an option index 0-4");
            return new EvalSample
            {
                // qid counts a video's questions, so it is unique only together with the video.
                Id = video + "_" + row.String("qid"),
                Video = DatasetLayout.Video(dataDir, "NExTVideo", video),
                Question = row.String("question"),
                Options = Enumerable.Range(0, Choices.Length).Select(i => row.String($"a{i}")).ToList(),
                Gold = Choices[(int)answer],
                Fields = new Dictionary<string, string> { ["type"] = row.StringOrNull("type") ?? "" },
            };
        }).ToList();
        return DatasetLayout.RequireUniqueIds(samples, DatasetLayout.SourceOf(rows));
    }

    // utils.nextqa_doc_to_text_mc: a "?" is appended unless the trimmed question ends in "." (NExT-QA questions carry
    // no question mark); the untrimmed question is what is written. Options are trimmed and labelled A.-E.
    public override string Prompt(EvalSample sample)
    {
        var question = sample.Question.Trim().EndsWith('.') ? sample.Question : sample.Question + "?";
        return "Select the best answer to the following multiple-choice question based on the video.\n"
            + question + "\n" + string.Join("\n", sample.Options.Select((o, i) => Choices[i] + ". " + o.Trim()))
            + "\nAnswer with the option's letter from the given choices directly.";
    }

    // utils.nextqa_mc_process_results: the last-mention variant of the MMMU parser over A-E and the trimmed options.
    public override string? ExtractAnswer(string output, EvalSample sample) =>
        ChoiceParsing.ParseLastMention(output, Choices, sample.Options.Select(o => o.Trim()).ToList(), sample.Id);
}
