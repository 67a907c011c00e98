using System.Globalization;
using System.Text.Json.Nodes;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// EgoSchema (lmms-lab/egoschema): five-way questions on three-minute egocentric clips. Annotations are the dataset's
/// parquet per config (<c>Subset/test-*.parquet</c>: the 500 questions with public answers; <c>GENERATION/test-*.parquet</c>:
/// all 5,031), fields <c>question_idx</c>, <c>question</c>, <c>video_idx</c>, <c>option</c> (five strings) and
/// <c>answer</c> (the right option's index as text); videos are <c>videos/VIDEO_IDX.mp4</c>.
/// </summary>
public abstract class EgoSchemaTaskBase : EvalTask
{
    private static readonly string[] Choices = ["A", "B", "C", "D", "E"];

    /// <summary>The dataset config folder ("Subset" or "GENERATION").</summary>
    protected abstract string Config { get; }

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        var rows = DatasetLayout.ReadSplit(dataDir, "test", Config);
        var samples = rows.Select(row =>
        {
            var options = row.StringList("option");
            if (options.Count != Choices.Length)
                throw new UserError($"{row.Source}: record {row.Index}: 'option' has {options.Count} entries, expected {Choices.Length}");
            var videoIdx = row.String("video_idx");
            return new EvalSample
            {
                Id = row.StringOrNull("question_idx") ?? videoIdx,
                Video = DatasetLayout.Video(dataDir, "videos", videoIdx),
                Question = row.String("question"),
                Options = options,
                Gold = Gold(row.StringOrNull("answer"), row.Source, row.Index),
                Fields = new Dictionary<string, string> { ["video_idx"] = videoIdx },
            };
        }).ToList();
        return DatasetLayout.RequireUniqueIds(samples, DatasetLayout.SourceOf(rows));
    }

    /// <summary>The answer index as a letter; "" where the file gives none (the full set keeps its answers private).</summary>
    private string Gold(string? answer, string source, long index)
    {
        if (string.IsNullOrEmpty(answer)) return RequiresAnswers ? throw new UserError($"{source}: record {index} has no 'answer' field") : "";
        if (!int.TryParse(answer, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) || i < 0 || i >= Choices.Length)
            throw new UserError($"{source}: record {index}: 'answer' is '{answer}', expected an option index 0-4");
        return Choices[i];
    }

    /// <summary>Whether every record must carry an answer (the subset) or may not (the full set).</summary>
    protected abstract bool RequiresAnswers { get; }

    // The template is written in utils.egoschema_doc_to_text, which ignores the yaml's (empty) pre/post prompts: a fixed
    // instruction, the question, "Options:" and the option strings as the annotation spells them, one per line.
    public override string Prompt(EvalSample sample) =>
        "Select the best answer to the following multiple-choice question based on the video.\n"
        + sample.Question + "\nOptions:\n" + string.Join("\n", sample.Options)
        + "\nAnswer with the option's letter from the given choices directly.";

    // utils.egoschema_process_results_generation: the MMMU parser's first-mention variant over letters A-E and the
    // option strings (stripped, prefix included); a parse that is not one of A-E maps to index -1 (wrong).
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        var parsed = ChoiceParsing.ParseFirstMention(output, Choices, sample.Options.Select(o => o.Trim()).ToList(), sample.Id);
        return Choices.Contains(parsed) ? parsed : null;
    }

    /// <summary>
    /// The reference's submission file for EgoSchema's grading server: <c>{video_idx: option index}</c>, -1 where no
    /// answer was read (utils.egoschema_aggregate_submissions).
    /// </summary>
    public static JsonObject Submission(IEnumerable<(EvalSample Sample, string? Answer)> answers)
    {
        var result = new JsonObject();
        foreach (var (sample, answer) in answers)
            result[sample.Fields.GetValueOrDefault("video_idx", sample.Id)] = answer == null ? -1 : Array.IndexOf(Choices, answer);
        return result;
    }
}

/// <summary>EgoSchema, the 500-question subset whose answers are public (lmms-eval task egoschema_subset): scored here.</summary>
public sealed class EgoSchemaSubsetTask : EgoSchemaTaskBase
{
    public override string Name => "egoschema_subset";
    public override string Description => "EgoSchema subset with answers (500 questions), accuracy";
    protected override string Config => "Subset";
    protected override bool RequiresAnswers => true;
}

/// <summary>
/// EgoSchema, the full 5,031 questions (lmms-eval task egoschema, the one the reference's egoschema_qwen.sh runs). Its
/// answers are not public: the reference only writes a submission file for the benchmark's server (see
/// <see cref="EgoSchemaTaskBase.Submission"/>). Samples without an answer have an empty <see cref="EvalSample.Gold"/>
/// and are never counted correct.
/// </summary>
public sealed class EgoSchemaTask : EgoSchemaTaskBase
{
    public override string Name => "egoschema";
    public override string Description => "EgoSchema full set (5,031 questions; answers private: submission file)";
    protected override string Config => "GENERATION";
    protected override bool RequiresAnswers => false;

    public override bool IsCorrect(string? answer, EvalSample sample) => sample.Gold.Length > 0 && base.IsCorrect(answer, sample);

    /// <summary>submission.json for the grading server: <see cref="EgoSchemaTaskBase.Submission"/> over the logged answers.</summary>
    public override (string FileName, JsonNode Content)? SubmissionFile(IReadOnlyList<(string Id, string Video, string? Answer)> answers) =>
        ("submission.json", Submission(answers.Select(a => (new EvalSample
        {
            Id = a.Id, Video = a.Video, Question = "", Gold = "",
            Fields = new Dictionary<string, string> { ["video_idx"] = Path.GetFileNameWithoutExtension(a.Video) },
        }, a.Answer))));
}
