using SlowFast.Model.Vision;
using static SlowFast.Model.Tests.VisionTestSupport;

namespace SlowFast.Model.Tests;

/// <summary>Every projector type against the scalar reference.</summary>
public class VisionProjectorTests
{
    [Theory]
    [InlineData("mlp2x_gelu", 2)]
    [InlineData("mlp3x_gelu", 3)]
    [InlineData("linear", 1)]
    public void Projector_matches_scalar_reference(string type, int depth)
    {
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab, $"mm_projector_type={type}"]));
        var projector = new Projector(model);
        Assert.Equal(depth, projector.Depth);
        int rows = 19;
        var x = RandomFloats(rows * projector.InputSize, seed: 3, scale: 3f);
        var y = new float[rows * projector.OutputSize];
        projector.Project(x, rows, y);
        var expected = VisionScalarReference.Project(model, x, rows);
        AssertClose(expected, y, 1e-5 * Math.Max(1, MaxAbs(expected)), type);
    }

    [Fact]
    public void Identity_projector_copies_tokens()
    {
        string tower = """vision_config={"architecture":"convnext","depths":[1,1],"dims":[16,64],"image_size":32,"num_classes":0}""";
        using var model = ModelDirectory.Open(Checkpoint(overrides: [VisionTowerTests.SmallVocab, tower, "mm_hidden_size=64", "mm_projector_type=identity"]));
        var projector = new Projector(model);
        Assert.Equal(0, projector.Depth);
        var x = RandomFloats(5 * 64, seed: 4);
        var y = new float[5 * 64];
        projector.Project(x, 5, y);
        Assert.Equal(x, y);
    }
}
