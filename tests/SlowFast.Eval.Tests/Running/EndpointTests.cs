using Microsoft.AspNetCore.Builder;
using SlowFast.Eval.Running;
using SlowFast.Server;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Eval.Tests.Running;

/// <summary>--endpoint: the same questions asked of the real server (loopback, same tiny checkpoint) give the in-process answers.</summary>
[Collection(EvalCollection.Name)]
public sealed class EndpointTests(EvalFixture fixture)
{
    [Theory]
    [InlineData("videomme", false)]
    [InlineData("mvbench", true)]
    public async Task Answers_through_slowfast_serve_equal_the_in_process_answers(string task, bool inlineMedia)
    {
        var (single, singleDir) = fixture.Baseline(task);
        await using var app = SlowFastServer.Build(new ServerOptions
        {
            ModelDir = fixture.ModelDir, ModelId = "tiny", Urls = "http://127.0.0.1:0", MediaRoot = fixture.DataRoot,
            MaxFrames = 16, Precision = MatMulPrecision.Float32,
        });
        await app.StartAsync();
        try
        {
            string outDir = Path.Combine(fixture.Root, "runs", task, "endpoint");
            // file:// URLs under the server's media root, or the bytes inline as data: URLs.
            var options = fixture.Options(task, outDir) with { Endpoint = app.Urls.First(), Model = null, InlineMedia = inlineMedia };
            var results = await Task.Run(() => EvalRunner.Run(options, TextWriter.Null));

            var local = EvalFixture.Log(singleDir);
            var remote = EvalFixture.Log(outDir);
            Assert.Equal(local.Select(x => (x.Id, x.Prompt, x.Output, x.Answer, x.Correct, x.ErrorKind)),
                         remote.Select(x => (x.Id, x.Prompt, x.Output, x.Answer, x.Correct, x.ErrorKind)));
            Assert.True(remote.Where(r => !r.Failed).All(r => r.Tokens!.Prompt > 0 && r.Timings!.Prefill == null));
            Assert.Equal(single["score"]!.ToJsonString(), results["score"]!.ToJsonString());

            // The server refuses a sampling rate that is not a positive number, naming the field.
            using var http = new HttpClient();
            using var bad = await http.PostAsync(app.Urls.First() + "/v1/chat/completions", new StringContent(
                """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "media_io_kwargs": {"video": {"fps": -1}}}""",
                System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(400, (int)bad.StatusCode);
            Assert.Contains("media_io_kwargs.video.fps", await bad.Content.ReadAsStringAsync());
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public void An_unreachable_endpoint_is_one_user_error()
    {
        var options = fixture.Options("videomme", Path.Combine(fixture.Root, "runs", "unreachable")) with { Endpoint = "http://127.0.0.1:9", Model = null };
        var e = Assert.Throws<UserError>(() => EvalRunner.Run(options, TextWriter.Null));
        Assert.Contains("cannot reach the server", e.Message);
    }
}
