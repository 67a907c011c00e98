using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;

namespace SlowFast.Server.Tests;

/// <summary>Operating the server: admission limit (429), metrics, uploaded files.</summary>
[Collection(ServerCollection.Name)]
public sealed class OperationsTests(ServerFixture f)
{
    private static StringContent Json(JsonObject body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    [Fact]
    public async Task BeyondMaxQueue_Is429WithRetryAfter_AndTheServerKeepsServing()
    {
        await using var app = ServerFixture.Start(new ServerOptions { ModelDir = f.ModelDir, Urls = "http://127.0.0.1:0", MaxQueue = 2 });
        await app.StartAsync();
        string url = app.Urls.First() + "/v1/chat/completions";
        var backend = app.Services.GetRequiredService<ChatBackend>();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(3) };
        using var stopSlow = new CancellationTokenSource();
        var slowBody = ServerFixture.Request(new JsonArray(ServerFixture.User("Tell a long story.")), maxTokens: 3000, frames: null);
        var slow = Enumerable.Range(0, 2).Select(_ => http.PostAsync(url, Json(slowBody), stopSlow.Token)).ToList();
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (backend.Model.Engine.Stats is var s && s.Running + s.Waiting < 2 && DateTime.UtcNow < deadline) await Task.Delay(10);
            Assert.Equal(2, backend.InFlight);

            using var refused = await http.PostAsync(url, Json(ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), maxTokens: 1, frames: null)));
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            Assert.True(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds >= 1);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
            Assert.Equal("rate_limit_exceeded", error["type"]!.GetValue<string>());
            Assert.Equal(2, backend.InFlight);
        }
        finally
        {
            stopSlow.Cancel();
            foreach (var t in slow) { try { (await t).Dispose(); } catch (OperationCanceledException) { } }
        }

        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (backend.InFlight > 0 && DateTime.UtcNow < until) await Task.Delay(20);
        Assert.Equal(0, backend.InFlight);
        using var ok = await http.PostAsync(url, Json(ServerFixture.Request(new JsonArray(ServerFixture.User("Hi")), maxTokens: 1, frames: null)));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        await app.StopAsync();
    }
}
