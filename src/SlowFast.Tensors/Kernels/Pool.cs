using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>Pooling on channels-last [H, W, C] activations.</summary>
public static unsafe class Pool
{
    /// <summary>
    /// Average pooling with kernel = stride, no padding, floor mode (trailing rows/columns that do not
    /// fill a window are dropped), like torch avg_pool2d(x, stride, stride): y is [H/stride, W/stride, C].
    /// </summary>
    public static void AvgPool2dHwc(ReadOnlySpan<float> x, int h, int w, int c, int stride, Span<float> y)
    {
        if (h <= 0 || w <= 0 || c <= 0 || stride <= 0) throw new ArgumentException($"avg pool: bad shape H={h} W={w} C={c} stride={stride}");
        int oh = h / stride, ow = w / stride;
        if (x.Length != (long)h * w * c) throw new ArgumentException($"avg pool: x has {x.Length} floats; expected {h}×{w}×{c}", nameof(x));
        if (y.Length != (long)oh * ow * c) throw new ArgumentException($"avg pool: y has {y.Length} floats; expected {oh}×{ow}×{c}", nameof(y));
        float inv = 1f / (stride * stride);
        int cv = c & ~15;
        fixed (float* px = x) fixed (float* py = y)
        {
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    float* dst = py + ((long)oy * ow + ox) * c;
                    int ch = 0;
                    for (; ch < cv; ch += 16)
                    {
                        var acc = Vector512<float>.Zero;
                        for (int dy = 0; dy < stride; dy++)
                            for (int dx = 0; dx < stride; dx++)
                                acc += Vector512.Load(px + ((long)(oy * stride + dy) * w + ox * stride + dx) * c + ch);
                        (acc * Vector512.Create(inv)).Store(dst + ch);
                    }
                    for (; ch < c; ch++)
                    {
                        float acc = 0;
                        for (int dy = 0; dy < stride; dy++)
                            for (int dx = 0; dx < stride; dx++)
                                acc += px[((long)(oy * stride + dy) * w + ox * stride + dx) * c + ch];
                        dst[ch] = acc * inv;
                    }
                }
        }
    }
}
