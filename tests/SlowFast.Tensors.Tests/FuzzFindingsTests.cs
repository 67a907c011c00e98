using System.Text;
using SlowFast.Tensors.IO;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Inputs the fuzzer found (docs/fuzzing.md; each is kept under fuzz/findings/safetensors/ and replayed by the
/// smoke run): every one must be refused with a one-line <see cref="UserError"/>, not crash.
/// </summary>
public sealed class FuzzFindingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-fuzz-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Safetensors(byte[] header)
    {
        string path = Path.Combine(_dir, "x.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header]);
        return path;
    }

    private static UserError AssertOneLineRefusal(Action open)
    {
        var e = Assert.ThrowsAny<UserError>(open);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Fact]
    public void InvalidUtf8InATensorName_IsRefused()
    {
        // invalid-utf8-tensor-name.safetensors: JsonDocument only checks UTF-8 when a name is read.
        var path = Safetensors(Encoding.Latin1.GetBytes("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}"));
        Assert.Contains("not valid Unicode", AssertOneLineRefusal(() => SafetensorsFile.Open(path).Dispose()).Message);
    }

    [Fact]
    public void LoneSurrogateInMetadata_IsRefused()
    {
        // lone-surrogate-metadata.safetensors: an escaped lone surrogate is refused only when the string is read.
        var path = Safetensors("{\"__metadata__\":{\"format\":\"\\ud800\"}}"u8.ToArray());
        Assert.Contains("not valid Unicode", AssertOneLineRefusal(() => SafetensorsFile.Open(path).Dispose()).Message);
    }

    [Fact]
    public void InvalidUtf8InAnIndex_IsRefused()
    {
        // invalid-utf8-index.json: a sharded checkpoint's model.safetensors.index.json.
        File.WriteAllBytes(Path.Combine(_dir, "model.safetensors.index.json"),
            Encoding.Latin1.GetBytes("{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\xc3\"}}"));
        Assert.Contains("not valid Unicode", AssertOneLineRefusal(() => SafetensorsCheckpoint.Open(_dir).Dispose()).Message);
    }
}
