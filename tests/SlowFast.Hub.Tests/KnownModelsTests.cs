namespace SlowFast.Hub.Tests;

public class KnownModelsTests
{
    [Fact]
    public void The_released_checkpoints_are_valid_ids_named_by_frames_and_strides()
    {
        Assert.Equal(3, KnownModels.All.Distinct().Count());
        Assert.Contains(KnownModels.Frame128, KnownModels.All);
        foreach (var (id, suffix) in KnownModels.All.Zip(new[] { "frame64-s1t4", "frame96-s1t6", "frame128-s2t4" }))
        {
            Assert.Equal(id, RepoId.Parse(id).ToString());
            Assert.EndsWith(suffix, id);
        }
        Assert.Equal(KnownModels.Frame64, KnownModels.Default);
    }
}
