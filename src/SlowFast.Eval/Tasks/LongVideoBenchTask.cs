using System.Globalization;
using SlowFast.Eval.Data;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// LongVideoBench validation, video only (lmms-eval task longvideobench_val_v, the variant the reference's
/// longvideobench_qwen.sh runs; the interleaved-subtitle variant longvideobench_val_i is not run by the reference and
/// not provided). Annotations: the dataset's <c>validation-*.parquet</c> (fields <c>id</c>, <c>video_path</c>,
/// <c>question</c>, <c>option0</c>..<c>option4</c> with "N/A" for unused ones, <c>correct_choice</c>,
/// <c>duration_group</c>, <c>question_category</c>) or its <c>lvb_val.json</c> (the same with a <c>candidates</c>
/// list); videos are <c>videos/VIDEO_PATH</c> (from the videos.tar parts). The reference's overall figure averages
/// the duration-group and question-category breakdowns weighted by size, which (both covering every question once)
/// is plain accuracy over all questions.
/// </summary>
public sealed class LongVideoBenchTask : EvalTask
{
    private const string Unused = "N/A";

    public override string Name => "longvideobench_val_v";
    public override string Description => "LongVideoBench validation, video only (1,337 questions), accuracy by duration group and question category";
    public override IReadOnlyList<string> CategoryDimensions => ["duration_group", "question_category"];

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        // The parquet the dataset's loader reads, else the JSON release beside it.
        var json = Path.Combine(dataDir, "lvb_val.json");
        var rows = DatasetLayout.FindSplit(dataDir, "validation", "", "data").Files == null && File.Exists(json)
            ? AnnotationFile.Read(json)
            : DatasetLayout.ReadSplit(dataDir, "validation", "", "data");

        var samples = rows.Select(row =>
        {
            // Both files keep the five slots; the prompt lists every slot that is not "N/A", while the parser offers
            // the letters before the first "N/A" (utils.longvideobench_doc_to_text vs. _process_results).
            var slots = row.Has("candidates")
                ? row.StringList("candidates")
                : Enumerable.Range(0, 5).Select(i => row.StringOrNull($"option{i}") ?? Unused).ToList();
            var options = slots.Where(s => s != Unused).ToList();
            var parsedCount = slots.TakeWhile(s => s != Unused).Count();
            var correct = row.NumberOrNull("correct_choice") ?? throw new UserError($"{row.Source}: record {row.Index} has no 'correct_choice' field");
            if (correct < 0 || correct >= options.Count || correct != Math.Floor(correct))
                throw new UserError($"{row.Source}: record {row.Index}: 'correct_choice' is {correct}, expected an index below {options.Count}");
            return new EvalSample
            {
                Id = row.String("id"),
                Video = Path.Combine("videos", row.String("video_path")),
                Question = row.String("question"),
                Options = options,
                Gold = DatasetLayout.Letter((int)correct),
                Categories = new Dictionary<string, string>
                {
                    ["duration_group"] = row.String("duration_group"),
                    ["question_category"] = row.String("question_category"),
                },
                Fields = new Dictionary<string, string> { ["parsed_choices"] = parsedCount.ToString(CultureInfo.InvariantCulture) },
            };
        }).ToList();
        return DatasetLayout.RequireUniqueIds(samples, DatasetLayout.SourceOf(rows));
    }

    // The yaml's default pre_prompt and post_prompt (the latter ends in a newline, so the prompt does too) around the
    // question and "A. option" lines (utils.longvideobench_doc_to_text).
    public override string Prompt(EvalSample sample) =>
        "Select the best answer to the following multiple-choice question based on the video.\n"
        + sample.Question + "\n" + string.Join("\n", sample.Options.Select((o, i) => DatasetLayout.Letter(i) + ". " + o))
        + "\nAnswer with the option's letter from the given choices directly.\n";

    // utils.parse_multi_choice_response, the last-mention variant, over the letters before the first "N/A".
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        var count = int.Parse(sample.Fields.GetValueOrDefault("parsed_choices", sample.Options.Count.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        if (count == 0) return null;
        var choices = Enumerable.Range(0, count).Select(DatasetLayout.Letter).ToList();
        return ChoiceParsing.ParseLastMention(output, choices, sample.Options.Take(count).ToList(), sample.Id);
    }
}
