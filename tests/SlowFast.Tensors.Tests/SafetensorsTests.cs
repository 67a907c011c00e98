using System.Text;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;

namespace SlowFast.Tensors.Tests;

public sealed class SafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-st-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static float[] Ramp(int n, float scale = 0.37f) => Enumerable.Range(0, n).Select(i => (i - n / 2) * scale).ToArray();

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void RoundTripFloatDTypes(DType dtype)
    {
        string path = Path.Combine(_dir, "a.safetensors");
        var values = Ramp(3 * 5);
        var scalar = new float[] { 1.5f };
        SafetensorsWriter.Write(path, [
            (new TensorSpec("w", dtype, [3, 5]), TensorEncoding.Encode(values, dtype)),
            (new TensorSpec("scalar", dtype, []), TensorEncoding.Encode(scalar, dtype)),
            (new TensorSpec("empty", dtype, [0, 4]), Array.Empty<byte>()),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        using var f = SafetensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        var w = f.Get("w");
        Assert.Equal(dtype, w.DType);
        Assert.Equal(new long[] { 3, 5 }, w.Shape.ToArray());
        var back = w.ToFloatArray();
        for (int i = 0; i < values.Length; i++)
        {
            float expected = dtype switch
            {
                DType.BF16 => DTypes.BF16ToFloat(DTypes.FloatToBF16(values[i])),
                DType.F16 => (float)(Half)values[i],
                _ => values[i],
            };
            Assert.Equal(expected, back[i]);
        }
        Assert.Equal(1.5f, f.Get("scalar").ToFloatArray()[0]);
        Assert.Equal(0, f.Get("empty").ElementCount);
    }

    [Theory]
    [InlineData(DType.I64)]
    [InlineData(DType.I32)]
    [InlineData(DType.I16)]
    [InlineData(DType.I8)]
    [InlineData(DType.U8)]
    [InlineData(DType.Bool)]
    [InlineData(DType.F64)]
    public void RoundTripOtherDTypes(DType dtype)
    {
        string path = Path.Combine(_dir, "b.safetensors");
        var bytes = Enumerable.Range(0, 6 * dtype.SizeOf()).Select(i => (byte)(i * 7 % 2)).ToArray();
        SafetensorsWriter.Write(path, [(new TensorSpec("t", dtype, [2, 3]), bytes)]);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(dtype, f.Get("t").DType);
        Assert.Equal(bytes, f.Get("t").Bytes.ToArray());
    }

    [Fact]
    public void BF16RoundingIsNearestEven()
    {
        // 1 + 2^-8 is exactly half-way between two bf16 values: ties go to the even mantissa (1.0).
        Assert.Equal(1f, DTypes.BF16ToFloat(DTypes.FloatToBF16(1f + 1f / 256)));
        // 1 + 3 * 2^-8 is half-way too: rounds up to the even neighbour 1 + 2^-6.
        Assert.Equal(1f + 1f / 64, DTypes.BF16ToFloat(DTypes.FloatToBF16(1f + 3f / 256)));
        Assert.True(float.IsNaN(DTypes.BF16ToFloat(DTypes.FloatToBF16(float.NaN))));
    }

    [Fact]
    public void HeaderIsPaddedToEightBytes()
    {
        string path = Path.Combine(_dir, "p.safetensors");
        SafetensorsWriter.Write(path, [(new TensorSpec("x", DType.F32, [1]), new byte[4])]);
        var raw = File.ReadAllBytes(path);
        ulong n = BitConverter.ToUInt64(raw, 0);
        Assert.Equal(0UL, n % 8);
        Assert.Equal(8 + (long)n + 4, raw.Length);
    }

    [Fact]
    public void ShardedCheckpointRoundTrip()
    {
        var specs = Enumerable.Range(0, 7).Select(i => new TensorSpec($"layer.{i}.weight", DType.BF16, [16, 8])).ToList();
        byte[] Data(TensorSpec s) => TensorEncoding.Encode(Ramp(128, 0.01f * (1 + int.Parse(s.Name.Split('.')[1]))), DType.BF16);
        var files = CheckpointWriter.Write(_dir, specs, (s, stream) => stream.Write(Data(s)), maxShardBytes: 3 * 256);
        Assert.Contains(files, f => f.EndsWith(CheckpointWriter.IndexFileName));
        Assert.Equal(3 + 1, files.Count); // 7 tensors of 256 bytes, 3 per shard, plus the index
        Assert.True(File.Exists(Path.Combine(_dir, "model-00001-of-00003.safetensors")));
        Assert.False(Directory.GetFiles(_dir, "*.partial").Any());

        using var ck = SafetensorsCheckpoint.Open(_dir);
        Assert.Equal(7, ck.Count);
        foreach (var s in specs) Assert.Equal(Data(s), ck.Get(s.Name).Bytes.ToArray());
    }

    [Fact]
    public void SingleFileCheckpoint()
    {
        var specs = new List<TensorSpec> { new("a", DType.F32, [2]) };
        CheckpointWriter.Write(_dir, specs, (s, stream) => stream.Write(TensorEncoding.Encode([1f, 2f], DType.F32)));
        Assert.True(File.Exists(Path.Combine(_dir, CheckpointWriter.SingleFileName)));
        using var ck = SafetensorsCheckpoint.Open(_dir);
        Assert.Equal(new[] { 1f, 2f }, ck.Get("a").ToFloatArray());
        var e = Assert.Throws<UserError>(() => ck.Get("missing"));
        Assert.Contains("'missing'", e.Message);
    }

    [Fact]
    public void WriterRefusesWrongByteCountAndLeavesNoFile()
    {
        string path = Path.Combine(_dir, "bad.safetensors");
        Assert.Throws<InvalidOperationException>(() =>
            SafetensorsWriter.Write(path, [new TensorSpec("x", DType.F32, [4])], (s, stream) => stream.Write(new byte[8])));
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(path + ".partial"));
    }

    // ---- header validation: each rule has its own corrupted file ----

    private string WriteRaw(string header, int dataBytes, long? declaredLength = null)
    {
        string path = Path.Combine(_dir, $"raw{Guid.NewGuid():N}.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)(declaredLength ?? h.Length)));
        f.Write(h);
        f.Write(new byte[dataBytes]);
        return path;
    }

    private static string OpenError(string path)
    {
        var e = Assert.Throws<UserError>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void RejectsFileShorterThanLengthPrefix()
    {
        string path = Path.Combine(_dir, "short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("header length", OpenError(path));
    }

    [Fact]
    public void RejectsHeaderLongerThanFile() =>
        Assert.Contains("past the end", OpenError(WriteRaw("{}", 0, declaredLength: 1000)));

    [Fact]
    public void RejectsAbsurdHeaderLength() =>
        Assert.Contains("limit", OpenError(WriteRaw("{}", 0, declaredLength: long.MaxValue / 2)));

    [Fact]
    public void RejectsInvalidJson() =>
        Assert.Contains("not valid JSON", OpenError(WriteRaw("{\"a\": [", 0)));

    [Fact]
    public void RejectsNonObjectHeader() =>
        Assert.Contains("not a JSON object", OpenError(WriteRaw("[1, 2]", 0)));

    [Fact]
    public void RejectsOffsetsOutsideTheFile() =>
        Assert.Contains("run past the end", OpenError(WriteRaw("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8)));

    [Fact]
    public void RejectsReversedOffsets() =>
        Assert.Contains("begin <= end", OpenError(WriteRaw("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8)));

    [Fact]
    public void RejectsOverlappingTensors() =>
        Assert.Contains("overlap", OpenError(WriteRaw(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)));

    [Fact]
    public void RejectsShapeThatDisagreesWithByteLength() =>
        Assert.Contains("needs 12 bytes", OpenError(WriteRaw("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16)));

    [Fact]
    public void RejectsUnknownDType() =>
        Assert.Contains("unknown dtype", OpenError(WriteRaw("{\"x\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16)));

    [Fact]
    public void RejectsNegativeDimension() =>
        Assert.Contains("non-negative", OpenError(WriteRaw("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4)));

    [Fact]
    public void RejectsDuplicateNames() =>
        Assert.Contains("twice", OpenError(WriteRaw(
            "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8)));

    [Fact]
    public void RejectsMissingDataOffsets() =>
        Assert.Contains("data_offsets", OpenError(WriteRaw("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4)));

    [Fact]
    public void RejectsDirectoryAndMissingFile()
    {
        Assert.Contains("is a directory", Assert.Throws<UserError>(() => SafetensorsFile.Open(_dir)).Message);
        Assert.Contains("not found", Assert.Throws<UserError>(() => SafetensorsFile.Open(Path.Combine(_dir, "nope.safetensors"))).Message);
    }

    [Fact]
    public void IndexNamingAMissingShardIsRejected()
    {
        File.WriteAllText(Path.Combine(_dir, CheckpointWriter.IndexFileName), "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\"}}");
        var e = Assert.Throws<UserError>(() => SafetensorsCheckpoint.Open(_dir));
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void IndexPointingOutsideTheDirectoryIsRejected()
    {
        File.WriteAllText(Path.Combine(_dir, CheckpointWriter.IndexFileName), "{\"weight_map\": {\"a\": \"../evil.safetensors\"}}");
        Assert.Contains("outside", Assert.Throws<UserError>(() => SafetensorsCheckpoint.Open(_dir)).Message);
    }

    [Fact]
    public void IndexAndShardMustAgree()
    {
        string shard = Path.Combine(_dir, "model-00001-of-00001.safetensors");
        SafetensorsWriter.Write(shard, [(new TensorSpec("a", DType.F32, [1]), new byte[4])]);
        File.WriteAllText(Path.Combine(_dir, CheckpointWriter.IndexFileName),
            "{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\", \"b\": \"model-00001-of-00001.safetensors\"}}");
        Assert.Contains("'b'", Assert.Throws<UserError>(() => SafetensorsCheckpoint.Open(_dir)).Message);
    }
}
