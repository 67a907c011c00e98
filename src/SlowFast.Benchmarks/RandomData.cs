using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>
/// Random inputs and weights for timing. Speed does not depend on the values (as long as they are
/// finite and not denormal), so the values come from a cheap counter hash filled in parallel: a 7B
/// layer's half a gigabyte of weights is ready in a fraction of a second.
/// </summary>
public static class RandomData
{
    /// <summary>Uniform values in [-scale, scale).</summary>
    public static float[] Floats(long count, float scale = 1f, ulong seed = 1)
    {
        var a = GC.AllocateUninitializedArray<float>(checked((int)count), pinned: true);
        Fill(a, scale, seed);
        return a;
    }

    private static void Fill(float[] a, float scale = 1f, ulong seed = 1)
    {
        const int chunk = 1 << 20;
        int chunks = (int)((a.LongLength + chunk - 1) / chunk);
        Parallel.For(0, chunks, c =>
        {
            int start = c * chunk, end = (int)Math.Min(a.LongLength, (long)start + chunk);
            for (int i = start; i < end; i++) a[i] = Uniform(seed, i) * scale;
        });
    }

    /// <summary>A pinned [rows, cols] weight matrix of <paramref name="dtype"/> (F32, BF16 or F16) with values of about ±1/√cols.</summary>
    public static WeightMatrix Matrix(int rows, int cols, DType dtype, ulong seed = 1)
    {
        long count = (long)rows * cols;
        float scale = 1f / MathF.Sqrt(cols);
        if (dtype == DType.F32) return WeightMatrix.FromFloats(Floats(count, scale, seed), rows, cols);
        var bits = GC.AllocateUninitializedArray<ushort>(checked((int)count), pinned: true);
        const int chunk = 1 << 20;
        int chunks = (int)((count + chunk - 1) / chunk);
        bool bf16 = dtype == DType.BF16;
        if (!bf16 && dtype != DType.F16) throw new ArgumentException($"weights of {dtype} are not supported", nameof(dtype));
        Parallel.For(0, chunks, c =>
        {
            int start = c * chunk, end = (int)Math.Min(count, (long)start + chunk);
            for (int i = start; i < end; i++)
            {
                float v = Uniform(seed, i) * scale;
                bits[i] = bf16 ? DTypes.FloatToBF16(v) : BitConverter.HalfToUInt16Bits((Half)v);
            }
        });
        return WeightMatrix.FromHalfBits(bits, dtype, rows, cols);
    }

    /// <summary>SplitMix64 of (seed, index) mapped to [-1, 1).</summary>
    private static float Uniform(ulong seed, long index)
    {
        ulong z = seed * 0x9E3779B97F4A7C15UL + (ulong)index * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 40) * (1f / (1 << 23)) - 1f;
    }
}
