using SlowFast.Eval.Running;
using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

/// <summary>
/// VideoMME and VideoMME with subtitles against the reference's lmms_eval/tasks/videomme (utils.py and the two yaml
/// files): prompt text, subtitle choice, answer extraction and the per-category accuracy.
/// </summary>
public sealed class VideoMmeTaskTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-videomme-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static EvalSample Sample(string question = "How many planets are shown?", string[]? options = null) => new()
    {
        Id = "001-1", Video = "data/x.mp4", Question = question, Options = options ?? ["A. 1", "B. 2", "C. 3", "D. 4"], Gold = "B",
    };

    // Fixture written from videomme_doc_to_text: option_prompt + "\n" + question + "\n" + options joined by "\n" + "\n" + post_prompt,
    // post_prompt from videomme.yaml's default kwargs.
    private const string PromptFixture =
        "Select the best answer to the following multiple-choice question based on the video.\n" +
        "How many planets are shown?\n" +
        "A. 1\nB. 2\nC. 3\nD. 4\n" +
        "Answer with the option's letter from the given choices directly.";

    // Fixture written from videomme_doc_to_text_subtitle: subtitles_prompt + subtitle + "\n" + option_prompt + "\n" + question + "\n" + post_prompt.
    private const string SubtitlePromptFixture =
        "This video's subtitles are listed below: \n" +
        "Look at the sky\nTwo bright planets\n" +
        "Select the best answer to the following multiple-choice question based on the video and the subtitles.\n" +
        "How many planets are shown?\n" +
        "A. 1\nB. 2\nC. 3\nD. 4\n" +
        "Answer with the option's letter from the given choices directly.";

    [Fact]
    public void Prompt_is_the_reference_template()
    {
        Assert.Equal(PromptFixture, new VideoMmeTask().Prompt(Sample()));
    }

    [Fact]
    public void Subtitle_prompt_takes_the_cues_shown_at_32_frames_with_the_font_tag()
    {
        var task = new VideoMmeSubtitleTask();
        string srt = Path.Combine(_dir, "a.srt");
        File.WriteAllText(srt, VideoMmeMiniData.Srt);
        var sample = Sample() with { Fields = new Dictionary<string, string> { [VideoMmeTask.SubtitleFileField] = srt } };
        // 20 frames at 10 fps, as the miniature's videos: cue 1 covers frames 0-7, cue 2 frames 8-14, cue 3 (no font tag) 15-18.
        var prepared = task.WithVideoFacts(sample, new VideoFacts("x.mp4", 20, 10));
        Assert.Equal(SubtitlePromptFixture, task.Prompt(prepared));
    }

    [Fact]
    public void Without_a_subtitle_file_the_prompt_says_none_are_available()
    {
        var task = new VideoMmeSubtitleTask();
        var prepared = task.WithVideoFacts(Sample(), new VideoFacts("x.mp4", 20, 10));
        Assert.StartsWith("This video's subtitles are listed below: \nNo subtitles available\nSelect the best answer", task.Prompt(prepared));
    }

    [Theory]
    // Cues on frames no sampled frame falls in give nothing; times become frames by truncation (int(t * fps)).
    [InlineData(1000, 25.0, "first")]            // 40 s of 1000 frames: linspace step 32.2; cue 2 spans frames 25..29, between samples 0 and 32
    [InlineData(100, 25.0, "first\nsecond")]     // step 3.2: frame 25 or 28 is sampled
    [InlineData(100, 29.97, "first\nsecond")]    // 1.0 s * 29.97 = frame 29 (truncated), 1.2 s = 35
    public void Subtitles_are_the_cues_shown_at_the_sampled_frames(long totalFrames, double fps, string expected)
    {
        string srt = "1\n00:00:00,000 --> 00:00:00,500\n<font color=\"white\" size=\".72c\">first</font>\n\n" +
                     "2\n00:00:01,000 --> 00:00:01,200\n<font color=\"white\" size=\".72c\">second</font>\n";
        Assert.Equal(expected, SrtSubtitles.TextAtFrames(srt, totalFrames, fps, 32));
    }

    [Fact]
    public void Srt_with_crlf_lines_multi_line_cues_and_repeated_times_is_read_like_the_reference()
    {
        string srt = "1\r\n00:00:00,000 --> 00:00:01,000\r\n<font color=\"white\" size=\".72c\">one</font>\r\nsecond line\r\n\r\n" +
                     "2\r\n00:00:00,000 --> 00:00:01,000\r\n<font color=\"white\" size=\".72c\">replaced</font>\r\n\r\n" +
                     "3\r\n00:00:01,000 --> 00:00:02,000\r\n<font color=\"white\" size=\".72c\">three</font>\r\n";
        var cues = SrtSubtitles.Parse(srt, 10);
        Assert.Equal(2, cues.Count);                         // same times: one cue, the later text
        Assert.Equal("<font color=\"white\" size=\".72c\">replaced</font>", cues[0].Text);
        Assert.Equal((10L, 20L), (cues[1].StartFrame, cues[1].EndFrame));
        Assert.Equal("replaced\nthree", SrtSubtitles.TextAtFrames(srt, 20, 10, 32));
        Assert.Equal(3723.5, SrtSubtitles.ParseTime("01:02:03,500"));
        Assert.Throws<UserError>(() => SrtSubtitles.ParseTime("1:02.5"));
    }

    [Theory]
    [InlineData("B", "B")]
    [InlineData("The best answer is C.", "C")]
    [InlineData("The correct answer is (D) 4", "D")]
    [InlineData("The answer: D", "D")]
    [InlineData("  \n D. 4 \n", "D")]
    [InlineData("Answer: C", "A")]                       // the capital A of "Answer" comes first, as in the reference
    [InlineData("Based on the video, the answer is C", "B")] // "Based" has a capital B
    [InlineData("The best option is C", "C")]            // not in the reference's list (glued to the next phrase): "T", "h", ... then C
    [InlineData("the answer is a", null)]                // lower case letters are not options
    [InlineData("one two three four five six seven eight nine ten eleven", null)]
    [InlineData("", null)]
    public void Answer_extraction_follows_extract_characters_regex(string output, string? expected)
    {
        Assert.Equal(expected, new VideoMmeTask().ExtractAnswer(output, Sample()));
    }

    [Fact]
    public void Load_reads_the_parquet_with_the_dataset_field_names_and_finds_videos_and_subtitles()
    {
        VideoMmeMiniData.Write(_dir);
        var samples = new VideoMmeTask().Load(_dir);
        Assert.Equal(VideoMmeMiniData.Rows.Select(r => r.question_id), samples.Select(s => s.Id));
        var first = samples[0];
        Assert.Equal(Path.Combine("data", "vidMme0001.mp4"), first.Video);
        Assert.Equal(["A. 1", "B. 2", "C. 3", "D. 4"], first.Options);
        Assert.Equal("B", first.Gold);
        Assert.Equal("short", first.Categories["duration"]);
        Assert.Equal("Knowledge", first.Categories["domain"]);
        Assert.Equal("Astronomy", first.Categories["sub_category"]);
        Assert.Equal("Counting Problem", first.Categories["task_type"]);
        Assert.True(first.Fields.ContainsKey(VideoMmeTask.SubtitleFileField));
        Assert.False(samples[2].Fields.ContainsKey(VideoMmeTask.SubtitleFileField));
        Assert.Equal(VideoMmeMiniData.MissingVideo, samples[4].Video.Replace('\\', '/'));
        Assert.Throws<UserError>(() => new VideoMmeTask().Load(Path.Combine(_dir, "nothing")));
    }

    [Fact]
    public void Score_is_accuracy_over_all_samples_and_per_category()
    {
        static ScoredSample S(string duration, string type, bool correct, string output = "x") =>
            new("id", new Dictionary<string, string> { ["duration"] = duration, ["domain"] = "Knowledge", ["sub_category"] = "Law", ["task_type"] = type },
                output, correct ? "A" : "B", correct, output == "");
        var score = new VideoMmeTask().Score(
        [
            S("short", "OCR Problems", true), S("short", "OCR Problems", false), S("short", "Counting Problem", true),
            S("long", "Counting Problem", false), S("long", "Counting Problem", false, output: ""),
        ]);
        Assert.Equal(40.0, score.Overall, 10);             // 2 of 5: a failed (empty) answer counts as wrong
        Assert.Equal(5, score.Counted);
        var byValue = score.Categories.ToDictionary(c => (c.Dimension, c.Value));
        Assert.Equal(100.0 * 2 / 3, byValue[("duration", "short")].Score, 10);
        Assert.Equal(0, byValue[("duration", "long")].Score);
        Assert.Equal(100.0 / 3, byValue[("task_type", "Counting Problem")].Score, 10);
        Assert.Equal(50, byValue[("task_type", "OCR Problems")].Score);
        Assert.Equal(40, byValue[("domain", "Knowledge")].Score);
        Assert.Equal(["duration", "domain", "sub_category", "task_type"], score.Categories.Select(c => c.Dimension).Distinct());
    }
}
