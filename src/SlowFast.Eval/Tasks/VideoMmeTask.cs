using System.Text.RegularExpressions;
using SlowFast.Eval.Data;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// Video-MME (lmms-lab/Video-MME, split "test"), as the reference's lmms-eval task "videomme" runs it: 2,700
/// four-option questions about 900 videos, scored by accuracy, broken down by duration (short / medium / long),
/// domain, sub-category and task type.
/// </summary>
/// <remarks>
/// Data directory: the dataset as Hugging Face distributes it, unpacked:
/// <c>videomme/test-00000-of-00001.parquet</c> (fields videoID, question_id, duration, domain, sub_category,
/// task_type, question, options ["A. ...", ...], answer "A"), the videos as <c>data/{videoID}.mp4</c> (or .MP4, .mkv)
/// and, for <see cref="VideoMmeSubtitleTask"/>, the subtitles as <c>subtitle/{videoID}.srt</c>.
/// </remarks>
public class VideoMmeTask : EvalTask
{
    public override string Name => "videomme";
    public override string Description => "Video-MME (lmms-lab/Video-MME test, 2,700 questions), frames only";

    /// <summary>The reference's post_prompt for this task (its yaml's default lmms_eval_specific_kwargs).</summary>
    public const string PostPrompt = "Answer with the option's letter from the given choices directly.";

    public override IReadOnlyList<string> CategoryDimensions => ["duration", "domain", "sub_category", "task_type"];

    public override IReadOnlyList<EvalSample> Load(string dataDir)
    {
        string file = AnnotationFile.Find(dataDir, "videomme/test-00000-of-00001", "videomme/test", "test");
        var samples = new List<EvalSample>();
        foreach (var row in AnnotationFile.Read(file))
        {
            string videoId = row.String("videoID");
            var categories = new Dictionary<string, string>();
            foreach (var dimension in CategoryDimensions) categories[dimension] = row.String(dimension);
            var fields = new Dictionary<string, string>();
            string subtitle = Path.GetFullPath(Path.Combine(dataDir, "subtitle", videoId + ".srt"));
            if (File.Exists(subtitle)) fields[SubtitleFileField] = subtitle;
            samples.Add(new EvalSample
            {
                Id = row.String("question_id"),
                Video = VideoPath(dataDir, videoId),
                Question = row.String("question"),
                Options = row.StringList("options"),
                Gold = row.String("answer"),
                Categories = categories,
                Fields = fields,
            });
        }
        return samples;
    }

    /// <summary>
    /// "data/{videoID}.mp4", or the .MP4 or .mkv file when only that exists (the reference's doc_to_visual order);
    /// the .mp4 name when none does, for the runner to report missing.
    /// </summary>
    private static string VideoPath(string dataDir, string videoId)
    {
        foreach (var ext in new[] { ".mp4", ".MP4", ".mkv" })
        {
            string relative = Path.Combine("data", videoId + ext);
            if (File.Exists(Path.Combine(dataDir, relative))) return relative;
        }
        return Path.Combine("data", videoId + ".mp4");
    }

    /// <summary>
    /// "Select the best answer to the following multiple-choice question based on the video.\n{question}\n{options,
    /// one a line}\n{post prompt}" (the options already carry their "A. " letters).
    /// </summary>
    public override string Prompt(EvalSample sample) =>
        "Select the best answer to the following multiple-choice question based on the video.\n" + QuestionAndOptions(sample) + "\n" + PostPrompt;

    protected static string QuestionAndOptions(EvalSample sample) => sample.Question + "\n" + string.Join("\n", sample.Options);

    /// <summary>
    /// The reference's extract_characters_regex: strip, delete the answer phrases (two of its list entries are
    /// glued together by a missing comma, so "The best option is" and "Best answer:" only go when followed by the
    /// next phrase), give up on more than ten words without a capital A-D, else the first capital A, B, C or D
    /// anywhere in what is left ("Based on ..." reads as B, as in the reference).
    /// </summary>
    public override string? ExtractAnswer(string output, EvalSample sample)
    {
        string s = output.Trim();
        foreach (var prefix in AnswerPrefixes) s = s.Replace(prefix, "", StringComparison.Ordinal);
        var letter = Regex.Match(s, "[ABCD]");
        if (PythonSplit(s).Length > 10 && !letter.Success) return null;
        return letter.Success ? letter.Value : null;
    }

    internal static readonly string[] AnswerPrefixes =
    [
        "The best answer is",
        "The correct answer is",
        "The answer is",
        "The answer",
        "The best option is" + "The correct option is",
        "Best answer:" + "Best option:",
    ];

    /// <summary>Python's str.split(): runs of whitespace separate, no empty pieces.</summary>
    private static string[] PythonSplit(string s) => s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The <see cref="EvalSample.Fields"/> key of the subtitle file (full path), when the video has one.</summary>
    public const string SubtitleFileField = "subtitle_file";
}

/// <summary>
/// Video-MME with subtitles (lmms-eval task "videomme_w_subtitle"): the same questions, the prompt led by the
/// subtitle lines shown at 32 frames spread evenly over the video.
/// </summary>
public sealed class VideoMmeSubtitleTask : VideoMmeTask
{
    public override string Name => "videomme_w_subtitle";
    public override string Description => "Video-MME (lmms-lab/Video-MME test, 2,700 questions), frames and subtitles";

    /// <summary>The reference task's frame_num: subtitles are picked at this many frames whatever --frames is.</summary>
    public const int SubtitleFrames = 32;

    /// <summary>The <see cref="EvalSample.Fields"/> key of the subtitle text chosen for the prompt.</summary>
    public const string SubtitlesField = "subtitles";

    public override EvalSample WithVideoFacts(EvalSample sample, VideoFacts video)
    {
        string text = "No subtitles available";
        if (sample.Fields.TryGetValue(SubtitleFileField, out var path))
            text = SrtSubtitles.TextAtFrames(File.ReadAllText(path), video.TotalFrames, video.FrameRate, SubtitleFrames);
        var fields = new Dictionary<string, string>(sample.Fields) { [SubtitlesField] = text };
        return sample with { Fields = fields };
    }

    /// <summary>
    /// "This video's subtitles are listed below: \n{subtitles}\nSelect the best answer to the following
    /// multiple-choice question based on the video and the subtitles.\n{question}\n{options}\n{post prompt}".
    /// </summary>
    public override string Prompt(EvalSample sample)
    {
        string subtitles = sample.Fields.TryGetValue(SubtitlesField, out var s) ? s
            : throw new InvalidOperationException($"{sample.Id}: the subtitles are chosen from the video (WithVideoFacts) before the prompt is built");
        return "This video's subtitles are listed below: \n" + subtitles + "\n" +
               "Select the best answer to the following multiple-choice question based on the video and the subtitles.\n" +
               QuestionAndOptions(sample) + "\n" + PostPrompt;
    }
}
