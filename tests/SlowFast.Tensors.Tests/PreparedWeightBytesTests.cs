using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// The sizes the memory estimate counts for copies of a matrix made once (<see cref="MatMul.PackedBFloat16Bytes"/>,
/// <see cref="Int8ChannelWeights.BytesFor"/>) against what making them allocates on the calling thread.
/// </summary>
public class PreparedWeightBytesTests
{
    private static WeightMatrix Bf16(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var bits = new ushort[rows * cols];
        for (int i = 0; i < bits.Length; i++) bits[i] = DTypes.FloatToBF16((float)(rng.NextDouble() - 0.5));
        return WeightMatrix.FromHalfBits(bits, DType.BF16, rows, cols);
    }

    [Theory]
    [InlineData(200, 333)]   // a partial strip of rows, an odd K
    [InlineData(512, 1024)]
    public void Packing_for_bf16_allocates_the_bytes_counted_for_it(int rows, int cols)
    {
        if (!MatMul.BFloat16Supported) return;   // nothing is packed: PackForBFloat16 returns the matrix itself
        MatMul.PackForBFloat16(Bf16(rows, cols, 1));   // the packing threads' scratch, made once
        var w = Bf16(rows, cols, 2);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var packed = MatMul.PackForBFloat16(w);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(packed.IsPackedForBFloat16);
        long counted = MatMul.PackedBFloat16Bytes(rows, cols);
        Assert.True(counted >= (long)((rows + 63) / 64 * 64) * cols * 2, $"{counted} bytes cannot hold the 64-row strips");
        Assert.InRange(allocated - counted, 0, 1024);   // the array and the matrix object's few bytes besides
    }

    [Theory]
    [InlineData(200, 333)]
    [InlineData(512, 2048)]
    [InlineData(640, 98)]    // K not a multiple of 4 (a strip's last quad padded), ten strips
    public void Int8_channel_weights_allocate_the_bytes_counted_for_them(int rows, int cols)
    {
        var w = Bf16(rows, cols, 3);
        Int8ChannelWeights.Quantize(Bf16(rows, cols, 4));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var q = Int8ChannelWeights.Quantize(w);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(rows, q.Rows);
        long counted = Int8ChannelWeights.BytesFor(rows, cols);
        Assert.Equal(q.StripCount * (q.StripBytes + 64L * sizeof(float)), counted);   // every strip: its padded quads, its 64 scales
        Assert.True(counted >= (long)rows * cols + rows * 4L, $"{counted} bytes cannot hold a byte an element and a scale a row");
        // Besides: the object, and the rows the calling thread quantizes itself (a float and a byte per column, per strip).
        Assert.InRange(allocated - counted, 0, 1024 + (rows + 63) / 64 * 5L * cols);
    }
}
