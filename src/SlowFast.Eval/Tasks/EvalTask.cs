namespace SlowFast.Eval.Tasks;

/// <summary>
/// One question of a benchmark, read from its annotation files. Everything a task needs later (to build the
/// prompt, parse the answer, break the score down) is here, so a logged sample can be re-scored without the data.
/// </summary>
public sealed record EvalSample
{
    /// <summary>Unique within the task (the benchmark's own id where it has one); the key of the answer log and of --resume.</summary>
    public required string Id { get; init; }

    /// <summary>The video (or the first of several images) relative to the data directory, or absolute.</summary>
    public required string Video { get; init; }

    /// <summary>The question as the annotation states it (no options, no template).</summary>
    public required string Question { get; init; }

    /// <summary>The answer choices as the annotation states them, in order (the task formats them).</summary>
    public IReadOnlyList<string> Options { get; init; } = [];

    /// <summary>The correct answer in the form the task scores it, usually a letter ("A").</summary>
    public required string Gold { get; init; }

    /// <summary>What the score is broken down by: dimension → value (e.g. "duration" → "short", "task_type" → "Counting Problem").</summary>
    public IReadOnlyDictionary<string, string> Categories { get; init; } = new Dictionary<string, string>();

    /// <summary>Only this part of the video is sampled (seconds), where the benchmark says so.</summary>
    public double? Start { get; init; }

    /// <inheritdoc cref="Start"/>
    public double? End { get; init; }

    /// <summary>Task-specific extras kept from the annotation (subtitles, candidate order, ...).</summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A benchmark as the reference's lmms-eval runs it: where its annotations are, the exact prompt text, how an answer is
/// read back out of free text, and which categories the score is reported by. Tasks only describe; the runner decodes
/// the video, asks the model (greedy, 256 new tokens, as the reference's model wrapper does for every task) and logs.
/// </summary>
public abstract class EvalTask
{
    /// <summary>The name given to --task (lower case, e.g. "videomme", "mvbench").</summary>
    public abstract string Name { get; }

    /// <summary>One line for --help: the benchmark and the split scored.</summary>
    public abstract string Description { get; }

    /// <summary>
    /// Reads the annotations under <paramref name="dataDir"/> (the benchmark's own files and field names). Throws a
    /// <see cref="UserError"/> naming the file expected when they are missing or malformed. Videos are not opened here:
    /// a missing video is the runner's to count and list.
    /// </summary>
    public abstract IReadOnlyList<EvalSample> Load(string dataDir);

    /// <summary>The user text the model receives after the video: the reference template's pre-prompt, question, options and post-prompt.</summary>
    public abstract string Prompt(EvalSample sample);

    /// <summary>The answer read from the model's raw output by this task's own rules; null when nothing could be read (scored wrong).</summary>
    public abstract string? ExtractAnswer(string output, EvalSample sample);

    /// <summary>Whether a parsed answer is right; by default it equals <see cref="EvalSample.Gold"/>.</summary>
    public virtual bool IsCorrect(string? answer, EvalSample sample) => answer != null && answer == sample.Gold;

    /// <summary>The <see cref="EvalSample.Categories"/> keys the report breaks accuracy down by, in report order.</summary>
    public virtual IReadOnlyList<string> CategoryDimensions => [];

    /// <summary>
    /// Called by the runner once the sample's video has been probed, before <see cref="Prompt"/>: a task whose prompt
    /// depends on the video itself (VideoMME's subtitles are picked at frames of the video) returns the sample with
    /// what it needs added to <see cref="EvalSample.Fields"/>. By default the sample is returned unchanged.
    /// </summary>
    public virtual EvalSample WithVideoFacts(EvalSample sample, VideoFacts video) => sample;

    /// <summary>
    /// The task's metric over answered samples, as the reference aggregates it: by default accuracy (percent) over all
    /// samples, and the same per value of each of <see cref="CategoryDimensions"/>. A task whose reference metric is
    /// something else (MVBench leaves empty outputs out and averages its sub-tasks by size) overrides this.
    /// </summary>
    public virtual TaskScore Score(IReadOnlyList<ScoredSample> samples) => TaskScore.Accuracy(samples, CategoryDimensions);

    /// <summary>
    /// For a benchmark whose answers are private: the file its own grader takes (name, content), made from the logged
    /// answers (sample id, video as in <see cref="EvalSample.Video"/>, parsed answer); null for the others.
    /// </summary>
    public virtual (string FileName, System.Text.Json.Nodes.JsonNode Content)? SubmissionFile(
        IReadOnlyList<(string Id, string Video, string? Answer)> answers) => null;
}

/// <summary>What the runner learnt from probing a sample's video: its frame count and average rate (PyAV's stream.frames and average_rate).</summary>
public sealed record VideoFacts(string Path, long TotalFrames, double FrameRate);
