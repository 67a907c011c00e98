#pragma warning disable IDE1006 // column names as the benchmark spells them
namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of lmms-lab/NExTQA, config MC (MC/test-*.parquet); video and answer are numbers.</summary>
public sealed class NextQaRow
{
    public long video { get; set; }
    public long frame_count { get; set; }
    public long width { get; set; }
    public long height { get; set; }
    public string question { get; set; } = "";
    public long answer { get; set; }
    public long qid { get; set; }
    public string type { get; set; } = "";
    public string a0 { get; set; } = "";
    public string a1 { get; set; } = "";
    public string a2 { get; set; } = "";
    public string a3 { get; set; } = "";
    public string a4 { get; set; } = "";
}

/// <summary>Three NExT-QA questions on two videos (qid counts per video, as in the benchmark); one option has stray spaces.</summary>
public sealed class NextQaMini : IMiniBenchmark
{
    public static readonly List<NextQaRow> Rows =
    [
        new() { video = 4010069381, frame_count = 16, width = 64, height = 64, qid = 0, type = "CW", answer = 2, question = "why did the boy pick up the ball",
            a0 = "to throw it ", a1 = "to clean up", a2 = "to give it to the dog", a3 = "to play catch", a4 = "to hide it" },
        new() { video = 4010069381, frame_count = 16, width = 64, height = 64, qid = 1, type = "TN", answer = 0, question = "describe what the boy does after that.",
            a0 = "runs away", a1 = "sits down", a2 = "jumps", a3 = "waves", a4 = "cries" },
        new() { video = 7249003952, frame_count = 16, width = 64, height = 64, qid = 0, type = "DC", answer = 4, question = "how many people are there",
            a0 = "one", a1 = "two", a2 = "three", a3 = "four", a4 = "five" },
    ];

    public string Task => "nextqa_mc_test";

    public int Write(string dataDir)
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(dataDir, "MC", "test-00000-of-00001.parquet"), Rows);
        foreach (var video in Rows.Select(r => r.video).Distinct())
            MiniBenchmarkFiles.Video(Path.Combine(dataDir, "NExTVideo", video + ".mp4"));
        return Rows.Count;
    }
}
