#pragma warning disable IDE1006 // column names as the benchmark spells them
namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of MLVU dev (sy1998/temp, mlvu/test-*.parquet): options are lines of the question text.</summary>
public sealed class MlvuRow
{
    public string video_name { get; set; } = "";
    public string question { get; set; } = "";
    public string answer { get; set; } = "";
    public string task_type { get; set; } = "";
    public double duration { get; set; }
}

/// <summary>Four MLVU questions on two videos, in two task types; one question text has a blank line and ends in ".".</summary>
public sealed class MlvuMini : IMiniBenchmark
{
    public static readonly List<MlvuRow> Rows =
    [
        new() { video_name = "movie101_1.mp4", question = "What is the main topic of the video\n(A) cooking\n(B) sports\n(C) travel\n(D) music", answer = "B", task_type = "topic_reasoning", duration = 2 },
        new() { video_name = "movie101_1.mp4", question = "What did the man hold after the rain?\n\n(A) an umbrella\n(B) a cup\n(C) a book\n(D) a phone", answer = "A", task_type = "plotQA", duration = 2 },
        new() { video_name = "needle_7.mp4", question = "Choose the colour of the inserted frame.\n(A) red\n(B) green\n(C) blue\n(D) white", answer = "C", task_type = "plotQA", duration = 2 },
        new() { video_name = "needle_7.mp4", question = "What is the video about?\n(A) a park\n(B) a lab\n(C) a road\n(D) a shop", answer = "D", task_type = "topic_reasoning", duration = 2 },
    ];

    public string Task => "mlvu";

    public int Write(string dataDir)
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(dataDir, "mlvu", "test-00000-of-00001.parquet"), Rows);
        foreach (var name in Rows.Select(r => r.video_name).Distinct())
            MiniBenchmarkFiles.Video(Path.Combine(dataDir, name));
        return Rows.Count;
    }
}
