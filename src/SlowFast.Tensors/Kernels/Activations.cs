using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>Elementwise activation functions, in place or into a destination, float32.</summary>
public static unsafe class Activations
{
    private const float InvSqrt2 = 0.70710678118654752f;

    /// <summary>
    /// Exact (erf) GELU, as torch nn.GELU() by default: x·½·(1 + erf(x/√2)). For x ≪ 0 the factor
    /// 1 + erf is evaluated as erfc, so tiny negative outputs keep their relative precision (torch
    /// rounds 1 + erf in float32 there, so the two differ by up to ~|x|·3e-8 absolute).
    /// </summary>
    public static void Gelu(Span<float> x)
    {
        fixed (float* p = x)
        {
            int i = 0, n = x.Length;
            for (; i + 16 <= n; i += 16) Gelu(Vector512.Load(p + i)).Store(p + i);
            for (; i < n; i++) p[i] = Gelu(p[i]);
        }
    }

    /// <summary>The GELU of <see cref="Gelu(Span{float})"/> on 16 values (kernels that fuse it call this, so results agree bit for bit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Gelu(Vector512<float> v) => v * Vector512.Create(0.5f) * VectorMath.OnePlusErf(v * Vector512.Create(InvSqrt2));

    /// <summary>The GELU of <see cref="Gelu(Span{float})"/> on one value.</summary>
    internal static float Gelu(float v) => v * 0.5f * VectorMath.OnePlusErf(v * InvSqrt2);

    /// <summary>SiLU (swish): x·sigmoid(x), in place.</summary>
    public static void Silu(Span<float> x) => SiluMulCore(x, default, x, multiply: false);

    /// <summary>SwiGLU: y = silu(gate)·up. <paramref name="y"/> may alias <paramref name="gate"/> or <paramref name="up"/>.</summary>
    public static void SiluMul(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        if (gate.Length != up.Length || y.Length != gate.Length)
            throw new ArgumentException($"SiluMul lengths differ: gate {gate.Length}, up {up.Length}, y {y.Length}");
        SiluMulCore(gate, up, y, multiply: true);
    }

    private static void SiluMulCore(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y, bool multiply)
    {
        if (y.Length != gate.Length) throw new ArgumentException("lengths differ", nameof(y));
        fixed (float* g = gate)
        fixed (float* u = up)
        fixed (float* o = y)
        {
            int i = 0, n = y.Length;
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector512.Load(g + i);
                var s = v * VectorMath.Sigmoid(v);
                if (multiply) s *= Vector512.Load(u + i);
                s.Store(o + i);
            }
            for (; i < n; i++)
            {
                float s = g[i] * VectorMath.Sigmoid(g[i]);
                o[i] = multiply ? s * u[i] : s;
            }
        }
    }

    /// <summary>tanh, in place (max relative error ≈ 2e-7).</summary>
    public static void Tanh(Span<float> x)
    {
        fixed (float* p = x)
        {
            int i = 0, n = x.Length;
            for (; i + 16 <= n; i += 16) VectorMath.Tanh(Vector512.Load(p + i)).Store(p + i);
            for (; i < n; i++) p[i] = VectorMath.Tanh(p[i]);
        }
    }

    /// <summary>erf of one value (max relative error ≈ 2e-7), exposed for callers and tests.</summary>
    public static float Erf(float x) => VectorMath.Erf(x);

    /// <summary>erf, in place.</summary>
    public static void Erf(Span<float> x)
    {
        fixed (float* p = x)
        {
            int i = 0, n = x.Length;
            for (; i + 16 <= n; i += 16) VectorMath.Erf(Vector512.Load(p + i)).Store(p + i);
            for (; i < n; i++) p[i] = VectorMath.Erf(p[i]);
        }
    }
}
