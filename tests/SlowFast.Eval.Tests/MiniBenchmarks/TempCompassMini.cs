#pragma warning disable IDE1006 // column names as the benchmark spells them
namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of lmms-lab/TempCompass, config multi-choice (multi-choice/test-*.parquet).</summary>
public sealed class TempCompassRow
{
    public string video_id { get; set; } = "";
    public string question { get; set; } = "";
    public string answer { get; set; } = "";
    public string dim { get; set; } = "";
}

/// <summary>Four TempCompass questions on two videos in two aspects; one video has two questions on the same aspect.</summary>
public sealed class TempCompassMini : IMiniBenchmark
{
    public static readonly List<TempCompassRow> Rows =
    [
        new() { video_id = "1025370803", dim = "speed", question = "What is the speed of the car?\nA. slow\nB. fast\nC. normal\nD. not moving", answer = "B. fast" },
        new() { video_id = "1025370803", dim = "speed", question = "How does the car's speed change?\nA. it speeds up\nB. it slows down\nC. it stays the same", answer = "C. it stays the same" },
        new() { video_id = "1025370803", dim = "direction", question = "Which way does the car move?\nA. left\nB. right\nC. up\nD. down", answer = "A. left" },
        new() { video_id = "8829017312", dim = "direction", question = "Which way does the camera pan?\nA. left\nB. right", answer = "B. right" },
    ];

    public string Task => "tempcompass_multi_choice";

    public int Write(string dataDir)
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(dataDir, "multi-choice", "test-00000-of-00001.parquet"), Rows);
        foreach (var id in Rows.Select(r => r.video_id).Distinct())
            MiniBenchmarkFiles.Video(Path.Combine(dataDir, "videos", id + ".mp4"));
        return Rows.Count;
    }
}
