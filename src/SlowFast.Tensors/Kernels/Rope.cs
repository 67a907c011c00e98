using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// HF Qwen2 rotary position embedding, "rotate_half" (non-interleaved) layout: for head dimension D,
/// inv_freq[i] = 1 / θ^(2i/D) (i &lt; D/2), angle = position · inv_freq[i] (both float32, as HF
/// computes them), and x' = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x[D/2:], x[:D/2]).
/// </summary>
/// <remarks>cos/sin are tabulated per (θ, D) for positions seen so far; the table grows on demand.</remarks>
public static unsafe class Rope
{
    private sealed class Table
    {
        public required float Theta;
        public required int HeadDim;
        public required float[] InvFreq;
        public float[] Cos = Array.Empty<float>(); // [positions, D/2]
        public float[] Sin = Array.Empty<float>();
        public int Positions;
    }

    private static readonly object _lock = new();
    private static readonly List<Table> _tables = new();

    /// <summary>
    /// Rotates x, laid out [tokens, heads, headDim], in place; token t is at position positions[t].
    /// </summary>
    public static void Apply(Span<float> x, int heads, int headDim, ReadOnlySpan<int> positions, float theta)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"rope head dimension {headDim} must be even and positive", nameof(headDim));
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads));
        int tokens = positions.Length;
        if (x.Length != (long)tokens * heads * headDim)
            throw new ArgumentException($"x has {x.Length} floats; expected {tokens} tokens × {heads} heads × {headDim}", nameof(x));
        int maxPos = 0;
        foreach (int p in positions)
        {
            if (p < 0) throw new ArgumentOutOfRangeException(nameof(positions), $"negative position {p}");
            maxPos = Math.Max(maxPos, p);
        }
        var (cosTable, sinTable) = GetTable(theta, headDim, maxPos + 1);
        int half = headDim / 2;
        fixed (float* px = x) fixed (float* pc = cosTable) fixed (float* ps = sinTable)
        {
            for (int t = 0; t < tokens; t++)
            {
                float* cos = pc + (long)positions[t] * half, sin = ps + (long)positions[t] * half;
                for (int h = 0; h < heads; h++)
                    Rotate(px + ((long)t * heads + h) * headDim, cos, sin, half);
            }
        }
    }

    private static void Rotate(float* x, float* cos, float* sin, int half)
    {
        float* x2 = x + half;
        int i = 0;
        // Products and sums are rounded separately (no FMA), exactly as the PyTorch expression does.
        for (; i + 16 <= half; i += 16)
        {
            var a = Vector512.Load(x + i);
            var b = Vector512.Load(x2 + i);
            var c = Vector512.Load(cos + i);
            var s = Vector512.Load(sin + i);
            (a * c - b * s).Store(x + i);
            (b * c + a * s).Store(x2 + i);
        }
        for (; i < half; i++)
        {
            float a = x[i], b = x2[i];
            x[i] = a * cos[i] - b * sin[i];
            x2[i] = b * cos[i] + a * sin[i];
        }
    }

    /// <summary>The float32 inverse frequencies 1/θ^(2i/D) as HF computes them.</summary>
    public static float[] InverseFrequencies(int headDim, float theta)
    {
        var inv = new float[headDim / 2];
        for (int i = 0; i < inv.Length; i++)
        {
            float exponent = (float)(2 * i) / headDim;           // arange(0, D, 2).float() / D
            float power = (float)Math.Pow(theta, exponent);       // θ ** exponent, float32 result
            inv[i] = 1f / power;
        }
        return inv;
    }

    private static (float[] Cos, float[] Sin) GetTable(float theta, int headDim, int positionsNeeded)
    {
        lock (_lock)
        {
            Table? table = null;
            foreach (var t in _tables) if (t.Theta == theta && t.HeadDim == headDim) { table = t; break; }
            if (table == null)
            {
                table = new Table { Theta = theta, HeadDim = headDim, InvFreq = InverseFrequencies(headDim, theta) };
                _tables.Add(table);
            }
            if (table.Positions < positionsNeeded)
            {
                int half = headDim / 2;
                int count = Math.Max(positionsNeeded, Math.Max(256, table.Positions * 2));
                var cos = new float[(long)count * half];
                var sin = new float[(long)count * half];
                for (int p = 0; p < count; p++)
                    for (int i = 0; i < half; i++)
                    {
                        float angle = (float)p * table.InvFreq[i];      // float32 product, like HF
                        cos[(long)p * half + i] = (float)Math.Cos(angle);  // correctly rounded cos of the float32 angle
                        sin[(long)p * half + i] = (float)Math.Sin(angle);
                    }
                // Replace whole arrays: callers holding the old ones keep a consistent (shorter) table.
                table.Cos = cos;
                table.Sin = sin;
                table.Positions = count;
            }
            return (table.Cos, table.Sin);
        }
    }
}
