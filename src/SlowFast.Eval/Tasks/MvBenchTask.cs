using System.Text.RegularExpressions;
using SlowFast.Eval.Data;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// MVBench (OpenGVLab/MVBench), as the reference's lmms-eval group "mvbench" runs it: 20 sub-tasks of 2-5 option
/// questions (4,000 in all). Each sub-task's score is the accuracy over the answers that are not empty; the group
/// score is the sub-task scores averaged with their sample counts as weights.
/// </summary>
/// <remarks>
/// Data directory: the dataset as lmms-eval unpacks it: <c>json/{sub_task}.json</c> (fields video, question,
/// candidates, answer = the text of the right candidate) and the videos under the folder each sub-task names
/// (<see cref="VideoFolders"/>, e.g. <c>ssv2_video/</c>; also found under <c>video/</c>, as the Hugging Face
/// repository lays the folders out). Episodic reasoning's "videos" are folders of frame images.
/// </remarks>
public sealed partial class MvBenchTask : EvalTask
{
    public override string Name => "mvbench";
    public override string Description => "MVBench (OpenGVLab/MVBench, 20 sub-tasks, 4,000 questions)";

    public const string PostPrompt = "Answer with the option's letter from the given choices directly.";
    public const string SystemPrompt = "Select the best answer to the following multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) of the correct option.";

    /// <summary>The category dimension: the sub-task.</summary>
    public const string SubTaskDimension = "task";

    /// <summary>The sub-tasks in the order of the reference's group file, each with the folder its videos are in.</summary>
    public static readonly IReadOnlyList<(string SubTask, string Folder)> VideoFolders =
    [
        ("action_sequence", "star/Charades_v1_480/"),
        ("moving_count", "clevrer/video_validation/"),
        ("action_prediction", "star/Charades_v1_480/"),
        ("episodic_reasoning", "tvqa/frames_fps3_hq/"),
        ("action_antonym", "ssv2_video/"),
        ("action_count", "perception/videos/"),
        ("scene_transition", "scene_qa/video/"),
        ("object_shuffle", "perception/videos/"),
        ("object_existence", "clevrer/video_validation/"),
        ("fine_grained_pose", "nturgbd/"),
        ("unexpected_action", "FunQA_test/test/"),
        ("moving_direction", "clevrer/video_validation/"),
        ("state_change", "perception/videos/"),
        ("object_interaction", "star/Charades_v1_480/"),
        ("character_order", "perception/videos/"),
        ("action_localization", "sta/sta_video/"),
        ("counterfactual_inference", "clevrer/video_validation/"),
        ("fine_grained_action", "Moments_in_Time_Raw/videos/"),
        ("moving_attribute", "clevrer/video_validation/"),
        ("egocentric_navigation", "vlnqa/"),
    ];

    public override IReadOnlyList<string> CategoryDimensions => [SubTaskDimension];

    /// <summary>Every sub-task whose json/{sub_task}.json exists (at least one must); ids are "{sub_task}/{index}".</summary>
    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        if (!Directory.Exists(dataDir)) throw new UserError($"{dataDir}: data directory not found");
        var samples = new List<EvalSample>();
        int found = 0;
        foreach (var (subTask, folder) in VideoFolders)
        {
            string file = Path.Combine(dataDir, "json", subTask + ".json");
            if (!File.Exists(file)) continue;
            found++;
            var rows = AnnotationFile.Read(file);
            for (int i = 0; i < rows.Count; i++)
            {
                var row = rows[i];
                var candidates = row.StringList("candidates");
                string answer = row.String("answer");
                int right = candidates.ToList().IndexOf(answer);
                samples.Add(new EvalSample
                {
                    Id = $"{subTask}/{i}",
                    Video = VideoPath(dataDir, folder, row.String("video")),
                    Question = row.String("question"),
                    Options = candidates,
                    // An answer that is none of the candidates has no letter: nothing equals it.
                    Gold = right >= 0 ? ((char)('A' + right)).ToString() : "",
                    Categories = new Dictionary<string, string> { [SubTaskDimension] = subTask },
                });
            }
        }
        if (found == 0)
            throw new UserError($"{dataDir}: no MVBench annotations (expected json/<sub_task>.json, e.g. json/{VideoFolders[0].SubTask}.json)");
        return samples;
    }

    private static string VideoPath(string dataDir, string folder, string video)
    {
        string relative = Path.Combine(folder, video);
        string underVideo = Path.Combine("video", relative);
        return !Path.Exists(Path.Combine(dataDir, relative)) && Path.Exists(Path.Combine(dataDir, underVideo)) ? underVideo : relative;
    }

    /// <summary>"{system prompt}\n{question}\nA. {c1}\nB. {c2}\n...{post prompt}" (each option line ends with a newline).</summary>
    public override string Prompt(EvalSample sample)
    {
        var options = string.Concat(sample.Options.Select((c, i) => $"{(char)('A' + i)}. {c}\n"));
        return SystemPrompt + "\n" + sample.Question + "\n" + options + PostPrompt;
    }

    /// <summary>
    /// The reference's mcq_acc reading of an answer: "X. text" (X in A-E, any case) is X; otherwise the text is
    /// flattened (newlines and tabs to spaces, punctuation removed or spaced, up to 32 periods not before a digit
    /// removed, quotes and brackets stripped, lower-cased) and the first standalone letter a-e is the answer
    /// (so "this is a cat" reads as A, as in the reference); with none, the flattened text itself, which matches
    /// no letter. Null for an empty result.
    /// </summary>
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        string read = ReadAnswer(output);
        return read.Length == 0 ? null : read;
    }

    internal static string ReadAnswer(string answer)
    {
        var option = OptionLine().Match(answer.Trim());
        if (option.Success) return option.Groups[1].Value.ToUpperInvariant();
        string s = answer.Replace("\n", " ", StringComparison.Ordinal).Replace("\t", " ", StringComparison.Ordinal).Trim();
        s = ProcessPunctuation(s);
        s = s.Trim('\'').Trim('"').Trim(')').Trim('(').Trim().ToLowerInvariant();
        var letter = StandaloneLetter().Match(s);
        return letter.Success ? letter.Groups[1].Value.ToUpperInvariant() : s;
    }

    private static readonly string[] Punctuation = [";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"];

    /// <summary>
    /// Each mark is deleted when the original text has it beside a space (or has a digit-comma-digit anywhere), else
    /// replaced by a space; then periods not followed by a digit are deleted, at most 32 of them (the reference
    /// passes re.UNICODE where re.sub takes its count).
    /// </summary>
    private static string ProcessPunctuation(string text)
    {
        string result = text;
        bool digitComma = CommaBetweenDigits().IsMatch(text);
        foreach (var p in Punctuation)
            result = text.Contains(p + " ", StringComparison.Ordinal) || text.Contains(" " + p, StringComparison.Ordinal) || digitComma
                ? result.Replace(p, "", StringComparison.Ordinal)
                : result.Replace(p, " ", StringComparison.Ordinal);
        return PeriodNotBeforeDigit().Replace(result, "", 32);
    }

    /// <summary>Right when the read answer equals the right letter read the same way (an answer that is none of the candidates has no letter, and nothing is right).</summary>
    public override bool IsCorrect(string? answer, EvalSample sample) => answer != null && sample.Gold.Length > 0 && answer == ReadAnswer(sample.Gold);

    /// <summary>
    /// Per sub-task: accuracy over the samples whose raw output is not empty (the reference's aggregation skips
    /// empty predictions, which is what its model wrapper returns for a video it cannot read or a timeout); 0 when
    /// none is. Overall: the sub-task scores weighted by their sample counts (lmms-eval's group average).
    /// </summary>
    public override TaskScore Score(IReadOnlyList<ScoredSample> samples)
    {
        var categories = new List<CategoryScore>();
        double weighted = 0;
        int counted = 0, correct = 0;
        var order = VideoFolders.Select((v, i) => (v.SubTask, i)).ToDictionary(x => x.SubTask, x => x.i);
        foreach (var group in samples.GroupBy(s => s.Categories.GetValueOrDefault(SubTaskDimension, ""))
                     .OrderBy(g => order.GetValueOrDefault(g.Key, int.MaxValue)).ThenBy(g => g.Key, StringComparer.Ordinal))
        {
            int n = group.Count();
            int answered = group.Count(s => s.Output.Length > 0);
            int right = group.Count(s => s.Output.Length > 0 && s.Correct);
            double score = TaskScore.Percent(right, answered);
            categories.Add(new CategoryScore(SubTaskDimension, group.Key, n, answered, right, score));
            weighted += score * n;
            counted += answered;
            correct += right;
        }
        double overall = samples.Count > 0 ? weighted / samples.Count : 0;
        return new TaskScore(overall, samples.Count, counted, correct, categories,
            "mean of the sub-task accuracies weighted by sub-task size; each sub-task's accuracy leaves out empty outputs");
    }

    [GeneratedRegex(@"^([A-E])\.\s*(.+)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex OptionLine();

    [GeneratedRegex(@"\b([A-E])\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex StandaloneLetter();

    [GeneratedRegex(@"(\d)(\,)(\d)")]
    private static partial Regex CommaBetweenDigits();

    [GeneratedRegex(@"(?!<=\d)(\.)(?!\d)")]
    private static partial Regex PeriodNotBeforeDigit();
}
