using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Register-level conversion of stored weight elements (F32, BF16, F16) to float32 vectors.
/// BF16 is the top half of a float32, so widening and shifting left by 16 is exact. F16 is
/// converted with integer/float bit tricks (the runtime exposes no F16C intrinsics).
/// </summary>
internal static unsafe class WeightConvert
{
    /// <summary>16 BF16 values at <paramref name="p"/> as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadBF16(ushort* p)
    {
        if (Avx512F.IsSupported)
            return Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), 16).AsSingle();
        var wide = Vector512.WidenLower(Vector512.Create(Vector256.Load(p), Vector256<ushort>.Zero));
        return Vector512.ShiftLeft(wide, 16).AsSingle();
    }

    /// <summary>16 IEEE half values at <paramref name="p"/> as floats (exact, including subnormals, inf and NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadF16(ushort* p)
    {
        Vector512<uint> h = Avx512F.IsSupported
            ? Avx512F.ConvertToVector512UInt32(Vector256.Load(p))
            : Vector512.WidenLower(Vector512.Create(Vector256.Load(p), Vector256<ushort>.Zero));
        var sign = (h & Vector512.Create(0x8000u)) << 16;
        var exponentMantissa = (h & Vector512.Create(0x7FFFu)) << 13;
        // Reinterpreting the shifted bits as a float with exponent bias 127 instead of 15 is off by
        // 2^112; multiplying fixes normals and subnormals alike.
        var scaled = (exponentMantissa.AsSingle() * Vector512.Create(5.192296858534828e33f)).AsUInt32();
        var isInfOrNaN = Vector512.GreaterThanOrEqual(exponentMantissa, Vector512.Create(0x0F80_0000u));
        var infNaN = exponentMantissa | Vector512.Create(0x7F80_0000u);
        return (Vector512.ConditionalSelect(isInfOrNaN, infNaN, scaled) | sign).AsSingle();
    }

    /// <summary>16 elements of <paramref name="dtype"/> at <paramref name="p"/> as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(DType dtype, byte* p) => dtype switch
    {
        DType.BF16 => LoadBF16((ushort*)p),
        DType.F16 => LoadF16((ushort*)p),
        _ => Vector512.Load((float*)p),
    };

    /// <summary>One element as float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(DType dtype, byte* p) => dtype switch
    {
        DType.BF16 => DTypes.BF16ToFloat(*(ushort*)p),
        DType.F16 => (float)*(Half*)p,
        _ => *(float*)p,
    };

    /// <summary>Converts dst.Length consecutive elements starting at <paramref name="src"/>.</summary>
    public static void ToFloat(DType dtype, byte* src, Span<float> dst)
    {
        int size = dtype.SizeOf();
        int i = 0;
        fixed (float* d = dst)
        {
            for (; i + 16 <= dst.Length; i += 16) Load(dtype, src + (long)i * size).Store(d + i);
            for (; i < dst.Length; i++) d[i] = LoadScalar(dtype, src + (long)i * size);
        }
    }
}
