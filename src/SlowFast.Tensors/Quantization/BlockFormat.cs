namespace SlowFast.Tensors.Quantization;

/// <summary>
/// Block-quantized weight formats, llama.cpp's Q8_0 and Q4_0: a row of K weights is cut into blocks of
/// <see cref="BlockFormats.BlockSize"/> = 32 consecutive elements, each stored as 32 small integers and
/// one float16 scale d (element = d · q).
/// </summary>
/// <remarks>
/// Unlike llama.cpp, which interleaves each block's scale with its integers (34 or 18 bytes a block),
/// a checkpoint stores the integers of a whole matrix as one U8 tensor and the scales as a second F16
/// tensor ([N, K/32]), so that rows of integers stay 64-byte steps a kernel reads straight from the
/// memory map. The bytes of one block are exactly llama.cpp's <c>qs</c> field.
/// </remarks>
public enum BlockFormat
{
    /// <summary>32 int8 (two's complement, stored as U8 bytes) per block; d = max|x| / 127, q = round-half-away(x / d).</summary>
    Q8_0,
    /// <summary>
    /// 16 bytes per block: byte j holds element j in its low nibble and element j + 16 in its high
    /// nibble, each as q + 8 ∈ [0, 15]; d = m / −8 where m is the element of largest magnitude (the first
    /// such), q = min(15, trunc(x / d + 8.5)) − 8.
    /// </summary>
    Q4_0,
}

public static class BlockFormats
{
    /// <summary>Elements per block (both formats).</summary>
    public const int BlockSize = 32;

    /// <summary>Payload bytes per block: 32 for Q8_0, 16 for Q4_0.</summary>
    public static int BlockBytes(this BlockFormat f) => f == BlockFormat.Q8_0 ? 32 : 16;

    /// <summary>Payload bytes of a row of <paramref name="cols"/> elements.</summary>
    public static long RowBytes(this BlockFormat f, long cols) => cols / BlockSize * f.BlockBytes();

    /// <summary>The name config.json and the tools use: "q8_0" or "q4_0".</summary>
    public static string Name(this BlockFormat f) => f == BlockFormat.Q8_0 ? "q8_0" : "q4_0";

    /// <summary>Parses "q8", "q8_0", "q4", "q4_0" (any case).</summary>
    public static BlockFormat Parse(string text) => text.ToLowerInvariant() switch
    {
        "q8" or "q8_0" => BlockFormat.Q8_0,
        "q4" or "q4_0" => BlockFormat.Q4_0,
        _ => throw new UserError($"unknown quantization '{text}' (expected q8 or q4)"),
    };

    public static bool TryParseName(string text, out BlockFormat format)
    {
        switch (text)
        {
            case "q8_0": format = BlockFormat.Q8_0; return true;
            case "q4_0": format = BlockFormat.Q4_0; return true;
            default: format = default; return false;
        }
    }
}
