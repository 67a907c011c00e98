using System.Text.Json;

namespace SlowFast.Packaging.Tests;

[Collection(PackedFeedCollection.Name)]
public sealed class InstalledToolTests(PackedFeed feed)
{
    [Fact]
    public void Help_lists_the_commands_serve_included()
    {
        var r = Run.Checked(feed.Slowfast, ["--help"], feed.Root, TimeSpan.FromMinutes(1));
        foreach (var command in new[] { "ask", "chat", "serve", "pull", "create-model", "bench" })
            Assert.Contains($"\n  {command} ", r.Stdout);   // a line of the command list
        Assert.Contains("--urls", Run.Checked(feed.Slowfast, ["serve", "--help"], feed.Root, TimeSpan.FromMinutes(1)).Stdout);
    }

    [Fact]
    public void Ask_answers_about_a_video()
    {
        var r = Run.Checked(feed.Slowfast, ["ask", "--model", feed.ModelDir, "--video", feed.VideoPath, "--frames", "4",
            "--max-new-tokens", "6", "--json", "What happens in this video?"], feed.Root, TimeSpan.FromMinutes(3));
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.True(doc.RootElement.TryGetProperty("answer", out var answer), r.Stdout);
        Assert.Equal(JsonValueKind.String, answer.ValueKind);
        Assert.True(doc.RootElement.GetProperty("tokens").GetProperty("generated").GetInt32() > 0, r.Stdout);
    }

    [Fact]
    public void A_missing_video_is_one_line_and_a_non_zero_exit()
    {
        var r = Run.Program(feed.Slowfast, ["ask", "--model", feed.ModelDir, "--video", Path.Combine(feed.Root, "none.mp4"), "hi"],
            feed.Root, TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, r.ExitCode);
        // Progress lines may come first; the error itself is one line naming the file.
        var error = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("error:"));
        Assert.StartsWith("slowfast ask: error:", error);
        Assert.Contains("none.mp4", error);
    }

    [Fact]
    public void Without_ffmpeg_a_video_question_says_what_to_install()
    {
        var missing = new Dictionary<string, string>
        {
            ["SLOWFAST_FFPROBE"] = Path.Combine(feed.Root, "no-ffprobe"),
            ["SLOWFAST_FFMPEG"] = Path.Combine(feed.Root, "no-ffmpeg"),
        };
        var r = Run.Program(feed.Slowfast, ["ask", "--model", feed.ModelDir, "--video", feed.VideoPath, "--no-cache", "hi"],
            feed.Root, TimeSpan.FromMinutes(2), missing);
        Assert.NotEqual(0, r.ExitCode);
        var error = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("error:"));
        Assert.Contains("install FFmpeg", error);
    }
}
