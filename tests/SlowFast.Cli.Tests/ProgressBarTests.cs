using SlowFast.Cli.Pull;
using SlowFast.Hub;

namespace SlowFast.Cli.Tests;

public class ProgressBarTests
{
    static PullProgress At(long done, long total, long transferred, PullStage stage = PullStage.Downloading, string file = "model-00001.safetensors") =>
        new(stage, file, done, total, done, total, transferred, 0, 2);

    [Fact]
    public void Rate_and_eta_come_from_the_bytes_transferred_over_time()
    {
        var now = TimeSpan.Zero;
        var output = new StringWriter();
        var bar = new ProgressBar(output, interactive: true, clock: () => now);

        bar.Report(At(0, 100_000_000, 0));
        now = TimeSpan.FromSeconds(2);
        bar.Report(At(20_000_000, 100_000_000, 20_000_000));   // 10 MB/s, 80 MB left: 8 s

        string line = bar.Line(At(20_000_000, 100_000_000, 20_000_000));
        Assert.Contains(" 20% [####....................]", line);   // 0.2 x 24 cells, rounded down
        Assert.Contains("20.0 MB / 100.0 MB", line);
        Assert.Contains("10.0 MB/s", line);
        Assert.Contains("ETA 0:08", line);
        Assert.EndsWith("model-00001.safetensors", line);
        Assert.StartsWith("\r", output.ToString());
    }

    [Fact]
    public void Cached_bytes_do_not_inflate_the_rate()
    {
        var now = TimeSpan.Zero;
        var bar = new ProgressBar(new StringWriter(), interactive: true, clock: () => now);
        bar.Report(At(0, 1_000_000_000, 0));
        now = TimeSpan.FromSeconds(1);
        // 500 MB were already in the cache; only 1 MB crossed the network.
        var p = At(501_000_000, 1_000_000_000, 1_000_000);
        bar.Report(p);
        string line = bar.Line(p);
        Assert.Contains("1.0 MB/s", line);
        Assert.Contains("ETA 8:19", line);   // 499 MB at 1 MB/s
    }

    [Fact]
    public void Redraws_are_throttled_but_completion_always_shows()
    {
        var now = TimeSpan.Zero;
        var output = new StringWriter();
        var bar = new ProgressBar(output, interactive: true, clock: () => now);
        for (int i = 0; i < 50; i++) bar.Report(At(i, 100, i));   // same instant: drawn once
        Assert.Single(output.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries));
        bar.Report(At(100, 100, 100, PullStage.Completed));
        Assert.Contains("done", output.ToString());
        Assert.EndsWith(Environment.NewLine, output.ToString());
    }

    [Fact]
    public void Non_interactive_output_is_one_line_per_file()
    {
        var output = new StringWriter();
        var bar = new ProgressBar(output, interactive: false, clock: () => TimeSpan.Zero);
        bar.Report(At(10, 100, 10));
        bar.Report(new PullProgress(PullStage.FileCompleted, "config.json", 1500, 1500, 1500, 3000, 1500, 1, 2));
        Assert.Equal("config.json  1.5 KB  (1/2 files)" + Environment.NewLine, output.ToString());
    }

    [Theory]
    [InlineData(999, "999 B")]
    [InlineData(1_500, "1.5 KB")]
    [InlineData(15_231_000_000, "15.2 GB")]
    public void Bytes_are_formatted_in_decimal_units(long bytes, string text) => Assert.Equal(text, ProgressBar.FormatBytes(bytes));

    [Fact]
    public void Durations_are_formatted_as_clock_time()
    {
        Assert.Equal("0:05", ProgressBar.FormatDuration(TimeSpan.FromSeconds(5)));
        Assert.Equal("2:03:04", ProgressBar.FormatDuration(new TimeSpan(2, 3, 4)));
        Assert.Equal(">99h", ProgressBar.FormatDuration(TimeSpan.FromDays(30)));
    }
}
