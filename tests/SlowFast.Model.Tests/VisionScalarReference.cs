namespace SlowFast.Model.Tests;

/// <summary>
/// Straightforward scalar versions of the vision computations, written from the reference's
/// semantics in the torch layout (channels-first, direct convolution loops, double accumulation):
/// the independent check of the channels-last, kernel-based C# code.
/// </summary>
internal static class VisionScalarReference
{
    private const string V = "model.vision_tower.vision_tower.";

    /// <summary>The tower on one frame [3, S, S]: tokens [n, C] row-major over (h, w).</summary>
    public static float[] Tower(ModelDirectory m, float[] chw)
    {
        var c = m.Config.Vision;
        int size = c.ImageSize;
        double eps = c.NormEps;
        double[] x = chw.Select(v => (double)v).ToArray();
        int ch = 3, side = size;
        x = ConvStrided(x, ch, side, W(m, V + "stem.0.weight"), W(m, V + "stem.0.bias"), c.Dims[0], c.PatchSize);
        ch = c.Dims[0];
        side /= c.PatchSize;
        x = LayerNorm2d(x, ch, side, W(m, V + "stem.1.weight"), W(m, V + "stem.1.bias"), eps);
        for (int s = 0; s < c.Dims.Length; s++)
        {
            if (s > 0)
            {
                x = LayerNorm2d(x, ch, side, W(m, V + $"stages.{s}.downsample.0.weight"), W(m, V + $"stages.{s}.downsample.0.bias"), eps);
                x = ConvStrided(x, ch, side, W(m, V + $"stages.{s}.downsample.1.weight"), W(m, V + $"stages.{s}.downsample.1.bias"), c.Dims[s], 2);
                ch = c.Dims[s];
                side /= 2;
            }
            for (int b = 0; b < c.Depths[s]; b++)
                x = Block(m, V + $"stages.{s}.blocks.{b}.", x, ch, side, c.KernelSize, eps);
        }
        // NCHW → [h·w, C]
        var tokens = new float[side * side * ch];
        for (int k = 0; k < ch; k++)
            for (int p = 0; p < side * side; p++)
                tokens[p * ch + k] = (float)x[k * side * side + p];
        return tokens;
    }

    /// <summary>One ConvNeXt block on NCHW x.</summary>
    public static double[] Block(ModelDirectory m, string prefix, double[] x, int ch, int side, int k, double eps)
    {
        var dw = W(m, prefix + "conv_dw.weight");
        var dwb = W(m, prefix + "conv_dw.bias");
        int pad = k / 2, n = side * side;
        var t = new double[x.Length];
        for (int c = 0; c < ch; c++)
            for (int i = 0; i < side; i++)
                for (int j = 0; j < side; j++)
                {
                    double acc = dwb[c];
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++)
                        {
                            int yy = i + dy - pad, xx = j + dx - pad;
                            if (yy >= 0 && yy < side && xx >= 0 && xx < side) { acc += dw[(c * k + dy) * k + dx] * x[(c * side + yy) * side + xx]; OpCounter.MultiplyAdds++; }
                        }
                    t[(c * side + i) * side + j] = acc;
                }
        t = LayerNorm2d(t, ch, side, W(m, prefix + "norm.weight"), W(m, prefix + "norm.bias"), eps);
        var fc1 = W(m, prefix + "mlp.fc1.weight"); var fc1b = W(m, prefix + "mlp.fc1.bias");
        var fc2 = W(m, prefix + "mlp.fc2.weight"); var fc2b = W(m, prefix + "mlp.fc2.bias");
        var ls = W(m, prefix + "weight");
        int hid = fc1b.Length;
        var y = new double[x.Length];
        var pixel = new double[ch];
        var h = new double[hid];
        for (int p = 0; p < n; p++)
        {
            for (int c = 0; c < ch; c++) pixel[c] = t[c * n + p];
            for (int o = 0; o < hid; o++)
            {
                double acc = fc1b[o];
                for (int c = 0; c < ch; c++) { acc += fc1[o * ch + c] * pixel[c]; OpCounter.MultiplyAdds++; }
                h[o] = Gelu(acc);
            }
            for (int c = 0; c < ch; c++)
            {
                double acc = fc2b[c];
                for (int o = 0; o < hid; o++) { acc += fc2[c * hid + o] * h[o]; OpCounter.MultiplyAdds++; }
                y[c * n + p] = x[c * n + p] + ls[c] * acc;
            }
        }
        return y;
    }

    /// <summary>Conv2d with kernel = stride = p, no padding, NCHW.</summary>
    public static double[] ConvStrided(double[] x, int cin, int side, double[] w, double[] b, int cout, int p)
    {
        int os = side / p;
        var y = new double[cout * os * os];
        for (int o = 0; o < cout; o++)
            for (int i = 0; i < os; i++)
                for (int j = 0; j < os; j++)
                {
                    double acc = b[o];
                    for (int c = 0; c < cin; c++)
                        for (int ky = 0; ky < p; ky++)
                            for (int kx = 0; kx < p; kx++)
                                { acc += w[((o * cin + c) * p + ky) * p + kx] * x[(c * side + i * p + ky) * side + j * p + kx]; OpCounter.MultiplyAdds++; }
                    y[(o * os + i) * os + j] = acc;
                }
        return y;
    }

    /// <summary>timm's LayerNorm2d: normalize over channels at each pixel (biased variance).</summary>
    public static double[] LayerNorm2d(double[] x, int ch, int side, double[] w, double[] b, double eps)
    {
        int n = side * side;
        var y = new double[x.Length];
        for (int p = 0; p < n; p++)
        {
            double mean = 0;
            for (int c = 0; c < ch; c++) mean += x[c * n + p];
            mean /= ch;
            double v = 0;
            for (int c = 0; c < ch; c++) v += (x[c * n + p] - mean) * (x[c * n + p] - mean);
            v /= ch;
            double inv = 1 / Math.Sqrt(v + eps);
            for (int c = 0; c < ch; c++) y[c * n + p] = (x[c * n + p] - mean) * inv * w[c] + b[c];
        }
        return y;
    }

    /// <summary>The projector on tokens [rows, in]: Linear, then (GELU, Linear)× — or identity.</summary>
    public static float[] Project(ModelDirectory m, float[] x, int rows)
    {
        var cfg = m.Config;
        var layers = new List<(double[] W, double[] B)>();
        if (cfg.MmProjectorType == "linear") layers.Add((W(m, "model.mm_projector.weight"), W(m, "model.mm_projector.bias")));
        else for (int i = 0; i < cfg.ProjectorDepth; i++) layers.Add((W(m, $"model.mm_projector.{2 * i}.weight"), W(m, $"model.mm_projector.{2 * i}.bias")));
        double[] cur = x.Select(v => (double)v).ToArray();
        int width = x.Length / rows;
        for (int l = 0; l < layers.Count; l++)
        {
            var (w, b) = layers[l];
            if (l > 0) cur = cur.Select(Gelu).ToArray();
            int outW = b.Length;
            var next = new double[rows * outW];
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < outW; o++)
                {
                    double acc = b[o];
                    for (int i = 0; i < width; i++) { acc += w[o * width + i] * cur[r * width + i]; OpCounter.MultiplyAdds++; }
                    next[r * outW + o] = acc;
                }
            cur = next;
            width = outW;
        }
        return cur.Select(v => (float)v).ToArray();
    }

    public static double[] W(ModelDirectory m, string name) => m.Get(name).ToFloatArray().Select(v => (double)v).ToArray();

    public static double Gelu(double v) => 0.5 * v * (1 + Erf(v / Math.Sqrt(2)));

    /// <summary>erf to about 1e-14: Taylor series near 0, continued fraction for erfc further out.</summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x);
        double r;
        if (a < 2.5)
        {
            double sum = 0, term = a;
            for (int n = 0; n < 200 && Math.Abs(term) > 1e-18; n++)
            {
                sum += term / (2 * n + 1);
                term *= -a * a / (n + 1);
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else if (a > 6) r = 1;
        else
        {
            // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))), evaluated from the tail.
            double f = a;
            for (int n = 60; n >= 1; n--) f = a + n / 2.0 / f;
            r = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }

    // ---- pooling, in the reference's terms (torch functions on [T, C, H, W]) ----

    /// <summary>torch avg_pool2d(kernel = stride = s, floor) of tokens [n, C] (n = side²), back to [n', C].</summary>
    public static float[] AvgPool2d(float[] tokens, int side, int c, int s, out int outSide)
    {
        int os = side / s;
        outSide = os;
        var y = new float[os * os * c];
        for (int i = 0; i < os; i++)
            for (int j = 0; j < os; j++)
                for (int k = 0; k < c; k++)
                {
                    double acc = 0;
                    for (int dy = 0; dy < s; dy++)
                        for (int dx = 0; dx < s; dx++)
                            { acc += tokens[((i * s + dy) * side + j * s + dx) * c + k]; OpCounter.Additions++; }
                    y[(i * os + j) * c + k] = (float)(acc / (s * s));
                }
        return y;
    }

    /// <summary>
    /// split_slow_fast_tokens + the video pooling of prepare_inputs_labels_for_multimodal, as the
    /// reference writes them, including the zero padding of the frame axis.
    /// </summary>
    public static (float[] Fast, float[] Slow) SlowFast(SlowFastConfig cfg, float[] projected, int t, int side, int c)
    {
        var frames = Enumerable.Range(0, t).Select(f => projected.AsSpan(f * side * side * c, side * side * c).ToArray()).ToList();
        if (t > 1 && cfg.MmVideoPoolingStride > 1)
        {
            int os = side;
            frames = frames.Select(fr => AvgPool2d(fr, side, c, cfg.MmVideoPoolingStride, out os)).ToList();
            side = os;
        }
        float[] slow = frames.SelectMany(f => f).ToArray();
        int sps = cfg.FastTokenSpatialStride;
        if (t == 1)
            return (sps > 1 ? AvgPool2d(frames[0], side, c, sps, out _) : frames[0], slow);

        int rate = cfg.FastTokenTemporalSamplingStride * cfg.FastTokenTemporalStride;
        var padded = new List<float[]>(frames);
        while (padded.Count % rate != 0) padded.Add(new float[frames[0].Length]);
        List<int> indices;
        if (cfg.FastTokenTemporalSamplingStride > 1)
        {
            // sample_fast_frames(total_frames = t, ...)
            int total = t, min = cfg.MinFastFrames;
            if (total < min) indices = Enumerable.Range(0, total).ToList();
            else
            {
                int count = Math.Max(total / cfg.FastTokenTemporalSamplingStride, min);
                double step = (double)total / count;
                indices = Enumerable.Range(0, count).Select(i => Math.Min((int)(i * step), total - 1)).ToList();
            }
        }
        else indices = Enumerable.Range(0, t).ToList();
        var sample = indices.Select(i => padded[i]).ToList();

        int ts = cfg.FastTokenTemporalStride;
        if (ts > 1)
        {
            int tp = sample.Count;
            var pooled = new List<float[]>();
            if (tp / ts >= cfg.MinFastFrames)
            {
                // avg_pool3d, kernel (ts, 1, 1), stride = kernel, floor
                for (int o = 0; o < tp / ts; o++) pooled.Add(Mean(sample, o * ts, o * ts + ts));
            }
            else
            {
                // adaptive_avg_pool3d to min(tp, min_fast_frames) frames
                int outN = Math.Min(tp, cfg.MinFastFrames);
                for (int o = 0; o < outN; o++)
                {
                    int start = (int)Math.Floor((double)o * tp / outN);
                    int end = (int)Math.Ceiling((double)(o + 1) * tp / outN);
                    pooled.Add(Mean(sample, start, end));
                }
            }
            sample = pooled;
        }
        if (sps > 1) sample = sample.Select(f => AvgPool2d(f, side, c, sps, out _)).ToList();
        return (sample.SelectMany(f => f).ToArray(), slow);
    }

    private static float[] Mean(List<float[]> frames, int start, int end)
    {
        var y = new float[frames[0].Length];
        for (int i = 0; i < y.Length; i++)
        {
            double acc = 0;
            for (int f = start; f < end; f++) { acc += frames[f][i]; OpCounter.Additions++; }
            y[i] = (float)(acc / (end - start));
        }
        return y;
    }
}
