using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SlowFast.Tensors;

/// <summary>Element types as safetensors names them.</summary>
public enum DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool }

public static class DTypes
{
    public static int SizeOf(this DType t) => t switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        _ => 1,
    };

    /// <summary>The safetensors header spelling ("F32", "BF16", "BOOL", ...).</summary>
    public static string ToSafetensorsName(this DType t) => t == DType.Bool ? "BOOL" : t.ToString().ToUpperInvariant();

    public static bool TryParse(string name, out DType type)
    {
        switch (name)
        {
            case "F32": type = DType.F32; return true;
            case "F16": type = DType.F16; return true;
            case "BF16": type = DType.BF16; return true;
            case "F64": type = DType.F64; return true;
            case "I64": type = DType.I64; return true;
            case "I32": type = DType.I32; return true;
            case "I16": type = DType.I16; return true;
            case "I8": type = DType.I8; return true;
            case "U8": type = DType.U8; return true;
            case "BOOL": type = DType.Bool; return true;
            default: type = default; return false;
        }
    }

    public static DType ParseUserName(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" or "fp32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "float16" or "fp16" or "half" => DType.F16,
        _ => throw new UserError($"unknown dtype '{name}' (expected f32, bf16 or f16)"),
    };

    /// <summary>BF16 is the top half of an IEEE float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToFloat(ushort v) => BitConverter.Int32BitsToSingle(v << 16);

    /// <summary>Round-to-nearest-even float32 to BF16, as PyTorch's <c>.to(torch.bfloat16)</c> does (NaN stays NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToBF16(float f)
    {
        uint bits = (uint)BitConverter.SingleToInt32Bits(f);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((bits >> 16) | 0x40); // quiet NaN
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>16 floats rounded as <see cref="FloatToBF16(float)"/>; each BF16 value is in the low half of its lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> FloatToBF16(Vector512<float> v)
    {
        var bits = v.AsUInt32();
        var rounded = (bits + (Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One))) >> 16;
        var isNaN = Vector512.GreaterThan(bits & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        return Vector512.ConditionalSelect(isNaN, (bits >> 16) | Vector512.Create(0x40u), rounded);
    }
}
