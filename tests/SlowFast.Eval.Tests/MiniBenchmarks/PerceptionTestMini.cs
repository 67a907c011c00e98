#pragma warning disable IDE1006 // column names as the benchmark spells them
namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of lmms-lab/PerceptionTest_Val (mc_question_val/validation-*.parquet).</summary>
public sealed class PerceptionTestRow
{
    public string video_name { get; set; } = "";
    public string question { get; set; } = "";
    public string question_id { get; set; } = "";
    public List<string> options { get; set; } = [];
    public string answer_id { get; set; } = "";
    public string area { get; set; } = "";
    public string reasoning { get; set; } = "";
    public List<string> tag { get; set; } = [];
}

/// <summary>Three Perception Test questions on two videos; question ids repeat across videos, as in the benchmark.</summary>
public sealed class PerceptionTestMini : IMiniBenchmark
{
    public static readonly List<PerceptionTestRow> Rows =
    [
        new() { video_name = "video_10909", question_id = "0", question = "Which object did the person put down first?", options = ["the cup", "the plate", "the spoon"],
            answer_id = "1", area = "memory", reasoning = "descriptive", tag = ["sequencing"] },
        new() { video_name = "video_10909", question_id = "1", question = "How many objects are on the table at the end?", options = ["2", "3", "4"],
            answer_id = "2", area = "abstraction", reasoning = "descriptive", tag = ["counting"] },
        new() { video_name = "video_7012", question_id = "0", question = "Is the camera moving?", options = ["yes", "no", "I don't know"],
            answer_id = "0", area = "physics", reasoning = "explanatory", tag = ["motion"] },
    ];

    public string Task => "perceptiontest_val_mc";

    public int Write(string dataDir)
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(dataDir, "mc_question_val", "validation-00000-of-00001.parquet"), Rows);
        foreach (var name in Rows.Select(r => r.video_name).Distinct())
            MiniBenchmarkFiles.Video(Path.Combine(dataDir, "videos", name + ".mp4"));
        return Rows.Count;
    }
}
