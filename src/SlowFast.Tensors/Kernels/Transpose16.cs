using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// A 16×16 block of 32-bit elements transposed in zmm registers (AVX-512F): interleave the 32-bit
/// lanes of row pairs, then the 64-bit lanes of those, then regroup 128-bit lanes across four
/// registers twice. 64 shuffles per block; the bits are moved, never interpreted.
/// </summary>
internal static unsafe class Transpose16
{
    /// <summary>
    /// dst row j, element i = src row i, element j, for 16 rows of 16 elements: src rows
    /// <paramref name="srcStride"/> bytes apart, dst rows <paramref name="dstStride"/> bytes apart.
    /// Callers check <see cref="Avx512F.IsSupported"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block(byte* src, long srcStride, byte* dst, long dstStride)
    {
        var (b0, b1, b2, b3) = FourRows(src, srcStride);
        var (b4, b5, b6, b7) = FourRows(src + 4 * srcStride, srcStride);
        var (b8, b9, b10, b11) = FourRows(src + 8 * srcStride, srcStride);
        var (b12, b13, b14, b15) = FourRows(src + 12 * srcStride, srcStride);
        // bq (q = 4g + c) holds, in 128-bit lane l, rows 4g..4g+3 of column 4l + c.
        Regroup(b0, b4, b8, b12, dst, dstStride);
        Regroup(b1, b5, b9, b13, dst + dstStride, dstStride);
        Regroup(b2, b6, b10, b14, dst + 2 * dstStride, dstStride);
        Regroup(b3, b7, b11, b15, dst + 3 * dstStride, dstStride);
    }

    /// <summary>Four rows, interleaved so that result c holds, in 128-bit lane l, the rows' column 4l + c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) FourRows(byte* src, long stride)
    {
        var r0 = Vector512.Load((float*)src);
        var r1 = Vector512.Load((float*)(src + stride));
        var r2 = Vector512.Load((float*)(src + 2 * stride));
        var r3 = Vector512.Load((float*)(src + 3 * stride));
        var a0 = Avx512F.UnpackLow(r0, r1).AsDouble();    // lane l: r0[4l] r1[4l] r0[4l+1] r1[4l+1]
        var a1 = Avx512F.UnpackHigh(r0, r1).AsDouble();   //         r0[4l+2] r1[4l+2] r0[4l+3] r1[4l+3]
        var a2 = Avx512F.UnpackLow(r2, r3).AsDouble();
        var a3 = Avx512F.UnpackHigh(r2, r3).AsDouble();
        return (Avx512F.UnpackLow(a0, a2).AsSingle(), Avx512F.UnpackHigh(a0, a2).AsSingle(),
                Avx512F.UnpackLow(a1, a3).AsSingle(), Avx512F.UnpackHigh(a1, a3).AsSingle());
    }

    /// <summary>
    /// From the four row groups' column-c registers, stores output rows c, c+4, c+8, c+12 (dst points
    /// at row c): output row 4l + c is lane l of each of the four.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Regroup(Vector512<float> g0, Vector512<float> g1, Vector512<float> g2, Vector512<float> g3, byte* dst, long stride)
    {
        var lo01 = Avx512F.Shuffle4x128(g0, g1, 0x44);   // lanes 0, 1 of g0, then of g1
        var hi01 = Avx512F.Shuffle4x128(g0, g1, 0xEE);   // lanes 2, 3
        var lo23 = Avx512F.Shuffle4x128(g2, g3, 0x44);
        var hi23 = Avx512F.Shuffle4x128(g2, g3, 0xEE);
        Avx512F.Shuffle4x128(lo01, lo23, 0x88).Store((float*)dst);                 // lane 0 of g0..g3
        Avx512F.Shuffle4x128(lo01, lo23, 0xDD).Store((float*)(dst + 4 * stride));  // lane 1
        Avx512F.Shuffle4x128(hi01, hi23, 0x88).Store((float*)(dst + 8 * stride));  // lane 2
        Avx512F.Shuffle4x128(hi01, hi23, 0xDD).Store((float*)(dst + 12 * stride)); // lane 3
    }
}
