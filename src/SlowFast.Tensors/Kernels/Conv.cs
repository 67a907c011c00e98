using System.Runtime.Intrinsics;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Convolutions for the ConvNeXt vision tower, on channels-last [H, W, C] activations.
/// Strided p×p convolutions are expressed as <see cref="PatchifyChw"/>/<see cref="LayerNormPatchifyHwc"/>
/// followed by <c>MatMul.Linear</c> with the conv weight viewed as [Cout, Cin·p·p].
/// </summary>
public static unsafe class Conv
{
    [ThreadStatic] private static float[]? _weightScratch;

    private struct DepthwiseJob
    {
        public float* X, Weight, Bias, Y;
        public int H, W, C, K;
        public int Groups, ChunkGroups, Chunks, BandRows, Bands;   // tasks: chunk of channel groups (16 channels each, the last maybe fewer) × band of output rows
        public float* NormWeight, NormBias;   // when set, each output pixel is LayerNorm-ed over its C channels
        public float NormEps;
    }

    /// <summary>
    /// Output rows per depthwise task: one task reads a 16-channel column of BandRows + k − 1 input rows
    /// (64 bytes a pixel), which then stays in L1/L2 while its k rows of taps slide over it.
    /// </summary>
    private const int DepthwiseBandRows = 16;

    /// <summary>
    /// Most groups of 16 channels per depthwise task (each input pixel then read as one run of up to 256
    /// bytes), and the most bytes their windows may take together (they stay in L2 while the taps slide
    /// over them; at 144×144 one group's window alone is 220 KB).
    /// </summary>
    private const int DepthwiseChunkGroups = 4, DepthwiseWindowBytes = 320 << 10;

    /// <summary>
    /// Depthwise k×k convolution, stride 1, zero padding k/2 (ConvNeXt's 7×7), channels-last:
    /// y[i, j, c] = bias[c] + Σ x[i+dy−k/2, j+dx−k/2, c] · weight[c, 0, dy, dx].
    /// <paramref name="weight"/> is in torch layout [C, 1, k, k]; <paramref name="bias"/> is [C] or empty.
    /// </summary>
    public static void DepthwiseHwc(ReadOnlySpan<float> x, int h, int w, int c, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, int k, Span<float> y)
    {
        if (k <= 0 || k % 2 == 0) throw new ArgumentException($"depthwise conv: bad shape H={h} W={w} C={c} k={k} (k must be odd)");
        if (c <= 0) throw new ArgumentException($"depthwise conv: bad shape H={h} W={w} C={c} k={k}");
        if (weight.Length != (long)c * k * k) throw new ArgumentException($"depthwise conv: weight has {weight.Length} floats; expected [{c}, 1, {k}, {k}]", nameof(weight));
        if (!bias.IsEmpty && bias.Length != c) throw new ArgumentException($"depthwise conv: bias has {bias.Length} floats; expected {c}", nameof(bias));
        float* wt = Scratch.Get(ref _weightScratch, (long)k * k * c + c);
        var taps = new Span<float>(wt, k * k * c);
        LayOutDepthwiseWeights(weight, c, k, taps);
        var b = new Span<float>(wt + (long)k * k * c, c);
        if (bias.IsEmpty) b.Clear(); else bias.CopyTo(b);
        DepthwiseHwcTaps(x, h, w, c, taps, b, k, y);
    }

    /// <summary>
    /// Re-lays a torch depthwise weight [C, 1, k, k] as <paramref name="taps"/> [k·k, C]: per tap, one
    /// value per channel, so the kernel reads a tap's weights as channel vectors. Done once per model.
    /// </summary>
    public static void LayOutDepthwiseWeights(ReadOnlySpan<float> weight, int c, int k, Span<float> taps)
    {
        if (weight.Length != (long)c * k * k || taps.Length != weight.Length)
            throw new ArgumentException($"depthwise weights: [{c}, 1, {k}, {k}] needs {(long)c * k * k} floats; got {weight.Length} and {taps.Length}");
        for (int ch = 0; ch < c; ch++)
            for (int tap = 0; tap < k * k; tap++)
                taps[tap * c + ch] = weight[ch * k * k + tap];
    }

    /// <summary>
    /// <see cref="DepthwiseHwc"/> with the weights already laid out by <see cref="LayOutDepthwiseWeights"/>
    /// and a bias of C floats: allocates and copies nothing.
    /// </summary>
    public static void DepthwiseHwcTaps(ReadOnlySpan<float> x, int h, int w, int c, ReadOnlySpan<float> taps, ReadOnlySpan<float> bias, int k, Span<float> y)
        => DepthwiseHwcTaps(x, h, w, c, taps, bias, k, y, default, default, 0);

    /// <summary>
    /// <see cref="DepthwiseHwcTaps(ReadOnlySpan{float}, int, int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, int, Span{float})"/>
    /// followed by a LayerNorm of each output pixel over its channels (<see cref="Norms.LayerNorm"/>,
    /// the same arithmetic), a second parallel pass over the rows (the conv's tasks each hold 16 channels).
    /// Empty <paramref name="normWeight"/>: no norm.
    /// </summary>
    public static void DepthwiseHwcTaps(ReadOnlySpan<float> x, int h, int w, int c, ReadOnlySpan<float> taps, ReadOnlySpan<float> bias, int k, Span<float> y,
        ReadOnlySpan<float> normWeight, ReadOnlySpan<float> normBias, float normEps)
    {
        if (!normWeight.IsEmpty && (normWeight.Length != c || normBias.Length != c))
            throw new ArgumentException($"depthwise conv: the LayerNorm needs weight and bias of {c} floats");
        if (h <= 0 || w <= 0 || c <= 0 || k <= 0 || k % 2 == 0) throw new ArgumentException($"depthwise conv: bad shape H={h} W={w} C={c} k={k} (k must be odd)");
        long size = (long)h * w * c;
        if (x.Length != size || y.Length != size) throw new ArgumentException($"depthwise conv: x has {x.Length} and y {y.Length} floats; expected {size}");
        if (taps.Length != (long)c * k * k) throw new ArgumentException($"depthwise conv: taps have {taps.Length} floats; expected [{k}·{k}, {c}]", nameof(taps));
        if (bias.Length != c) throw new ArgumentException($"depthwise conv: bias has {bias.Length} floats; expected {c}", nameof(bias));
        if (x.Overlaps(y)) throw new ArgumentException("depthwise conv: x and y overlap");
        fixed (float* px = x) fixed (float* py = y) fixed (float* pw = taps) fixed (float* pb = bias)
        fixed (float* nw = normWeight) fixed (float* nb = normBias)
        {
            int bandRows = Math.Min(DepthwiseBandRows, h);
            long windowBytes = (long)Math.Min(h, bandRows + k - 1) * (w + k - 1 + 8) * 64;
            int chunkGroups = (int)Math.Clamp(DepthwiseWindowBytes / windowBytes, 1, DepthwiseChunkGroups);
            var job = new DepthwiseJob
            {
                X = px, Weight = pw, Bias = pb, Y = py, H = h, W = w, C = c, K = k,
                Groups = (c + 15) / 16, ChunkGroups = chunkGroups, Chunks = ((c + 15) / 16 + chunkGroups - 1) / chunkGroups,
                BandRows = bandRows, Bands = (h + bandRows - 1) / bandRows,
                NormWeight = normWeight.IsEmpty ? null : nw, NormBias = nb, NormEps = normEps,
            };
            // Chunks of channel groups × row bands, so that each task's input stays in cache; the norm, which needs
            // all channels of a pixel, is a second pass over the rows.
            KernelThreads.For(job.Chunks * job.Bands, &job, &DepthwiseTask);
            if (job.NormWeight != null) KernelThreads.For(h, &job, &NormRow);
        }
    }

    [ThreadStatic] private static float[]? _window;

    /// <summary>
    /// One task: a chunk of <see cref="DepthwiseJob.ChunkGroups"/> groups of 16 channels (the channels
    /// past the last whole group go one at a time) over a band of output rows. The band's input rows are
    /// first copied group by group into contiguous windows (64 bytes a pixel, zero columns either side):
    /// read in place, the pixels a block needs lie C·4 bytes apart, a stride that maps them all to a few
    /// L1 sets (at C = 1536 every one of them to the same two). The copy reads each pixel's chunk as one
    /// run of up to 256 bytes: copying 16 channels alone, a pixel a line, every line is a miss the
    /// hardware prefetchers do not see coming.
    /// </summary>
    private static void DepthwiseTask(void* context, int task)
    {
        ref DepthwiseJob job = ref *(DepthwiseJob*)context;
        int chunk = task % job.Chunks, band = task / job.Chunks;
        int first = band * job.BandRows, end = Math.Min(first + job.BandRows, job.H);
        int c = job.C, w = job.W, k = job.K, pad = k / 2;
        int firstGroup = chunk * job.ChunkGroups, groups = Math.Min(job.ChunkGroups, job.Groups - firstGroup);
        int whole = Math.Min(groups, c / 16 - firstGroup);   // groups of 16 channels inside C
        if (whole < groups)
            for (int row = first; row < end; row++) DepthwiseTail(ref job, row, (firstGroup + whole) * 16);
        if (whole <= 0) return;
        int top = Math.Max(0, first - pad), bottom = Math.Min(job.H, end + pad);   // the input rows the band reads
        int span = w + k - 1 + 8;   // window columns: pad zeros each side, and room for the last block's dropped outputs
        long pixelFloats = (long)(bottom - top) * span * 16;                       // a group's window of input pixels
        long windowFloats = pixelFloats + k * k * 16;                               // ... followed by its taps
        float* windows = Scratch.Align64(Scratch.Get(ref _window, whole * windowFloats + 64));
        for (int g = 0; g < whole; g++)
        {
            float* window = windows + g * windowFloats, taps = window + pixelFloats;
            int ch = (firstGroup + g) * 16;
            for (int t = 0; t < k * k; t++) Vector512.Load(job.Weight + (long)t * c + ch).Store(taps + t * 16);
            for (long r = 0; r < bottom - top; r++)
            {
                float* dst = window + r * span * 16;
                for (int j = 0; j < pad; j++) Vector512<float>.Zero.Store(dst + j * 16);
                for (int j = pad + w; j < span; j++) Vector512<float>.Zero.Store(dst + j * 16);
            }
        }
        for (int iy = top; iy < bottom; iy++)
        {
            float* src = job.X + (long)iy * w * c + firstGroup * 16;
            float* dst = windows + ((long)(iy - top) * span + pad) * 16;
            for (int col = 0; col < w; col++, src += c, dst += 16)
                for (int g = 0; g < whole; g++) Vector512.Load(src + g * 16).Store(dst + g * windowFloats);
        }
        for (int g = 0; g < whole; g++)
        {
            float* window = windows + g * windowFloats, taps = window + pixelFloats;
            int ch = (firstGroup + g) * 16;
            var bias = Vector512.Load(job.Bias + ch);
            for (int row = first; row < end; row++)
                for (int col0 = 0; col0 < w; col0 += 8)
                    DepthwiseBlock(ref job, window, top, span, taps, bias, row, col0, ch);
        }
    }

    /// <summary>LayerNorm of an output row's pixels over their channels.</summary>
    private static void NormRow(void* context, int row)
    {
        ref DepthwiseJob job = ref *(DepthwiseJob*)context;
        int w = job.W, c = job.C;
        var rowOut = new Span<float>(job.Y + (long)row * w * c, w * c);
        Norms.LayerNorm(rowOut, new ReadOnlySpan<float>(job.NormWeight, c), new ReadOnlySpan<float>(job.NormBias, c), job.NormEps, rowOut);
    }

    /// <summary>Channels [cv, C) of one output row (C not a multiple of 16), one multiply-add at a time in the blocks' tap order.</summary>
    private static void DepthwiseTail(ref DepthwiseJob job, int row, int cv)
    {
        int w = job.W, c = job.C, k = job.K, pad = k / 2;
        for (int col = 0; col < w; col++)
        {
            float* yp = job.Y + ((long)row * w + col) * c;
            for (int ch = cv; ch < c; ch++)
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
    /// Output columns [col0, col0+8) × channels [ch, ch+16) of one row. Per kernel row, the 8 + k − 1
    /// input columns it needs slide through eight registers (one new load per tap), so each tap costs
    /// one weight load and one input load for 8 multiply-adds, all from the task's window. Columns outside the image read as zero
    /// (the padding); outputs past the right edge are computed and dropped. Taps are summed in the
    /// same order as a plain loop over (dy, dx), so the result does not depend on the blocking.
    /// </summary>
    private static void DepthwiseBlock(ref DepthwiseJob job, float* window, int top, int span, float* taps, Vector512<float> bias, int row, int col0, int ch)
    {
        int w = job.W, c = job.C, k = job.K, pad = k / 2;
        Vector512<float> a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias;
        for (int dy = 0; dy < k; dy++)
        {
            int iy = row + dy - pad;
            if ((uint)iy >= (uint)job.H) continue;
            // Window column j holds image column j − pad: the block's first input column, col0 − pad, is column col0.
            float* xr = window + ((long)(iy - top) * span + col0) * 16;
            float* wr = taps + dy * k * 16;
            var x0 = Vector512.Load(xr); var x1 = Vector512.Load(xr + 16);
            var x2 = Vector512.Load(xr + 32); var x3 = Vector512.Load(xr + 48);
            var x4 = Vector512.Load(xr + 64); var x5 = Vector512.Load(xr + 80);
            var x6 = Vector512.Load(xr + 96); var x7 = Vector512.Load(xr + 112);
            for (int dx = 0; dx < k; dx++)
            {
                var wv = Vector512.Load(wr + dx * 16);
                a0 = Vector512.FusedMultiplyAdd(x0, wv, a0); a1 = Vector512.FusedMultiplyAdd(x1, wv, a1);
                a2 = Vector512.FusedMultiplyAdd(x2, wv, a2); a3 = Vector512.FusedMultiplyAdd(x3, wv, a3);
                a4 = Vector512.FusedMultiplyAdd(x4, wv, a4); a5 = Vector512.FusedMultiplyAdd(x5, wv, a5);
                a6 = Vector512.FusedMultiplyAdd(x6, wv, a6); a7 = Vector512.FusedMultiplyAdd(x7, wv, a7);
                x0 = x1; x1 = x2; x2 = x3; x3 = x4; x4 = x5; x5 = x6; x6 = x7;
                x7 = Vector512.Load(xr + (8 + dx) * 16);
            }
        }
        float* y = job.Y + ((long)row * w + col0) * c + ch;
        int cols = Math.Min(8, w - col0);
        a0.Store(y);
        if (cols > 1) a1.Store(y + c);
        if (cols > 2) a2.Store(y + 2L * c);
        if (cols > 3) a3.Store(y + 3L * c);
        if (cols > 4) a4.Store(y + 4L * c);
        if (cols > 5) a5.Store(y + 5L * c);
        if (cols > 6) a6.Store(y + 6L * c);
        if (cols > 7) a7.Store(y + 7L * c);
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

    private struct NormPatchJob
    {
        public float* X, Patches, NormWeight, NormBias;
        public int H, W, C, P;
        public float NormEps;
    }

    /// <summary>
    /// A stride-p p×p convolution's input for channels-last [H, W, C] activations, each pixel LayerNorm-ed
    /// over its channels on the way (<see cref="Norms.LayerNorm"/>'s arithmetic): patches[(H/p)·(W/p), p·p·C]
    /// with the elements of a patch in (ky, kx, c) order, so a patch row is p runs of p·C contiguous
    /// floats and the pass copies runs of channels instead of scattering single floats. Multiply by a conv
    /// weight whose columns were put in the same order (<see cref="PixelMajorPatchWeights"/>).
    /// </summary>
    public static void LayerNormPatchifyHwc(ReadOnlySpan<float> x, int h, int w, int c, int p, ReadOnlySpan<float> normWeight, ReadOnlySpan<float> normBias, float eps, Span<float> patches)
    {
        CheckPatchify(x.Length, c, h, w, p, patches.Length);
        if (normWeight.Length != c || normBias.Length != c) throw new ArgumentException($"patchify: the LayerNorm needs weight and bias of {c} floats");
        if (x.Overlaps(patches)) throw new ArgumentException("patchify: x and the patches overlap");
        fixed (float* px = x) fixed (float* pp = patches) fixed (float* nw = normWeight) fixed (float* nb = normBias)
        {
            var job = new NormPatchJob { X = px, Patches = pp, NormWeight = nw, NormBias = nb, H = h, W = w, C = c, P = p, NormEps = eps };
            KernelThreads.For(h, &job, &NormPatchRow);
        }
    }

    /// <summary>Input row y: pixel (y, x) goes to patch (y/p, x/p) at element ((y%p)·p + x%p)·C.</summary>
    private static void NormPatchRow(void* context, int y)
    {
        ref NormPatchJob job = ref *(NormPatchJob*)context;
        int c = job.C, p = job.P, gw = job.W / p;
        var weight = new ReadOnlySpan<float>(job.NormWeight, c);
        var bias = new ReadOnlySpan<float>(job.NormBias, c);
        for (int x = 0; x < job.W; x++)
        {
            float* dst = job.Patches + ((long)(y / p) * gw + x / p) * p * p * c + ((y % p) * p + x % p) * c;
            Norms.LayerNorm(new ReadOnlySpan<float>(job.X + ((long)y * job.W + x) * c, c), weight, bias, job.NormEps, new Span<float>(dst, c));
        }
    }

    /// <summary>
    /// A torch conv weight [Cout, Cin, p, p] viewed as [Cout, Cin·p·p] with each row's elements reordered
    /// from (c, ky, kx) to (ky, kx, c), the patch order of <see cref="LayerNormPatchifyHwc"/>: a copy in
    /// the stored dtype (F32, BF16 or F16). The product is the same convolution, summed in another order.
    /// </summary>
    public static WeightMatrix PixelMajorPatchWeights(WeightMatrix w, int cin, int p)
    {
        if (w.IsQuantized || w.DType is not (DType.F32 or DType.BF16 or DType.F16)) throw new ArgumentException($"patch weights must be F32, BF16 or F16, not {w.DType}", nameof(w));
        if (w.Cols != cin * p * p) throw new ArgumentException($"a [{w.Rows}, {w.Cols}] weight is not [Cout, {cin}·{p}·{p}]", nameof(w));
        int size = w.ElementSize;
        long n = (long)w.Rows * w.Cols;
        if (size == 4)
        {
            var f = new float[n];
            fixed (float* dst = f) Reorder((byte*)dst);
            return WeightMatrix.FromFloats(f, w.Rows, w.Cols);
        }
        var bits = new ushort[n];
        fixed (ushort* dst = bits) Reorder((byte*)dst);
        return WeightMatrix.FromHalfBits(bits, w.DType, w.Rows, w.Cols);

        void Reorder(byte* dst)
        {
            int pp = p * p;
            for (int o = 0; o < w.Rows; o++)
            {
                byte* src = w.RowPointer(o), row = dst + (long)o * w.Cols * size;
                for (int ch = 0; ch < cin; ch++)
                    for (int k = 0; k < pp; k++)
                        Buffer.MemoryCopy(src + ((long)ch * pp + k) * size, row + ((long)k * cin + ch) * size, size, size);
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
