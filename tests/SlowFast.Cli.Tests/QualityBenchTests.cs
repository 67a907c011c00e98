using SlowFast.Benchmarks;

namespace SlowFast.Cli.Tests;

/// <summary>The KL divergence `bench --quality` reports, against the definition computed independently.</summary>
public sealed class QualityBenchTests
{
    private static double Reference(float[] p, float[] q)
    {
        double[] P = Softmax(p), Q = Softmax(q);
        return P.Select((pi, i) => pi * Math.Log(pi / Q[i])).Sum();
    }

    private static double[] Softmax(float[] logits)
    {
        var e = logits.Select(x => Math.Exp(x)).ToArray();
        double s = e.Sum();
        return e.Select(x => x / s).ToArray();
    }

    [Fact]
    public void Identical_and_shifted_logits_have_zero_divergence()
    {
        float[] p = [0.5f, -1f, 2f, 0f];
        Assert.Equal(0, QualityBench.KlDivergence(p, p), 12);
        Assert.Equal(0, QualityBench.KlDivergence(p, p.Select(x => x + 100f).ToArray()), 9);
    }

    [Fact]
    public void Two_point_distributions_match_the_closed_form()
    {
        // p = (1/4, 3/4), q = (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2).
        float[] p = [0f, MathF.Log(3f)], q = [0f, 0f];
        double expected = 0.25 * Math.Log(0.5) + 0.75 * Math.Log(1.5);
        Assert.Equal(expected, QualityBench.KlDivergence(p, q), 6);
        Assert.True(QualityBench.KlDivergence(q, p) > 0);
        Assert.NotEqual(QualityBench.KlDivergence(p, q), QualityBench.KlDivergence(q, p), 6);
    }

    [Fact]
    public void Random_logits_agree_with_the_definition_and_survive_large_magnitudes()
    {
        var rng = new Random(7);
        for (int trial = 0; trial < 20; trial++)
        {
            float[] p = Enumerable.Range(0, 50).Select(_ => (float)(rng.NextDouble() * 10 - 5)).ToArray();
            float[] q = p.Select(x => x + (float)(rng.NextDouble() - 0.5)).ToArray();
            Assert.Equal(Reference(p, q), QualityBench.KlDivergence(p, q), 9);
        }
        // Logits near 1000 overflow a naive exp; the log-sum-exp form does not.
        float[] big = [1000f, 999f, 990f], bigQ = [999f, 1000f, 990f];
        double kl = QualityBench.KlDivergence(big, bigQ);
        Assert.True(double.IsFinite(kl) && kl > 0);
        Assert.Equal(Reference(big.Select(x => x - 1000f).ToArray(), bigQ.Select(x => x - 1000f).ToArray()), kl, 9);
    }
}
