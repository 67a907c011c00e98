#pragma warning disable IDE1006 // column names as the benchmark spells them
namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of lmms-lab/egoschema (Subset and GENERATION configs).</summary>
public sealed class EgoSchemaRow
{
    public string question_idx { get; set; } = "";
    public string question { get; set; } = "";
    public string video_idx { get; set; } = "";
    public List<string> option { get; set; } = [];
    public string? answer { get; set; }
}

/// <summary>Three EgoSchema questions, one per video (as in the benchmark); one video is spelled .MP4.</summary>
public static class EgoSchemaMiniData
{
    public static readonly string[] Options = ["A. c cleans the kitchen", "B. c cooks a meal", "C. c repairs a bicycle", "D. c paints a wall", "E. c reads a book"];

    public static List<EgoSchemaRow> Rows(bool withAnswers) =>
    [
        new() { question_idx = "q-001", video_idx = "ego-video-1", question = "What is the overall goal of c's actions in the video?", option = [.. Options], answer = withAnswers ? "1" : "" },
        new() { question_idx = "q-002", video_idx = "ego-video-2", question = "Which tool does c use most often?", option = [.. Options], answer = withAnswers ? "4" : null },
        new() { question_idx = "q-003", video_idx = "ego-video-3", question = "How does c's activity change over time?", option = [.. Options], answer = withAnswers ? "0" : "" },
    ];

    public static int Write(string dataDir, string config, bool withAnswers)
    {
        var rows = Rows(withAnswers);
        MiniBenchmarkFiles.Parquet(Path.Combine(dataDir, config, "test-00000-of-00001.parquet"), rows);
        foreach (var row in rows)
            MiniBenchmarkFiles.Video(Path.Combine(dataDir, "videos", row.video_idx + (row.video_idx.EndsWith('2') ? ".MP4" : ".mp4")));
        return rows.Count;
    }
}

public sealed class EgoSchemaSubsetMini : IMiniBenchmark
{
    public string Task => "egoschema_subset";
    public int Write(string dataDir) => EgoSchemaMiniData.Write(dataDir, "Subset", withAnswers: true);
}

public sealed class EgoSchemaFullMini : IMiniBenchmark
{
    public string Task => "egoschema";
    public int Write(string dataDir) => EgoSchemaMiniData.Write(dataDir, "GENERATION", withAnswers: false);
}
