using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Vectorised float32 special functions with scalar twins that compute exactly the same thing (so
/// tails give identical results). Polynomials were fitted (minimax-style, Chebyshev nodes) to
/// double-precision references; measured max relative error: erf ≈ 1.8e-7, tanh ≈ 2e-7.
/// </summary>
internal static class VectorMath
{
    // erf(x)/x ≈ P(x²) on [0, 1).
    private const float E0 = 7.933255255920812e-05f, E1 = -0.0008034778293222189f, E2 = 0.005191211123019457f,
        E3 = -0.02685539610683918f, E4 = 0.11283625662326813f, E5 = -0.3761262893676758f, E6 = 1.128379225730896f;
    // erfc(x)·exp(x²) ≈ Q(1/(1+x)) on [1, ∞).
    private const float F0 = 1.0233088731765747f, F1 = -3.4672653675079346f, F2 = 4.763177871704102f,
        F3 = -2.973074436187744f, F4 = 0.3572499454021454f, F5 = 0.16635987162590027f, F6 = 0.5773969888687134f,
        F7 = 0.5633215308189392f, F8 = 2.5096158424275927e-05f;
    // tanh(x)/x ≈ T(x²) on [0, 0.625).
    private const float T0 = 0.002146845916286111f, T1 = -0.00818149745464325f, T2 = 0.021702198311686516f,
        T3 = -0.05394696071743965f, T4 = 0.1333320587873459f, T5 = -0.3333333134651184f, T6 = 1.0f;

    // exp: x = n·ln2 + r with |r| ≤ ln2/2, e^r ≈ 1 + r + r²·X(r), result scaled by 2^n.
    private const float Log2E = 1.44269504088896341f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    private const float X0 = 1.9875691500e-4f, X1 = 1.3981999507e-3f, X2 = 8.3334519073e-3f,
        X3 = 4.1665795894e-2f, X4 = 1.6666665459e-1f, X5 = 5.0000001201e-1f;
    // Below this e^x is under half the smallest subnormal (so 0); above the upper bound it is +∞.
    private const float ExpMin = -104f, ExpMax = 88.8f;

    /// <summary>
    /// e^x, elementwise (max relative error ≈ 2e-7; 0 for −∞, +∞ past float range). The runtime's
    /// Vector512.Exp for float measured ~10× slower here (about 220 cycles a vector).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(ExpMin)), Vector512.Create(ExpMax));
        var n = Vector512.Round(x * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Fma(Vector512.Create(X0), r, X1);
        p = Fma(p, r, X2); p = Fma(p, r, X3); p = Fma(p, r, X4); p = Fma(p, r, X5);
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        return Avx512F.IsSupported ? Avx512F.Scale(p, n) : p * ScalarPow2(n);
    }

    private static Vector512<float> ScalarPow2(Vector512<float> n)
    {
        var r = Vector512<float>.Zero;
        for (int i = 0; i < 16; i++) r = r.WithElement(i, MathF.ScaleB(1f, (int)n.GetElement(i)));
        return r;
    }

    /// <summary>e^x for one value, same formula as <see cref="Exp(Vector512{float})"/>.</summary>
    public static float Exp(float x)
    {
        x = MathF.Min(MathF.Max(x, ExpMin), ExpMax);
        float n = MathF.Round(x * Log2E);
        float r = MathF.FusedMultiplyAdd(n, -Ln2Hi, x);
        r = MathF.FusedMultiplyAdd(n, -Ln2Lo, r);
        float p = MathF.FusedMultiplyAdd(X0, r, X1);
        p = MathF.FusedMultiplyAdd(p, r, X2); p = MathF.FusedMultiplyAdd(p, r, X3);
        p = MathF.FusedMultiplyAdd(p, r, X4); p = MathF.FusedMultiplyAdd(p, r, X5);
        p = MathF.FusedMultiplyAdd(p, r * r, r + 1f);
        return MathF.ScaleB(p, (int)n);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, float c) =>
        Vector512.FusedMultiplyAdd(a, b, Vector512.Create(c));

    /// <summary>erf(a)/a for |a| &lt; 1: a polynomial in z = a².</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ErfOverX(Vector512<float> z)
    {
        var p = Fma(Vector512.Create(E0), z, E1);
        p = Fma(p, z, E2); p = Fma(p, z, E3); p = Fma(p, z, E4); p = Fma(p, z, E5); p = Fma(p, z, E6);
        return p;
    }

    /// <summary>erfc(a) for a ≥ 1 (z = a²): a polynomial in 1/(1 + a) times e^(−z).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Erfc(Vector512<float> a, Vector512<float> z)
    {
        var t = Vector512<float>.One / (Vector512<float>.One + a);
        var q = Fma(Vector512.Create(F0), t, F1);
        q = Fma(q, t, F2); q = Fma(q, t, F3); q = Fma(q, t, F4); q = Fma(q, t, F5); q = Fma(q, t, F6); q = Fma(q, t, F7); q = Fma(q, t, F8);
        return q * Exp(-z);
    }

    private static float ErfOverX(float z)
    {
        float p = MathF.FusedMultiplyAdd(E0, z, E1);
        p = MathF.FusedMultiplyAdd(p, z, E2); p = MathF.FusedMultiplyAdd(p, z, E3); p = MathF.FusedMultiplyAdd(p, z, E4);
        p = MathF.FusedMultiplyAdd(p, z, E5); p = MathF.FusedMultiplyAdd(p, z, E6);
        return p;
    }

    private static float Erfc(float a, float z)
    {
        float t = 1f / (1f + a);
        float q = MathF.FusedMultiplyAdd(F0, t, F1);
        q = MathF.FusedMultiplyAdd(q, t, F2); q = MathF.FusedMultiplyAdd(q, t, F3); q = MathF.FusedMultiplyAdd(q, t, F4);
        q = MathF.FusedMultiplyAdd(q, t, F5); q = MathF.FusedMultiplyAdd(q, t, F6); q = MathF.FusedMultiplyAdd(q, t, F7);
        q = MathF.FusedMultiplyAdd(q, t, F8);
        return q * Exp(-z);
    }

    /// <summary>erf, elementwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Erf(Vector512<float> x)
    {
        var a = Vector512.Abs(x);
        var z = a * a;
        var small = a * ErfOverX(z);
        var large = Vector512<float>.One - Erfc(a, z);
        var r = Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512<float>.One), small, large);
        return CopySign(r, x);
    }

    /// <summary>erf of one value, same formula as <see cref="Erf(Vector512{float})"/>.</summary>
    public static float Erf(float x)
    {
        float a = MathF.Abs(x), z = a * a;
        float r = a < 1f ? a * ErfOverX(z) : 1f - Erfc(a, z);
        return MathF.CopySign(r, x);
    }

    /// <summary>
    /// 1 + erf(x), elementwise. For x ≤ −1 it is computed directly as erfc(|x|) instead of 1 − (1 − erfc),
    /// which keeps full relative precision in the far negative tail (GELU's small outputs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> OnePlusErf(Vector512<float> x)
    {
        var a = Vector512.Abs(x);
        var z = a * a;
        var small = Vector512<float>.One + x * ErfOverX(z);
        var erfc = Erfc(a, z);
        var large = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), erfc, Vector512.Create(2f) - erfc);
        return Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512<float>.One), small, large);
    }

    /// <summary>1 + erf(x) for one value, same formula as the vector version.</summary>
    public static float OnePlusErf(float x)
    {
        float a = MathF.Abs(x), z = a * a;
        if (a < 1f) return 1f + x * ErfOverX(z);
        float erfc = Erfc(a, z);
        return x < 0 ? erfc : 2f - erfc;
    }

    /// <summary>tanh, elementwise (odd polynomial near 0, (1 − e^{−2|x|})/(1 + e^{−2|x|}) elsewhere).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Tanh(Vector512<float> x)
    {
        var a = Vector512.Abs(x);
        var z = a * a;
        var p = Fma(Vector512.Create(T0), z, T1);
        p = Fma(p, z, T2); p = Fma(p, z, T3); p = Fma(p, z, T4); p = Fma(p, z, T5); p = Fma(p, z, T6);
        var small = a * p;
        var e = Exp(Vector512.Min(a, Vector512.Create(20f)) * Vector512.Create(-2f));
        var large = (Vector512<float>.One - e) / (Vector512<float>.One + e);
        var r = Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(0.625f)), small, large);
        return CopySign(r, x);
    }

    /// <summary>tanh of one value, same formula as the vector version.</summary>
    public static float Tanh(float x)
    {
        float a = MathF.Abs(x), r;
        if (a < 0.625f)
        {
            float z = a * a;
            float p = MathF.FusedMultiplyAdd(T0, z, T1);
            p = MathF.FusedMultiplyAdd(p, z, T2); p = MathF.FusedMultiplyAdd(p, z, T3); p = MathF.FusedMultiplyAdd(p, z, T4);
            p = MathF.FusedMultiplyAdd(p, z, T5); p = MathF.FusedMultiplyAdd(p, z, T6);
            r = a * p;
        }
        else
        {
            float e = Exp(MathF.Min(a, 20f) * -2f);
            r = (1f - e) / (1f + e);
        }
        return MathF.CopySign(r, x);
    }

    /// <summary>The logistic sigmoid 1/(1+e^{−x}).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sigmoid(Vector512<float> x) =>
        Vector512<float>.One / (Vector512<float>.One + Exp(-x));

    public static float Sigmoid(float x) => 1f / (1f + Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> CopySign(Vector512<float> magnitude, Vector512<float> sign) =>
        (magnitude.AsUInt32() | (sign.AsUInt32() & Vector512.Create(0x8000_0000u))).AsSingle();
}
