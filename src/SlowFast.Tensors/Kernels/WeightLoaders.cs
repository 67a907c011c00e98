using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Compile-time choice of weight element type: kernels are generic over a struct implementing this,
/// so the JIT emits one specialised loop per dtype with no per-element branching.
/// </summary>
internal unsafe interface IWeightLoader
{
    /// <summary>Bytes per stored element.</summary>
    static abstract int ElementSize { get; }
    /// <summary>16 elements at <paramref name="p"/> as floats.</summary>
    static abstract Vector512<float> Load16(byte* p);
    /// <summary>One element at <paramref name="p"/> as float.</summary>
    static abstract float Load1(byte* p);
}

internal unsafe struct F32Loader : IWeightLoader
{
    public static int ElementSize => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load16(byte* p) => Vector512.Load((float*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load1(byte* p) => *(float*)p;
}

internal unsafe struct BF16Loader : IWeightLoader
{
    public static int ElementSize => 2;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load16(byte* p) => WeightConvert.LoadBF16((ushort*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load1(byte* p) => DTypes.BF16ToFloat(*(ushort*)p);
}

internal unsafe struct F16Loader : IWeightLoader
{
    public static int ElementSize => 2;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load16(byte* p) => WeightConvert.LoadF16((ushort*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load1(byte* p) => (float)*(Half*)p;
}
