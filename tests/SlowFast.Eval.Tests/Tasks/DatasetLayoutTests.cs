using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;

namespace SlowFast.Eval.Tests.Tasks;

public sealed class DatasetLayoutTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-layout-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Split_shards_are_read_in_name_order()
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(_dir, "MC", "test-00001-of-00002.parquet"), [new TempCompassRow { video_id = "second" }]);
        MiniBenchmarkFiles.Parquet(Path.Combine(_dir, "MC", "test-00000-of-00002.parquet"), [new TempCompassRow { video_id = "first" }]);
        MiniBenchmarkFiles.Parquet(Path.Combine(_dir, "MC", "train-00000-of-00001.parquet"), [new TempCompassRow { video_id = "train" }]);
        Assert.Equal(["first", "second"], DatasetLayout.ReadSplit(_dir, "test", "MC").Select(r => r.String("video_id")));
    }

    [Fact]
    public void The_hubs_converted_layout_and_single_files_are_found()
    {
        MiniBenchmarkFiles.Parquet(Path.Combine(_dir, "multi-choice", "test", "0000.parquet"), [new TempCompassRow { video_id = "converted" }]);
        File.WriteAllText(Path.Combine(_dir, "validation.jsonl"), """{"video_id": "jsonl"}""" + "\n");
        Assert.Equal("converted", DatasetLayout.ReadSplit(_dir, "test", "multi-choice").Single().String("video_id"));
        Assert.Equal("jsonl", DatasetLayout.ReadSplit(_dir, "validation", "mc_question_val", "").Single().String("video_id"));
        var e = Assert.Throws<UserError>(() => DatasetLayout.ReadSplit(_dir, "test", "Subset"));
        Assert.Contains("Subset/test-*.parquet", e.Message);
    }

    [Fact]
    public void Videos_take_mp4_and_fall_back_to_the_upper_case_spelling()
    {
        Assert.Equal(Path.Combine("videos", "a.mp4"), DatasetLayout.Video(_dir, "videos", "a"));
        MiniBenchmarkFiles.Video(Path.Combine(_dir, "videos", "b.MP4"));
        Assert.Equal(Path.Combine("videos", "b.MP4"), DatasetLayout.Video(_dir, "videos", "b"));
        Assert.Equal(Path.Combine("videos", "c.mp4"), DatasetLayout.Video(_dir, "videos", "c.mp4"));
    }
}
