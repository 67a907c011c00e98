using System.Text;

namespace SlowFast.Server.Tests;

/// <summary>
/// Request bodies the fuzzer found (docs/fuzzing.md; each is kept under fuzz/findings/chat/ and replayed by the
/// smoke run): a 400 naming the problem, never an exception that becomes a 500.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class FuzzFindingsTests(ServerFixture f)
{
    private static ApiError Refused(byte[] body)
    {
        var e = Assert.ThrowsAny<ApiError>(() => ChatRequest.ReadAsync(new MemoryStream(body), imagesAsVideo: false, CancellationToken.None).GetAwaiter().GetResult());
        Assert.Equal(400, e.Status);
        Assert.Equal("invalid_json", e.Code);
        return e;
    }

    [Fact]
    public void InvalidUtf8InARole_Is400()
    {
        // chat/invalid-utf8-role.json: reading the role threw InvalidOperationException.
        var e = Refused(Encoding.Latin1.GetBytes("{\"model\": \"tiny\", \"messages\": [{\"role\": \"us\u00ffer\", \"content\": \"hi\"}]}"));
        Assert.Contains("not valid Unicode", e.Message);
    }

    [Fact]
    public void LoneSurrogateInText_Is400()
    {
        // chat/lone-surrogate-text.json
        Refused("{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"\\udc00\"}]}"u8.ToArray());
    }

    [Fact]
    public async Task LoneSurrogateInText_IsAnswered400ByTheServer()
    {
        var (status, body) = await f.PostAsync("{\"model\": \"" + ServerFixture.ModelId + "\", \"messages\": [{\"role\": \"user\", \"content\": \"\\udc00\"}]}");
        Assert.Equal(400, status);
        Assert.Equal("invalid_json", body["error"]!["code"]!.GetValue<string>());
    }
}
