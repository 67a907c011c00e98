#pragma warning disable IDE1006 // column names as the benchmark spells them
namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of longvideobench/LongVideoBench (validation-*.parquet): five option slots, "N/A" when unused.</summary>
public sealed class LongVideoBenchRow
{
    public string video_id { get; set; } = "";
    public string id { get; set; } = "";
    public string video_path { get; set; } = "";
    public string subtitle_path { get; set; } = "";
    public long correct_choice { get; set; }
    public string question { get; set; } = "";
    public string option0 { get; set; } = "N/A";
    public string option1 { get; set; } = "N/A";
    public string option2 { get; set; } = "N/A";
    public string option3 { get; set; } = "N/A";
    public string option4 { get; set; } = "N/A";
    public double duration { get; set; }
    public long duration_group { get; set; }
    public string question_category { get; set; } = "";
    public string topic_category { get; set; } = "";
    public double starting_timestamp_for_subtitles { get; set; }
}

/// <summary>Three LongVideoBench questions on two videos, two duration groups, two categories; one has three options.</summary>
public sealed class LongVideoBenchMini : IMiniBenchmark
{
    public static readonly List<LongVideoBenchRow> Rows =
    [
        new() { video_id = "86CxyhFV9MI", id = "86CxyhFV9MI_0", video_path = "86CxyhFV9MI.mp4", subtitle_path = "86CxyhFV9MI_en.json", correct_choice = 1,
            question = "What vehicle appears when the narrator says hello?", option0 = "a red car", option1 = "a blue bus", option2 = "a green bike", option3 = "a yellow boat",
            duration = 2, duration_group = 15, question_category = "S2E", topic_category = "NP-News-Programs" },
        new() { video_id = "86CxyhFV9MI", id = "86CxyhFV9MI_1", video_path = "86CxyhFV9MI.mp4", subtitle_path = "86CxyhFV9MI_en.json", correct_choice = 2,
            question = "What happens after the bus leaves?", option0 = "it rains", option1 = "a dog barks", option2 = "the lights go out",
            duration = 2, duration_group = 15, question_category = "E3E", topic_category = "NP-News-Programs" },
        new() { video_id = "q2lYGhbLs9k", id = "q2lYGhbLs9k_0", video_path = "q2lYGhbLs9k.mp4", subtitle_path = "q2lYGhbLs9k_en.json", correct_choice = 0,
            question = "Which colour is the scene at the start?", option0 = "red", option1 = "green", option2 = "blue", option3 = "grey", option4 = "black",
            duration = 2, duration_group = 600, question_category = "S2E", topic_category = "KS-Knowledge-Science" },
    ];

    public string Task => "longvideobench_val_v";

    public int Write(string dataDir)
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(dataDir, "validation-00000-of-00001.parquet"), Rows);
        foreach (var path in Rows.Select(r => r.video_path).Distinct())
            MiniBenchmarkFiles.Video(Path.Combine(dataDir, "videos", path));
        return Rows.Count;
    }
}
