using SlowFast.Eval.Tasks;
using SlowFast.Eval.Tests.MiniBenchmarks;
using SlowFast.Media;

namespace SlowFast.Eval.Tests.Tasks;

/// <summary>
/// What the end-to-end eval tests rely on, for every miniature in this assembly: its task exists, Load reads exactly
/// what Write wrote, ids are unique, and every video file decodes with the engine's own media loader. A miniature
/// may hold deliberate failures for the runner's failure paths: a missing video, a file named "*broken*" that must
/// not decode, and frame folders (read as frames, not decoded here).
/// </summary>
public sealed class MiniBenchmarkContractTests
{
    public static TheoryData<string> Minis()
    {
        var data = new TheoryData<string>();
        foreach (var type in typeof(MiniBenchmarkContractTests).Assembly.GetTypes()
                     .Where(t => typeof(IMiniBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }))
            data.Add(type.FullName!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Minis))]
    public void Miniature_loads_with_unique_ids_and_decodable_videos(string typeName)
    {
        var mini = (IMiniBenchmark)Activator.CreateInstance(typeof(MiniBenchmarkContractTests).Assembly.GetType(typeName)!)!;
        using var data = new MiniData(mini);
        var samples = TaskCatalog.Get(mini.Task).Load(data.Dir);
        Assert.Equal(data.Count, samples.Count);
        Assert.Equal(samples.Count, samples.Select(s => s.Id).Distinct().Count());
        foreach (var video in samples.Select(s => s.Video).Distinct())
        {
            string path = Path.Combine(data.Dir, video);
            if (Directory.Exists(path))
            {
                Assert.NotEmpty(Directory.GetFiles(path));
                continue;
            }
            if (!File.Exists(path)) continue;
            if (Path.GetFileName(path).Contains("broken", StringComparison.Ordinal))
            {
                Assert.Throws<UserError>(() => MediaLoader.LoadVideo(path, new VideoOptions { Frames = 4, Size = 32 }));
                continue;
            }
            var input = MediaLoader.LoadVideo(path, new VideoOptions { Frames = 4, Size = 32 });
            Assert.Equal(4, input.FrameCount);
            Assert.True(input.TotalFrames >= 4, $"{video}: {input.TotalFrames} frames");
        }
    }
}
