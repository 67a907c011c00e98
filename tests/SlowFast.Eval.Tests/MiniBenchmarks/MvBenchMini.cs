using System.Text.Json.Nodes;

namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>
/// A miniature MVBench as lmms-eval unpacks OpenGVLab/MVBench: json/{sub_task}.json with the dataset's fields (video,
/// question, candidates, answer = the right candidate's text) and each sub-task's video folder. Three sub-tasks: action
/// antonym (two questions about one video, one about another), episodic reasoning (a folder of 12 JPEG frames: more
/// than the frames asked for, so they are thinned) and action count, whose one video is undecodable.
/// </summary>
public sealed class MvBenchMini : IMiniBenchmark
{
    public string Task => "mvbench";

    public const string UndecodableVideo = "perception/videos/video_broken.mp4";

    public int Write(string dataDir)
    {
        WriteJson(dataDir, "action_antonym",
        [
            Q("clip_1.webm", "What is the action performed by the person in the video?", ["Pushing something", "Pulling something", "Not sure"], "Pulling something"),
            Q("clip_1.webm", "Which way does the object move?", ["Left", "Right"], "Left"),
            Q("clip_2.webm", "What is the action performed by the person in the video?", ["Lifting up", "Putting down", "Not sure"], "Not sure"),
        ]);
        EvalTestMedia.Video(Path.Combine(dataDir, "ssv2_video", "clip_1.webm"), "testsrc2");
        EvalTestMedia.Video(Path.Combine(dataDir, "ssv2_video", "clip_2.webm"), "smptebars");

        WriteJson(dataDir, "episodic_reasoning",
        [
            Q("s01e01_seg01_clip_00", "What does Ross do after he opens the door?", ["He sits down", "He laughs", "He leaves", "He waves", "He sings"], "He waves"),
        ]);
        EvalTestMedia.FrameFolder(Path.Combine(dataDir, "tvqa", "frames_fps3_hq", "s01e01_seg01_clip_00"), 12);

        WriteJson(dataDir, "action_count",
        [
            Q("video_broken.mp4", "How many times did the person launch objects on the table?", ["3", "2", "4"], "2"),
        ]);
        EvalTestMedia.Garbage(Path.Combine(dataDir, UndecodableVideo));
        return 5;
    }

    private static JsonObject Q(string video, string question, string[] candidates, string answer) => new()
    {
        ["video"] = video,
        ["question"] = question,
        ["candidates"] = new JsonArray(candidates.Select(c => (JsonNode?)c).ToArray()),
        ["answer"] = answer,
    };

    private static void WriteJson(string dataDir, string subTask, JsonObject[] records)
    {
        Directory.CreateDirectory(Path.Combine(dataDir, "json"));
        File.WriteAllText(Path.Combine(dataDir, "json", subTask + ".json"), new JsonArray(records).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
