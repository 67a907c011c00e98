using SlowFast.Eval.Running;

namespace SlowFast.Eval.Tests.Running;

/// <summary>A sample that hangs past the time limit or throws is logged with its error and scored wrong; the run goes on.</summary>
[Collection(EvalCollection.Name)]
public sealed class FailureTests(EvalFixture fixture)
{
    /// <summary>Hangs on the first question until cancelled, throws on the second, answers "B" after that.</summary>
    private sealed class TroubledAnswerer : IAnswerer
    {
        private int _asked;
        public string Description => "troubled";

        public async Task<ModelAnswer> AnswerAsync(EvalVideo video, string prompt, CancellationToken cancel)
        {
            switch (++_asked)
            {
                case 1:
                    await Task.Delay(Timeout.Infinite, cancel);
                    throw new InvalidOperationException("not reached");
                case 2:
                    throw new InvalidOperationException("the engine broke");
                default:
                    return new ModelAnswer("B", new SampleTimings(0.1, 0.2, 0.3, 0.4, 1.0), new SampleTokens(10, 1, 0), false);
            }
        }

        public void Dispose() { }
    }

    [Fact]
    public void A_hanging_sample_and_a_throwing_sample_fail_alone()
    {
        string dir = Path.Combine(fixture.Root, "runs", "troubled");
        var log = new StringWriter();
        var options = fixture.Options("videomme", dir) with { SampleTimeLimit = TimeSpan.FromSeconds(3) };
        var results = EvalRunner.Run(options, log, default, () => new TroubledAnswerer());

        var records = EvalFixture.Log(dir);
        Assert.Equal(5, records.Count);
        var byId = records.ToDictionary(r => r.Id);
        Assert.Equal(FailureKind.TimedOut, byId["001-1"].ErrorKind);
        Assert.Contains("time limit of 3 s", byId["001-1"].Error);
        Assert.Equal(FailureKind.Error, byId["001-2"].ErrorKind);
        Assert.Contains("the engine broke", byId["001-2"].Error);
        Assert.Equal(FailureKind.MissingVideo, byId["003-1"].ErrorKind);
        Assert.All(records.Where(r => r.Failed), r => Assert.False(r.Correct));
        // The two answered "B": 002-1 (gold C) wrong, 002-2 (gold D) wrong; nothing right, 3 failed.
        Assert.Equal(3, results["failed"]!.GetValue<int>());
        Assert.Equal("B", byId["002-1"].Answer);
        Assert.Equal(0.0, results["score"]!["overall"]!.GetValue<double>());
        // Means over the answered samples only.
        Assert.Equal(1.0, results["timing"]!["seconds_per_sample"]!.GetValue<double>());
        Assert.Equal(0.4, results["timing"]!["decode_s"]!.GetValue<double>());
        string progress = log.ToString();
        Assert.Contains("[5/5] 100.0%", progress);
        Assert.Contains(" eta ", progress);
        Assert.Contains("FAILED (timeout", progress);
    }
}
