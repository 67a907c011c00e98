namespace SlowFast.Tensors.Quantization;

/// <summary>
/// Quantizes and dequantizes rows in a <see cref="BlockFormat"/> with exactly the float32 arithmetic of
/// llama.cpp's reference functions (quantize_row_q8_0_ref, quantize_row_q4_0_ref, dequantize_row_*),
/// so a row gives the same bytes here, there and in tools/quant/blocks.py.
/// </summary>
public static class BlockQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="x"/> (a multiple of 32 elements) into <paramref name="payload"/>
    /// (<see cref="BlockFormats.RowBytes"/> bytes) and <paramref name="scales"/> (one per block).
    /// </summary>
    public static void QuantizeRow(BlockFormat format, ReadOnlySpan<float> x, Span<byte> payload, Span<Half> scales)
    {
        const int B = BlockFormats.BlockSize;
        if (x.Length % B != 0) throw new ArgumentException($"a row of {x.Length} elements is not a whole number of {B}-element blocks", nameof(x));
        int blocks = x.Length / B;
        if (payload.Length < format.RowBytes(x.Length)) throw new ArgumentException("payload too small", nameof(payload));
        if (scales.Length < blocks) throw new ArgumentException("scales too small", nameof(scales));
        for (int b = 0; b < blocks; b++)
        {
            var block = x.Slice(b * B, B);
            if (format == BlockFormat.Q8_0) QuantizeQ8(block, payload.Slice(b * 32, 32), out scales[b]);
            else QuantizeQ4(block, payload.Slice(b * 16, 16), out scales[b]);
        }
    }

    private static void QuantizeQ8(ReadOnlySpan<float> x, Span<byte> qs, out Half scale)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        scale = (Half)d;
        for (int j = 0; j < x.Length; j++) qs[j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    private static void QuantizeQ4(ReadOnlySpan<float> x, Span<byte> qs, out Half scale)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        float d = max / -8f;
        float id = d != 0 ? 1f / d : 0f;
        scale = (Half)d;
        for (int j = 0; j < 16; j++)
        {
            // C's (int8_t) conversion truncates toward zero; the argument is never below 0 here.
            int lo = Math.Min(15, (int)(sbyte)(x[j] * id + 8.5f));
            int hi = Math.Min(15, (int)(sbyte)(x[j + 16] * id + 8.5f));
            qs[j] = (byte)(lo | hi << 4);
        }
    }

    /// <summary>The float32 values of a quantized row: element = (float)scale · q.</summary>
    public static void DequantizeRow(BlockFormat format, ReadOnlySpan<byte> payload, ReadOnlySpan<Half> scales, Span<float> y)
    {
        const int B = BlockFormats.BlockSize;
        if (y.Length % B != 0) throw new ArgumentException($"a row of {y.Length} elements is not a whole number of {B}-element blocks", nameof(y));
        for (int b = 0; b < y.Length / B; b++)
        {
            float d = (float)scales[b];
            var dst = y.Slice(b * B, B);
            if (format == BlockFormat.Q8_0)
                for (int j = 0; j < B; j++) dst[j] = (sbyte)payload[b * 32 + j] * d;
            else
                for (int j = 0; j < 16; j++)
                {
                    byte q = payload[b * 16 + j];
                    dst[j] = ((q & 15) - 8) * d;
                    dst[j + 16] = ((q >> 4) - 8) * d;
                }
        }
    }

    /// <summary>Elements [col, col + y.Length) of a quantized row (col and the length whole blocks).</summary>
    public static void DequantizeRange(BlockFormat format, ReadOnlySpan<byte> rowPayload, ReadOnlySpan<Half> rowScales, int col, Span<float> y)
    {
        const int B = BlockFormats.BlockSize;
        if (col % B != 0 || y.Length % B != 0) throw new ArgumentException("ranges of a quantized row must be whole blocks");
        int b0 = col / B, bytes = format.BlockBytes();
        DequantizeRow(format, rowPayload.Slice(b0 * bytes), rowScales.Slice(b0), y);
    }
}
