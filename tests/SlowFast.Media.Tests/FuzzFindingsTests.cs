using System.Text;

namespace SlowFast.Media.Tests;

/// <summary>
/// Inputs the fuzzer found in ffprobe's report and in pixels files (docs/fuzzing.md; each is kept under
/// fuzz/findings/ and replayed by the smoke run): refused with a one-line <see cref="UserError"/> or read,
/// never another exception.
/// </summary>
public sealed class FuzzFindingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("slowfast-fuzz-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static UserError Refused(string report)
    {
        var e = Assert.Throws<UserError>(() => MediaProber.ParseReport("clip.mp4", report, MediaLimits.Default));
        Assert.StartsWith("clip.mp4: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Fact]
    public void AttachedPicOfTheWrongType_IsNotACoverPicture()
    {
        // ffprobe/attached-pic-string.json: GetInt32 on a string threw InvalidOperationException.
        Assert.Contains("codec", Refused("""{"streams": [{"index": 0, "codec_type": "video", "disposition": {"attached_pic": "1"}}]}""").Message);
    }

    [Fact]
    public void WidthOutOfIntRange_IsRefused()
    {
        // ffprobe/width-out-of-range.json: GetInt32 on 1e10 threw FormatException.
        Refused("""{"streams": [{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1e10, "height": 8}]}""");
    }

    [Theory]
    [InlineData("5")]                                                                                  // root-is-a-number.json
    [InlineData("""{"streams": [7]}""")]
    [InlineData("""{"streams": [{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 8, "height": 8}], "packets": [3]}""")] // packet-not-object.json
    [InlineData("""{"streams": [{"index": 0, "codec_type": "video", "codec_name": "h\ud800", "width": 8, "height": 8}]}""")]
    public void ValuesOfTheWrongShape_AreRefused(string report) => Refused(report);

    [Fact]
    public void OutOfRangeRotation_IsIgnored()
    {
        var probe = MediaProber.ParseReport("clip.mp4", """
            {"streams": [{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 8, "height": 6, "time_base": "1/10",
              "side_data_list": [{"rotation": 1e400}], "tags": {"rotate": "90"}}],
             "packets": [{"stream_index": 0, "pts": 0, "flags": "K_"}, {"stream_index": 0, "pts": 1}]}
            """, MediaLimits.Default);
        Assert.Equal(90, probe.Rotation);
        Assert.Equal([0.0, 0.1], probe.FrameTimes);
    }

    [Fact]
    public void PixelsFileWithInvalidUtf8Metadata_IsRefused()
    {
        // pixels/invalid-utf8-metadata.safetensors: the safetensors header threw InvalidOperationException when read.
        byte[] header = Encoding.Latin1.GetBytes("{\"__metadata__\":{\"source\":\"clip\xe2\x82.mp4\"}}");
        string path = Path.Combine(_dir, "pixels.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header]);
        var e = Assert.Throws<UserError>(() => PixelsFile.Read(path));
        Assert.Contains("not valid Unicode", e.Message);
    }
}
