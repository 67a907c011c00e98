namespace SlowFast.Eval.Tasks;

/// <summary>
/// TempCompass, multi-choice (lmms-eval task tempcompass_multi_choice, dataset lmms-lab/TempCompass config
/// multi-choice; the reference's tempcompass_qwen.sh runs the tempcompass group, whose yes/no, caption-matching and
/// captioning parts need a GPT judge and are not provided here). Annotations: <c>multi-choice/test-*.parquet</c> with
/// <c>video_id</c>, <c>question</c> (the options are already in it, one per line), <c>answer</c> (e.g. "A. slow")
/// and <c>dim</c>; videos are <c>videos/VIDEO_ID.mp4</c>. Accuracy overall and per temporal aspect (dim).
/// </summary>
public sealed class TempCompassTask : EvalTask
{
    private static readonly string[] Letters = ["A", "B", "C", "D"];

    public override string Name => "tempcompass_multi_choice";
    public override string Description => "TempCompass multi-choice, accuracy overall and per aspect (speed, direction, action, order, attribute change)";
    public override IReadOnlyList<string> CategoryDimensions => ["dim"];

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        var rows = DatasetLayout.ReadSplit(dataDir, "test", "multi-choice");
        var perVideoAndDim = new Dictionary<string, int>(StringComparer.Ordinal);
        var samples = rows.Select(row =>
        {
            var videoId = row.String("video_id");
            var dim = row.String("dim");
            var answer = row.String("answer");
            if (answer.Length == 0)
                throw new UserError($"{row.Source}: record {row.Index}: 'answer' is empty");
            var key = videoId + "/" + dim;
            var k = perVideoAndDim[key] = perVideoAndDim.GetValueOrDefault(key) + 1;
            return new EvalSample
            {
                // No question id in the dataset: a video's questions on one aspect are told apart by their order.
                Id = $"{key}#{k}",
                Video = DatasetLayout.Video(dataDir, "videos", videoId),
                Question = row.String("question"),
                Gold = answer[..1],
                Categories = new Dictionary<string, string> { ["dim"] = dim },
                Fields = new Dictionary<string, string> { ["answer"] = answer },
            };
        }).ToList();
        return DatasetLayout.RequireUniqueIds(samples, DatasetLayout.SourceOf(rows));
    }

    // utils.tempcompass_doc_to_text_multi_choice: the code's fixed pre-prompt, the question (options included) and
    // the yaml's multi-choice post-prompt.
    public override string Prompt(EvalSample sample) =>
        "Select the best answer to the following multiple-choice question based on the video.\n"
        + sample.Question + "\nAnswer with the option's letter from the given choices directly.";

    // utils.tempcompass_process_results_multi_choice, on the output exactly as generated (not trimmed): the whole
    // answer string, a bare letter A-D, or a reply starting "B." or "B)". Anything else goes to a GPT-3.5 judge in the
    // reference; there is no judge here, so it reads as no answer and counts wrong (as the reference also scores it
    // when the judge cannot be reached: its retries give up with rating 0).
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        if (output == sample.Fields.GetValueOrDefault("answer")) return sample.Gold;
        if (Letters.Contains(output)) return output;
        foreach (var letter in Letters)
            if (output.StartsWith(letter + ".", StringComparison.Ordinal) || output.StartsWith(letter + ")", StringComparison.Ordinal))
                return letter;
        return null;
    }
}
