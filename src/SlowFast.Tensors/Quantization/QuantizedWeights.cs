using System.Runtime.InteropServices;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Quantization;

/// <summary>Makes block-quantized <see cref="WeightMatrix"/> values: over stored tensors, or by quantizing in memory.</summary>
public static unsafe class QuantizedWeights
{
    /// <summary>Name of the scales tensor stored beside a quantized tensor NAME.</summary>
    public static string ScalesName(string name) => name + ".scales";

    /// <summary>
    /// A quantized matrix of logical shape [<paramref name="rows"/>, <paramref name="cols"/>] over a stored
    /// payload tensor (U8 [rows, RowBytes]) and scales tensor (F16 [rows, cols/32]); any disagreement is a
    /// <see cref="UserError"/> naming the tensor.
    /// </summary>
    public static WeightMatrix FromTensors(BlockFormat format, long rows, long cols, TensorView payload, TensorView scales)
    {
        if (cols % BlockFormats.BlockSize != 0)
            throw new UserError($"tensor '{payload.Name}': {cols} columns are not whole {BlockFormats.BlockSize}-element blocks, so it cannot be {format.Name()}");
        long rowBytes = format.RowBytes(cols), blocks = cols / BlockFormats.BlockSize;
        if (payload.DType != DType.U8 || payload.Rank != 2 || payload.Dim(0) != rows || payload.Dim(1) != rowBytes)
            throw new UserError($"tensor '{payload.Name}' is {payload.DType} {payload.ShapeString}; {format.Name()} of [{rows}, {cols}] is stored as U8 [{rows}, {rowBytes}]");
        if (scales.DType != DType.F16 || scales.Rank != 2 || scales.Dim(0) != rows || scales.Dim(1) != blocks)
            throw new UserError($"tensor '{scales.Name}' is {scales.DType} {scales.ShapeString}; the scales of {format.Name()} [{rows}, {cols}] are F16 [{rows}, {blocks}] (blocks of {BlockFormats.BlockSize})");
        if (rows > int.MaxValue || cols > int.MaxValue) throw new UserError($"tensor '{payload.Name}' is too large");
        return new WeightMatrix(format, (int)rows, (int)cols, payload.Data, (Half*)scales.Data);
    }

    /// <summary>A quantized matrix over arrays (tests and benchmarks); the arrays are pinned and kept alive.</summary>
    public static WeightMatrix FromArrays(BlockFormat format, int rows, int cols, byte[] payload, Half[] scales)
    {
        if (payload.Length < rows * format.RowBytes(cols) || scales.Length < (long)rows * (cols / BlockFormats.BlockSize))
            throw new ArgumentException($"arrays too small for {format.Name()} [{rows}, {cols}]");
        var owner = new NativeBlock(payload, scales);
        return new WeightMatrix(format, rows, cols, (byte*)owner.Payload, (Half*)owner.Scales, owner);
    }

    /// <summary>
    /// Quantizes <paramref name="source"/> (F32/BF16/F16, columns a multiple of 32) into native memory the
    /// result owns (freed when no WeightMatrix refers to it); the source is read row by row.
    /// </summary>
    public static WeightMatrix Quantize(WeightMatrix source, BlockFormat format)
    {
        if (source.IsQuantized) throw new ArgumentException("the matrix is already quantized", nameof(source));
        int rows = source.Rows, cols = source.Cols, blocks = cols / BlockFormats.BlockSize;
        if (cols % BlockFormats.BlockSize != 0) throw new ArgumentException($"{cols} columns are not whole blocks", nameof(source));
        long rowBytes = format.RowBytes(cols);
        var owner = new NativeBlock(rows * rowBytes, (long)rows * blocks * 2);
        byte* payload = (byte*)owner.Payload;
        Half* scales = (Half*)owner.Scales;
        Parallel.For(0, rows, () => new float[cols], (r, _, buffer) =>
        {
            source.ReadRow(r, 0, buffer);
            QuantizeRow(format, buffer, payload + r * rowBytes, scales + (long)r * blocks, rowBytes, blocks);
            return buffer;
        }, _ => { });
        return new WeightMatrix(format, rows, cols, payload, scales, owner);
    }

    private static void QuantizeRow(BlockFormat format, float[] row, byte* payload, Half* scales, long rowBytes, int blocks) =>
        BlockQuantizer.QuantizeRow(format, row, new Span<byte>(payload, (int)rowBytes), new Span<Half>(scales, blocks));

    /// <summary>Native memory for a payload and its scales (64-byte aligned), freed by the finalizer.</summary>
    private sealed class NativeBlock
    {
        public readonly void* Payload;
        public readonly void* Scales;

        public NativeBlock(long payloadBytes, long scaleBytes)
        {
            Payload = NativeMemory.AlignedAlloc((nuint)Math.Max(64, payloadBytes), 64);
            Scales = NativeMemory.AlignedAlloc((nuint)Math.Max(64, scaleBytes), 64);
            // Written once, right after: on huge pages their first touch costs less (HugePages).
            HugePages.Advise(Payload, payloadBytes);
            HugePages.Advise(Scales, scaleBytes);
            GC.AddMemoryPressure(payloadBytes + scaleBytes);
            _bytes = payloadBytes + scaleBytes;
        }

        public NativeBlock(byte[] payload, Half[] scales) : this(payload.Length, scales.Length * 2L)
        {
            payload.CopyTo(new Span<byte>(Payload, payload.Length));
            scales.CopyTo(new Span<Half>(Scales, scales.Length));
        }

        private readonly long _bytes;

        ~NativeBlock()
        {
            NativeMemory.AlignedFree(Payload);
            NativeMemory.AlignedFree(Scales);
            GC.RemoveMemoryPressure(_bytes);
        }
    }
}
