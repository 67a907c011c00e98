using SlowFast.Tensors.IO;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Q8_0 and Q4_0 quantize/dequantize against the NumPy reference (tools/quant/blocks.py, fixture
/// Fixtures/quant/blocks.safetensors): the bytes, the float16 scales and the dequantized floats must be
/// identical, bit for bit. The fixture rows include a zero block, halves, a magnitude tie, exact
/// multiples and values so small that the scales are subnormal float16.
/// </summary>
public class QuantBlockFormatTests
{
    internal static string FixturePath(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "SlowFast.sln"))) dir = dir.Parent;
        Assert.True(dir != null, "repository root (SlowFast.sln) not found above the test directory");
        return Path.Combine(dir!.FullName, "tests", "SlowFast.Tensors.Tests", "Fixtures", "quant", name + ".safetensors");
    }

    [Theory]
    [InlineData(BlockFormat.Q8_0)]
    [InlineData(BlockFormat.Q4_0)]
    public void Quantize_is_bit_exact_against_numpy(BlockFormat format)
    {
        using var f = SafetensorsFile.Open(FixturePath("blocks"));
        var x = f.Get("x");
        int rows = (int)x.Dim(0), cols = (int)x.Dim(1);
        var xs = x.ToFloatArray();
        var expectedPayload = f.Get(format.Name() + ".payload").Bytes.ToArray();
        var expectedScales = f.Get(format.Name() + ".scales").AsSpan<Half>().ToArray();
        int rowBytes = (int)format.RowBytes(cols), blocks = cols / 32;
        Assert.Equal(rows * rowBytes, expectedPayload.Length);
        for (int r = 0; r < rows; r++)
        {
            var payload = new byte[rowBytes];
            var scales = new Half[blocks];
            BlockQuantizer.QuantizeRow(format, xs.AsSpan(r * cols, cols), payload, scales);
            Assert.Equal(expectedPayload.AsSpan(r * rowBytes, rowBytes).ToArray(), payload);
            for (int b = 0; b < blocks; b++)
                Assert.Equal(BitConverter.HalfToUInt16Bits(expectedScales[r * blocks + b]), BitConverter.HalfToUInt16Bits(scales[b]));
        }
    }

    [Theory]
    [InlineData(BlockFormat.Q8_0)]
    [InlineData(BlockFormat.Q4_0)]
    public void Dequantize_is_bit_exact_against_numpy(BlockFormat format)
    {
        using var f = SafetensorsFile.Open(FixturePath("blocks"));
        var payload = f.Get(format.Name() + ".payload");
        var scales = f.Get(format.Name() + ".scales").AsSpan<Half>();
        var expected = f.Get(format.Name() + ".dequantized").ToFloatArray();
        int rows = (int)payload.Dim(0), cols = expected.Length / rows;
        int rowBytes = (int)format.RowBytes(cols), blocks = cols / 32;
        var y = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            BlockQuantizer.DequantizeRow(format, payload.Bytes.Slice(r * rowBytes, rowBytes), scales.Slice(r * blocks, blocks), y);
            for (int i = 0; i < cols; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[r * cols + i]), BitConverter.SingleToInt32Bits(y[i]));
        }
    }

    [Fact]
    public void Q4_0_nibble_order_is_llama_cpp()
    {
        // Element j in the low nibble of byte j, element j + 16 in its high nibble, stored as q + 8.
        var x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = j - 16;   // the largest magnitude is −16 → d = 2
        var payload = new byte[16];
        var scales = new Half[1];
        BlockQuantizer.QuantizeRow(BlockFormat.Q4_0, x, payload, scales);
        Assert.Equal((Half)2f, scales[0]);
        for (int j = 0; j < 16; j++)
        {
            int lo = (int)Math.Min(15, MathF.Truncate((j - 16) / 2f + 8.5f)), hi = (int)Math.Min(15, MathF.Truncate(j / 2f + 8.5f));
            Assert.Equal((byte)(lo | hi << 4), payload[j]);
        }
    }

    [Fact]
    public void A_row_that_is_not_whole_blocks_is_refused()
    {
        Assert.Throws<ArgumentException>(() => BlockQuantizer.QuantizeRow(BlockFormat.Q8_0, new float[40], new byte[64], new Half[2]));
    }
}
