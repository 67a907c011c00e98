using System.Net;
using System.Text;

namespace SlowFast.Hub.Tests;

/// <summary>
/// Inputs the fuzzer found in what the hub sends (docs/fuzzing.md; each is kept under fuzz/findings/hub/ and
/// replayed by the smoke run): refused with a one-line <see cref="UserError"/>, never another exception.
/// </summary>
public sealed class FuzzFindingsTests : IDisposable
{
    static readonly RepoId Repo = RepoId.Parse("org/model");
    readonly string _dir = Directory.CreateTempSubdirectory("slowfast-fuzz-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ModelInfoWhoseJsonErrorQuotesALineBreak_IsOneLine()
    {
        // hub/info-multiline-json-error.txt: System.Text.Json's message quoted the bad token with its line break.
        var e = Assert.Throws<UserError>(() => HubModelInfo.Parse(Repo, "{\"sha\": 'a\nb'}"));
        Assert.Contains("not valid JSON", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ModelInfoWithALoneSurrogate_IsRefused()
    {
        // hub/info-lone-surrogate.txt: reading the sha threw InvalidOperationException.
        var e = Assert.Throws<UserError>(() => HubModelInfo.Parse(Repo, "{\"sha\": \"\\ud800\"}"));
        Assert.Contains("not valid Unicode", e.Message);
    }

    [Fact]
    public async Task RedirectToALocationThatMakesNoUrl_IsRefused()
    {
        // hub/afl-relative-location.txt (afl-fuzz): "Location: //////.../or/r\as" resolved against the request URL threw UriFormatException.
        var answer = new HttpResponseMessage(HttpStatusCode.Found) { Content = new ByteArrayContent([]) };
        Assert.True(answer.Headers.TryAddWithoutValidation("Location", "/////////////////////////// /or/r\as"));
        var settings = new HubSettings { Endpoint = "https://hub.invalid", CacheDirectory = _dir };
        using var http = new HubHttp(settings, TimeSpan.FromSeconds(5), new CannedHandler(answer));
        var e = await Assert.ThrowsAsync<UserError>(() => http.HeadFileAsync(Repo, "main", "config.json", CancellationToken.None));
        Assert.Contains("unusable Location", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    sealed class CannedHandler(HttpResponseMessage answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(answer);
    }

    [Fact]
    public void IndexWithInvalidUtf8_IsRefused()
    {
        // hub/index-invalid-utf8.txt: reading the shard name threw InvalidOperationException.
        string path = Path.Combine(_dir, "model.safetensors.index.json");
        File.WriteAllBytes(path, Encoding.Latin1.GetBytes("{\"weight_map\": {\"a\": \"\xff.safetensors\"}}"));
        var e = Assert.Throws<UserError>(() => ModelFiles.ReadIndexShards(path));
        Assert.Contains("not valid Unicode", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
