using System.Text.Json;

namespace SlowFast.Media.Tests;

/// <summary>Frame indices and time strings against NumPy / the reference's Python (tools/media/make_sampling_fixtures.py).</summary>
public class FrameSamplerTests
{
    private static readonly JsonDocument Fixture =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "sampling", "sampling.json")));

    private static long[] Longs(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt64()).ToArray();

    [Fact]
    public void Uniform_EqualsNumpyLinspace()
    {
        int checkedCases = 0;
        foreach (var c in Fixture.RootElement.GetProperty("uniform").EnumerateArray())
        {
            long total = c.GetProperty("total").GetInt64();
            int n = c.GetProperty("n").GetInt32();
            Assert.True(Longs(c.GetProperty("indices")).SequenceEqual(FrameSampler.Uniform(total, n)), $"total {total}, n {n}");
            checkedCases++;
        }
        Assert.True(checkedCases > 100);
    }

    [Fact]
    public void Uniform_RepeatsFramesWhenAskedForMoreThanExist()
    {
        var idx = FrameSampler.Uniform(5, 8);
        Assert.Equal(8, idx.Length);
        Assert.Equal(new long[] { 0, 0, 1, 1, 2, 2, 3, 4 }, idx);
    }

    [Fact]
    public void AtRate_EqualsReferenceGetFrameIndices()
    {
        int checkedCases = 0;
        foreach (var c in Fixture.RootElement.GetProperty("fps").EnumerateArray())
        {
            long total = c.GetProperty("total").GetInt64();
            double fps = (double)c.GetProperty("fps_num").GetInt64() / c.GetProperty("fps_den").GetInt64();
            double target = c.GetProperty("target").GetDouble();
            int n = c.GetProperty("n").GetInt32();
            var want = Longs(c.GetProperty("indices"));
            var got = FrameSampler.AtRate(total, fps, target, n);
            Assert.True(want.SequenceEqual(got), $"total {total}, fps {fps}, target {target}, n {n}: want [{string.Join(",", want)}] got [{string.Join(",", got)}]");
            checkedCases++;
        }
        Assert.True(checkedCases > 500);
    }

    [Fact]
    public void TimeInstruction_EqualsPythonFString()
    {
        foreach (var c in Fixture.RootElement.GetProperty("time_strings").EnumerateArray())
        {
            double total = c.GetProperty("total_time").GetDouble();
            int k = c.GetProperty("k").GetInt32();
            Assert.Equal(c.GetProperty("text").GetString(), MediaLoader.TimeInstruction(total, k));
        }
    }

    [Theory]
    [InlineData(2.675, 2, 2.67)]   // the binary value is just below 2.675
    [InlineData(0.125, 2, 0.12)]   // exact tie: to even
    [InlineData(0.375, 2, 0.38)]
    [InlineData(-1.005, 2, -1.0)]
    public void PythonRound_RoundsTheExactBinaryValue(double x, int digits, double want) =>
        Assert.Equal(want, PythonFloat.Round(x, digits));

    [Theory]
    [InlineData(10.0, "10.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(9.375, "9.375")]
    [InlineData(1e-5, "1e-05")]
    public void PythonRepr_PrintsLikePython(double x, string want) => Assert.Equal(want, PythonFloat.Repr(x));
}
