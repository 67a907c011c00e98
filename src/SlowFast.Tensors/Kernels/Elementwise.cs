using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>Vectorised elementwise helpers over float spans. Destinations may alias sources.</summary>
public static unsafe class Elementwise
{
    /// <summary>y = a + b.</summary>
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        CheckSame(a.Length, b.Length, y.Length);
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* py = y)
        {
            int i = 0, n = y.Length;
            for (; i + 16 <= n; i += 16) (Vector512.Load(pa + i) + Vector512.Load(pb + i)).Store(py + i);
            for (; i < n; i++) py[i] = pa[i] + pb[i];
        }
    }

    /// <summary>y += x.</summary>
    public static void AddInPlace(Span<float> y, ReadOnlySpan<float> x) => Add(y, x, y);

    /// <summary>y += scale · x.</summary>
    public static void AddScaledInPlace(Span<float> y, ReadOnlySpan<float> x, float scale)
    {
        CheckSame(y.Length, x.Length, x.Length);
        fixed (float* px = x) fixed (float* py = y)
        {
            int i = 0, n = y.Length;
            var s = Vector512.Create(scale);
            for (; i + 16 <= n; i += 16) Vector512.FusedMultiplyAdd(Vector512.Load(px + i), s, Vector512.Load(py + i)).Store(py + i);
            for (; i < n; i++) py[i] = MathF.FusedMultiplyAdd(px[i], scale, py[i]);
        }
    }

    /// <summary>y = a · b (elementwise).</summary>
    public static void Mul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        CheckSame(a.Length, b.Length, y.Length);
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* py = y)
        {
            int i = 0, n = y.Length;
            for (; i + 16 <= n; i += 16) (Vector512.Load(pa + i) * Vector512.Load(pb + i)).Store(py + i);
            for (; i < n; i++) py[i] = pa[i] * pb[i];
        }
    }

    /// <summary>x *= scale, in place.</summary>
    public static void Scale(Span<float> x, float scale)
    {
        fixed (float* p = x)
        {
            int i = 0, n = x.Length;
            var s = Vector512.Create(scale);
            for (; i + 16 <= n; i += 16) (Vector512.Load(p + i) * s).Store(p + i);
            for (; i < n; i++) p[i] *= scale;
        }
    }

    /// <summary>Largest element (−∞ for an empty span; NaN-insensitive like Vector512.Max).</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        fixed (float* p = x)
        {
            int i = 0, n = x.Length;
            float max = float.NegativeInfinity;
            if (n >= 16)
            {
                var m = Vector512.Load(p);
                for (i = 16; i + 16 <= n; i += 16) m = Vector512.Max(m, Vector512.Load(p + i));
                for (int j = 0; j < 16; j++) max = MathF.Max(max, m[j]);
            }
            for (; i < n; i++) max = MathF.Max(max, p[i]);
            return max;
        }
    }

    /// <summary>Σ a·b.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        CheckSame(a.Length, b.Length, b.Length);
        fixed (float* pa = a) fixed (float* pb = b) return Dot(pa, pb, a.Length);
    }

    internal static float Dot(float* a, float* b, int n)
    {
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc);
        float s = Vector512.Sum(acc);
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    private static void CheckSame(int a, int b, int y)
    {
        if (a != b || a != y) throw new ArgumentException($"span lengths differ: {a}, {b}, {y}");
    }
}
