using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

public class KernelsRopeTests
{
    [Theory]
    [InlineData(64, 2, 10000f)]
    [InlineData(128, 3, 1000000f)]
    [InlineData(6, 1, 10000f)]
    public void Rope_matches_rotate_half_definition(int d, int heads, float theta)
    {
        var positions = new[] { 0, 1, 5, 300, 4097 };
        var x = KernelsReference.Random(positions.Length * heads * d, 40);
        var y = (float[])x.Clone();
        Rope.Apply(y, heads, d, positions, theta);
        int half = d / 2;
        for (int t = 0; t < positions.Length; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < d; i++)
                {
                    int f = i % half;
                    double invFreq = 1.0 / Math.Pow(theta, 2.0 * f / d);
                    double angle = positions[t] * invFreq;
                    int b = (t * heads + h) * d;
                    double rotated = i < half ? -x[b + i + half] : x[b + i - half];
                    double expected = x[b + i] * Math.Cos(angle) + rotated * Math.Sin(angle);
                    // float32 angles at position 4097 carry ~2.5e-4 absolute error in the angle.
                    Assert.True(Math.Abs(y[b + i] - expected) < 1e-3 * (1 + positions[t] / 1000.0) * 0.5, $"t={t} h={h} i={i}: {y[b + i]} vs {expected}");
                }
    }

    [Fact]
    public void Rope_at_position_zero_is_identity()
    {
        var x = KernelsReference.Random(2 * 4 * 32, 41);
        var y = (float[])x.Clone();
        Rope.Apply(y, 4, 32, new[] { 0, 0 }, 10000f);
        Assert.Equal(x, y);
    }
}
