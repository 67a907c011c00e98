using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Convolutions for the ConvNeXt vision tower, on channels-last [H, W, C] activations.
/// Strided p×p convolutions are expressed as <see cref="PatchifyChw"/>/<see cref="PatchifyHwc"/>
/// followed by <c>MatMul.Linear</c> with the conv weight viewed as [Cout, Cin·p·p].
/// </summary>
public static unsafe class Conv
{
    [ThreadStatic] private static float[]? _weightScratch;

    private struct DepthwiseJob
    {
        public float* X, Weight, Bias, Y;
        public int H, W, C, K;
    }

    /// <summary>
    /// Depthwise k×k convolution, stride 1, zero padding k/2 (ConvNeXt's 7×7), channels-last:
    /// y[i, j, c] = bias[c] + Σ x[i+dy−k/2, j+dx−k/2, c] · weight[c, 0, dy, dx].
    /// <paramref name="weight"/> is in torch layout [C, 1, k, k]; <paramref name="bias"/> is [C] or empty.
    /// </summary>
    public static void DepthwiseHwc(ReadOnlySpan<float> x, int h, int w, int c, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, int k, Span<float> y)
    {
        if (h <= 0 || w <= 0 || c <= 0 || k <= 0 || k % 2 == 0) throw new ArgumentException($"depthwise conv: bad shape H={h} W={w} C={c} k={k} (k must be odd)");
        long size = (long)h * w * c;
        if (x.Length != size || y.Length != size) throw new ArgumentException($"depthwise conv: x has {x.Length} and y {y.Length} floats; expected {size}");
        if (weight.Length != (long)c * k * k) throw new ArgumentException($"depthwise conv: weight has {weight.Length} floats; expected [{c}, 1, {k}, {k}]", nameof(weight));
        if (!bias.IsEmpty && bias.Length != c) throw new ArgumentException($"depthwise conv: bias has {bias.Length} floats; expected {c}", nameof(bias));

        // Re-lay the weights as [k·k, C] so the inner loop reads them as channel vectors.
        float* wt = Scratch.Get(ref _weightScratch, (long)k * k * c + c);
        for (int ch = 0; ch < c; ch++)
            for (int tap = 0; tap < k * k; tap++)
                wt[(long)tap * c + ch] = weight[ch * k * k + tap];
        float* bt = wt + (long)k * k * c;
        for (int ch = 0; ch < c; ch++) bt[ch] = bias.IsEmpty ? 0f : bias[ch];

        fixed (float* px = x) fixed (float* py = y)
        {
            var job = new DepthwiseJob { X = px, Weight = wt, Bias = bt, Y = py, H = h, W = w, C = c, K = k };
            KernelThreads.For(h, &job, &DepthwiseRow);
        }
    }

    private static void DepthwiseRow(void* context, int row)
    {
        ref DepthwiseJob job = ref *(DepthwiseJob*)context;
        int w = job.W, c = job.C, k = job.K, pad = k / 2;
        int cv = c & ~15;
        for (int col = 0; col < w; col++)
        {
            float* yp = job.Y + ((long)row * w + col) * c;
            int ch = 0;
            for (; ch < cv; ch += 16)
            {
                var acc = Vector512.Load(job.Bias + ch);
                for (int dy = 0; dy < k; dy++)
                {
                    int iy = row + dy - pad;
                    if ((uint)iy >= (uint)job.H) continue;
                    for (int dx = 0; dx < k; dx++)
                    {
                        int ix = col + dx - pad;
                        if ((uint)ix >= (uint)w) continue;
                        acc = Vector512.FusedMultiplyAdd(Vector512.Load(job.X + ((long)iy * w + ix) * c + ch),
                            Vector512.Load(job.Weight + (long)(dy * k + dx) * c + ch), acc);
                    }
                }
                acc.Store(yp + ch);
            }
            for (; ch < c; ch++)
            {
                float acc = job.Bias[ch];
                for (int dy = 0; dy < k; dy++)
                {
                    int iy = row + dy - pad;
                    if ((uint)iy >= (uint)job.H) continue;
                    for (int dx = 0; dx < k; dx++)
                    {
                        int ix = col + dx - pad;
                        if ((uint)ix >= (uint)w) continue;
                        acc = MathF.FusedMultiplyAdd(job.X[((long)iy * w + ix) * c + ch], job.Weight[(long)(dy * k + dx) * c + ch], acc);
                    }
                }
                yp[ch] = acc;
            }
        }
    }

    /// <summary>
    /// Cuts a channels-first image [C, H, W] into non-overlapping p×p patches, row-major over the
    /// patch grid, each flattened in (c, ky, kx) order: patches[(H/p)·(W/p), C·p·p]. Multiplying by
    /// the conv weight [Cout, C, p, p] as a [Cout, C·p·p] matrix gives the stride-p p×p convolution.
    /// H and W must be multiples of p.
    /// </summary>
    public static void PatchifyChw(ReadOnlySpan<float> x, int c, int h, int w, int p, Span<float> patches)
    {
        CheckPatchify(x.Length, c, h, w, p, patches.Length);
        int gh = h / p, gw = w / p, patchSize = c * p * p;
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++)
            {
                var dst = patches.Slice((py * gw + px) * patchSize, patchSize);
                int o = 0;
                for (int ch = 0; ch < c; ch++)
                    for (int ky = 0; ky < p; ky++)
                    {
                        x.Slice((ch * h + py * p + ky) * w + px * p, p).CopyTo(dst.Slice(o, p));
                        o += p;
                    }
            }
    }

    /// <summary>
    /// Like <see cref="PatchifyChw"/> for a channels-last input [H, W, C]; the patch elements are
    /// still ordered (c, ky, kx) to match the torch conv weight layout.
    /// </summary>
    public static void PatchifyHwc(ReadOnlySpan<float> x, int h, int w, int c, int p, Span<float> patches)
    {
        CheckPatchify(x.Length, c, h, w, p, patches.Length);
        int gh = h / p, gw = w / p, patchSize = c * p * p;
        fixed (float* src = x) fixed (float* dstAll = patches)
        {
            for (int py = 0; py < gh; py++)
                for (int px = 0; px < gw; px++)
                {
                    float* dst = dstAll + (long)(py * gw + px) * patchSize;
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++)
                        {
                            float* s = src + ((long)(py * p + ky) * w + px * p + kx) * c;
                            float* d = dst + ky * p + kx;
                            for (int ch = 0; ch < c; ch++) d[ch * p * p] = s[ch];
                        }
                }
        }
    }

    private static void CheckPatchify(int xLength, int c, int h, int w, int p, int patchesLength)
    {
        if (c <= 0 || h <= 0 || w <= 0 || p <= 0 || h % p != 0 || w % p != 0)
            throw new ArgumentException($"patchify: H={h} and W={w} must be positive multiples of the patch size {p} (C={c})");
        if (xLength != (long)c * h * w) throw new ArgumentException($"patchify: input has {xLength} floats; expected {c}×{h}×{w}");
        if (patchesLength != (long)c * h * w) throw new ArgumentException($"patchify: output has {patchesLength} floats; expected {(long)c * h * w}");
    }
}
