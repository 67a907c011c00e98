namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>One record of lmms-lab/Video-MME (videomme/test-00000-of-00001.parquet), with its field names.</summary>
public sealed class VideoMmeRow
{
    public string video_id { get; set; } = "";
    public string duration { get; set; } = "";
    public string domain { get; set; } = "";
    public string sub_category { get; set; } = "";
    public string url { get; set; } = "";
    public string videoID { get; set; } = "";
    public string question_id { get; set; } = "";
    public string task_type { get; set; } = "";
    public string question { get; set; } = "";
    public List<string> options { get; set; } = [];
    public string answer { get; set; } = "";
}

/// <summary>
/// A miniature Video-MME in the Hugging Face layout: the parquet, data/{videoID}.mp4 and subtitle/{videoID}.srt.
/// Five questions about three videos; the third video is missing (counted and listed, scored wrong); the first has
/// subtitles, two cues with the font tag Video-MME's subtitles carry and one without.
/// </summary>
public static class VideoMmeMiniData
{
    public const string MissingVideo = "data/noVideo0003.mp4";

    public static readonly VideoMmeRow[] Rows =
    [
        Row("001", "short", "Knowledge", "Astronomy", "vidMme0001", "001-1", "Counting Problem", "How many planets are shown?", ["A. 1", "B. 2", "C. 3", "D. 4"], "B"),
        Row("001", "short", "Knowledge", "Astronomy", "vidMme0001", "001-2", "OCR Problems", "What does the sign say?", ["A. Stop", "B. Go", "C. Wait", "D. Exit"], "A"),
        Row("002", "medium", "Sports Competition", "Football", "vidMme0002", "002-1", "Action Recognition", "What does the player do?", ["A. Runs", "B. Jumps", "C. Kicks", "D. Falls"], "C"),
        Row("002", "medium", "Sports Competition", "Football", "vidMme0002", "002-2", "Temporal Reasoning", "What happens first?", ["A. A goal", "B. A foul", "C. A pass", "D. A save"], "D"),
        Row("003", "long", "Life Record", "Travel", "noVideo0003", "003-1", "Object Recognition", "Which object appears?", ["A. A car", "B. A boat", "C. A plane", "D. A train"], "A"),
    ];

    public const string Srt =
        "1\n00:00:00,000 --> 00:00:00,800\n<font color=\"white\" size=\".72c\">Look at the sky</font>\n\n" +
        "2\n00:00:00,800 --> 00:00:01,500\n<font color=\"white\" size=\".72c\">Two bright planets</font>\n\n" +
        "3\n00:00:01,500 --> 00:00:01,900\nno font tag, so not shown\n";

    public static int Write(string dataDir)
    {
        EvalTestMedia.Parquet(Path.Combine(dataDir, "videomme", "test-00000-of-00001.parquet"), Rows);
        EvalTestMedia.Video(Path.Combine(dataDir, "data", "vidMme0001.mp4"), "testsrc2");
        EvalTestMedia.Video(Path.Combine(dataDir, "data", "vidMme0002.mp4"), "smptebars");
        Directory.CreateDirectory(Path.Combine(dataDir, "subtitle"));
        File.WriteAllText(Path.Combine(dataDir, "subtitle", "vidMme0001.srt"), Srt);
        return Rows.Length;
    }

    private static VideoMmeRow Row(string videoId, string duration, string domain, string sub, string youtube, string qid, string type,
        string question, List<string> options, string answer) => new()
    {
        video_id = videoId, duration = duration, domain = domain, sub_category = sub, url = "https://www.youtube.com/watch?v=" + youtube,
        videoID = youtube, question_id = qid, task_type = type, question = question, options = options, answer = answer,
    };
}

public sealed class VideoMmeMini : IMiniBenchmark
{
    public string Task => "videomme";
    public int Write(string dataDir) => VideoMmeMiniData.Write(dataDir);
}

public sealed class VideoMmeSubtitleMini : IMiniBenchmark
{
    public string Task => "videomme_w_subtitle";
    public int Write(string dataDir) => VideoMmeMiniData.Write(dataDir);
}
