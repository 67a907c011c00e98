using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

public class KernelsConvTests
{
    [Theory]
    [InlineData(5, 6, 3, 7)]
    [InlineData(9, 8, 37, 7)]
    [InlineData(4, 4, 32, 3)]
    [InlineData(6, 19, 48, 7)]    // column blocks of 8 with a tail of 3, the padding on both sides of each row
    [InlineData(3, 2, 16, 7)]     // narrower than the kernel: every block reads padding
    [InlineData(10, 17, 33, 5)]   // 5×5, two channel groups and a one-channel tail
    [InlineData(37, 9, 40, 7)]    // three bands of output rows (16, 16, 5), two channel groups and an 8-channel tail
    [InlineData(9, 8, 83, 7)]     // two tasks per band: four channel groups, then one and a 3-channel tail
    [InlineData(20, 60, 50, 7)]   // wide rows: windows for three groups at most, so the 2-channel tail is a task of its own
    public void DepthwiseHwc_matches_reference(int h, int w, int c, int k)
    {
        var x = KernelsReference.Random(h * w * c, 30);
        var weight = KernelsReference.Random(c * k * k, 31);
        var bias = KernelsReference.Random(c, 32);
        var y = new float[x.Length];
        Conv.DepthwiseHwc(x, h, w, c, weight, bias, k, y);
        KernelsReference.AssertClose(KernelsReference.DepthwiseHwc(x, h, w, c, weight, bias, k), y, 1e-5, 1e-5, "y");
    }

    [Fact]
    public void DepthwiseHwcTaps_with_pre_laid_weights_equals_DepthwiseHwc()
    {
        int h = 7, w = 11, c = 40, k = 7;
        var x = KernelsReference.Random(h * w * c, 40);
        var weight = KernelsReference.Random(c * k * k, 41);
        var bias = KernelsReference.Random(c, 42);
        var expected = new float[x.Length];
        Conv.DepthwiseHwc(x, h, w, c, weight, bias, k, expected);
        var taps = new float[weight.Length];
        Conv.LayOutDepthwiseWeights(weight, c, k, taps);
        var y = new float[x.Length];
        Conv.DepthwiseHwcTaps(x, h, w, c, taps, bias, k, y);
        Assert.Equal(expected, y);
        Assert.Throws<ArgumentException>(() => Conv.DepthwiseHwcTaps(x, h, w, c, taps, bias, k, x));   // in place is not allowed

        // With the LayerNorm fused in: the separate norm's result, bit for bit.
        var nw = KernelsReference.Random(c, 43);
        var nb = KernelsReference.Random(c, 44);
        Norms.LayerNorm(expected, nw, nb, 1e-6f, expected);
        Conv.DepthwiseHwcTaps(x, h, w, c, taps, bias, k, y, nw, nb, 1e-6f);
        Assert.Equal(expected, y);
        Assert.Throws<ArgumentException>(() => Conv.DepthwiseHwcTaps(x, h, w, c, taps, bias, k, y, nw.AsSpan(1), nb, 1e-6f));
    }

    [Theory]
    [InlineData(3, 8, 12, 4, 5)]
    [InlineData(5, 6, 6, 2, 9)]
    public void Patchify_then_Linear_equals_strided_conv(int c, int h, int w, int p, int cout)
    {
        var x = KernelsReference.Random(c * h * w, 33);
        var weight = KernelsReference.Random(cout * c * p * p, 34);
        var bias = KernelsReference.Random(cout, 35);
        var expected = KernelsReference.StridedConvChw(x, c, h, w, weight, bias, cout, p);
        int patches = h / p * (w / p);
        var wm = WeightMatrix.FromFloats(weight, cout, c * p * p);

        var patchesChw = new float[x.Length];
        Conv.PatchifyChw(x, c, h, w, p, patchesChw);
        var y = new float[patches * cout];
        MatMul.Linear(patchesChw, patches, wm, bias, y);
        KernelsReference.AssertClose(expected, y, 1e-5, 1e-5, "chw");
    }

    [Theory]
    [InlineData(3, 8, 12, 4, 5, DType.F32)]
    [InlineData(48, 6, 6, 2, 9, DType.BF16)]   // the downsample's 2×2 on channels-last maps, weights in checkpoint dtypes
    [InlineData(20, 4, 10, 2, 7, DType.F16)]
    public void Normalized_pixel_major_patches_times_reordered_weights_equal_norm_then_strided_conv(int c, int h, int w, int p, int cout, DType dtype)
    {
        // The downsample: LayerNorm over each pixel's channels, then the stride-p conv. Built as patches in
        // (ky, kx, c) order times the weight with its columns reordered to match.
        var hwc = KernelsReference.Random(h * w * c, 36, 2f);
        var nw = KernelsReference.Random(c, 37);
        var nb = KernelsReference.Random(c, 38);
        var values = KernelsReference.Random(cout * c * p * p, 39);
        WeightMatrix torchLayout;
        if (dtype == DType.F32) torchLayout = WeightMatrix.FromFloats(values, cout, c * p * p);
        else
        {
            var bits = values.Select(v => dtype == DType.BF16 ? DTypes.FloatToBF16(v) : BitConverter.HalfToUInt16Bits((Half)v)).ToArray();
            torchLayout = WeightMatrix.FromHalfBits(bits, dtype, cout, c * p * p);
            values = bits.Select(b => dtype == DType.BF16 ? DTypes.BF16ToFloat(b) : (float)BitConverter.UInt16BitsToHalf(b)).ToArray();
        }
        var bias = KernelsReference.Random(cout, 40);

        var normed = new float[hwc.Length];
        Norms.LayerNorm(hwc, nw, nb, 1e-6f, normed);
        var chw = new float[hwc.Length];
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    chw[(ch * h + i) * w + j] = normed[(i * w + j) * c + ch];
        var expected = KernelsReference.StridedConvChw(chw, c, h, w, values, bias, cout, p);   // [(h/p)·(w/p), cout]

        var patches = new float[hwc.Length];
        Conv.LayerNormPatchifyHwc(hwc, h, w, c, p, nw, nb, 1e-6f, patches);
        // Each patch's runs are the normalized pixels, bit for bit.
        int gw = w / p;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                Assert.Equal(normed.AsSpan((i * w + j) * c, c).ToArray(),
                    patches.AsSpan(((i / p * gw + j / p) * p * p + (i % p) * p + j % p) * c, c).ToArray());
        var reordered = Conv.PixelMajorPatchWeights(torchLayout, c, p);
        Assert.Equal(dtype, reordered.DType);
        int n = h / p * gw;
        var y = new float[n * cout];
        MatMul.Linear(patches, n, reordered, bias, y);
        KernelsReference.AssertClose(expected, y, 1e-4, 1e-4, "y");
        Assert.Throws<ArgumentException>(() => Conv.PixelMajorPatchWeights(torchLayout, c + 1, p));
    }

    [Theory]
    [InlineData(4, 4, 3, 2)]
    [InlineData(7, 5, 17, 2)]  // floor mode drops the last row/column
    [InlineData(9, 9, 16, 3)]
    public void AvgPool2dHwc_matches_reference(int h, int w, int c, int stride)
    {
        var x = KernelsReference.Random(h * w * c, 36);
        int oh = h / stride, ow = w / stride;
        var y = new float[oh * ow * c];
        Pool.AvgPool2dHwc(x, h, w, c, stride, y);
        var expected = new float[y.Length];
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
                for (int ch = 0; ch < c; ch++)
                {
                    double s = 0;
                    for (int dy = 0; dy < stride; dy++)
                        for (int dx = 0; dx < stride; dx++)
                            s += x[((i * stride + dy) * w + j * stride + dx) * c + ch];
                    expected[(i * ow + j) * c + ch] = (float)(s / (stride * stride));
                }
        KernelsReference.AssertClose(expected, y, 1e-6, 1e-6, "pool");
    }

    [Fact]
    public void Conv_rejects_bad_shapes()
    {
        Assert.Throws<ArgumentException>(() => Conv.PatchifyChw(new float[3 * 6 * 6], 3, 6, 6, 4, new float[3 * 6 * 6]));
        Assert.Throws<ArgumentException>(() => Conv.DepthwiseHwc(new float[10], 2, 5, 1, new float[49], new float[1], 6, new float[10]));
    }
}
