namespace SlowFast.Media;

/// <summary>
/// Fixed-point resampling weights for one image axis, computed exactly as Pillow does for 8-bit
/// images (Resample.c: <c>precompute_coeffs</c> then <c>normalize_coeffs_8bpc</c>), so our uint8
/// output equals <c>Image.resize(..., BICUBIC)</c> bit for bit.
/// Pillow's rules, restated: the filter is the a = -0.5 cubic with support 2; when shrinking, the
/// support widens by the scale factor (that is the antialiasing) and the filter is evaluated at
/// (source - centre) / scale. Each output's taps are normalised to sum to 1 in double precision,
/// then converted to integers with <see cref="PrecisionBits"/> fractional bits (rounded away from 0).
/// Only outputs in [first, first + count) are kept: a centre crop then costs only what it keeps.
/// </summary>
internal sealed class PilBicubicAxis
{
    /// <summary>Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2.</summary>
    public const int PrecisionBits = 22;

    public int InSize { get; }
    /// <summary>Index (in the full resized axis) of the first kept output.</summary>
    public int FirstOutput { get; }
    public int OutSize { get; }
    /// <summary>Taps per output (Pillow's ksize): the stride of <see cref="Weights"/>.</summary>
    public int TapStride { get; }
    /// <summary>First source index of each kept output.</summary>
    public int[] Start { get; }
    /// <summary>Number of source taps of each kept output.</summary>
    public int[] Count { get; }
    /// <summary>Integer weights, <see cref="TapStride"/> per kept output.</summary>
    public int[] Weights { get; }
    /// <summary>True when in and out sizes match: Pillow skips the pass (the weights are the identity).</summary>
    public bool IsIdentity => InSize == OutSize;

    public PilBicubicAxis(int inSize, int outSize, int first, int count)
    {
        if (inSize <= 0 || outSize <= 0) throw new ArgumentOutOfRangeException(nameof(inSize));
        if (first < 0 || count <= 0 || first + count > outSize) throw new ArgumentOutOfRangeException(nameof(first));
        InSize = inSize;
        FirstOutput = first;
        OutSize = outSize;

        // Pillow: box (0, inSize) as floats, scale = (in1 - in0) / outSize.
        double scale = (double)((float)inSize - 0f) / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        TapStride = (int)Math.Ceiling(support) * 2 + 1;

        Start = new int[count];
        Count = new int[count];
        Weights = new int[count * TapStride];
        var taps = new double[TapStride];
        double inverseFilterScale = 1.0 / filterScale;
        for (int i = 0; i < count; i++)
        {
            int xx = first + i;
            double center = 0f + (xx + 0.5) * scale;
            // (int) truncates toward zero, as the C cast does.
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            double sum = 0;
            for (int x = 0; x < xmax; x++)
            {
                double w = Cubic((x + xmin - center + 0.5) * inverseFilterScale);
                taps[x] = w;
                sum += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                double w = sum != 0.0 ? taps[x] / sum : taps[x];
                Weights[i * TapStride + x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }
            Start[i] = xmin;
            Count[i] = xmax;
        }
    }

    /// <summary>Keys' cubic convolution kernel with a = -0.5 (Pillow's bicubic_filter).</summary>
    private static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Pillow's clip8: drop the fraction bits (the accumulator starts at one half) and clamp.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static byte Clip8(int accumulator)
    {
        int v = accumulator >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    /// <summary>The accumulator's start value: one half in fixed point, so truncation rounds.</summary>
    public const int Half = 1 << (PrecisionBits - 1);
}
