namespace SlowFast.Model.Tests;

/// <summary>
/// A deliberately plain, loop-by-loop, double-precision Qwen2 + hybrid-layer forward pass written
/// from the reference's description, independent of the kernels: the decoder is checked against it.
/// Everything is recomputed from scratch (no cache), positions 0..P-1.
/// </summary>
internal sealed class DecoderScalarReference
{
    private readonly ModelDirectory _m;
    private readonly SlowFastConfig _c;

    public DecoderScalarReference(ModelDirectory model)
    {
        _m = model;
        _c = model.Config;
    }

    /// <summary>Multiply-adds counted in each part of the last <see cref="Forward"/> (keys: "layers", "slow kv", "cross", "lm_head").</summary>
    public Dictionary<string, long> Counted { get; } = new();

    private long _mark;
    private void Tally(string part)
    {
        Counted[part] = Counted.GetValueOrDefault(part) + OpCounter.MultiplyAdds - _mark;
        _mark = OpCounter.MultiplyAdds;
    }

    private double[] W(string name) => _m.Get(name).ToFloatArray().Select(x => (double)x).ToArray();

    /// <summary>logits [P, V] for input embeddings [P, H] with token types, and optional slow tokens [S, H].</summary>
    /// <param name="attendRows">Rows that cross-attend (null: the reference's prefill selection from the types).</param>
    public double[] Forward(float[] embeddings, int[] types, float[]? slow, int slowCount, bool[]? attendRows = null)
    {
        int P = types.Length, H = _c.HiddenSize, nh = _c.NumAttentionHeads, nkv = _c.NumKeyValueHeads, D = _c.HeadDim;
        double eps = _c.RmsNormEps;
        var x = embeddings.Select(v => (double)v).ToArray();
        Counted.Clear();
        _mark = OpCounter.MultiplyAdds;

        bool anyVisual = types.Contains(3);
        int firstVisual = Array.IndexOf(types, 3);
        attendRows ??= Enumerable.Range(0, P).Select(i =>
            anyVisual && (!_c.TextOnlyCrossAttention || (types[i] <= 2 && (!_c.MaskSystemTokens || i >= firstVisual)))).ToArray();

        for (int l = 0; l < _c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var inNorm = W(p + "input_layernorm.weight");
            var h = RmsNorm(x, P, H, inNorm, eps);
            var q = Linear(h, P, H, W(p + "self_attn.q_proj.weight"), W(p + "self_attn.q_proj.bias"), nh * D);
            var k = Linear(h, P, H, W(p + "self_attn.k_proj.weight"), W(p + "self_attn.k_proj.bias"), nkv * D);
            var v = Linear(h, P, H, W(p + "self_attn.v_proj.weight"), W(p + "self_attn.v_proj.bias"), nkv * D);
            Rotate(q, P, nh, D);
            Rotate(k, P, nkv, D);
            var a = new double[P * nh * D];
            for (int t = 0; t < P; t++)
                for (int hd = 0; hd < nh; hd++)
                    Attend(q, t, hd, nh, k, v, hd / (nh / nkv), nkv, D, t + 1, a);

            if (_c.IsHybridLayer(l) && slow != null && attendRows.Any(r => r))
            {
                Tally("layers");
                var sn = RmsNorm(slow.Select(s => (double)s).ToArray(), slowCount, H, inNorm, eps);
                var kvp = Linear(sn, slowCount, H, W(p + "self_attn.cross_attn_kv_proj.weight"), W(p + "self_attn.cross_attn_kv_proj.bias"), 2 * nkv * D);
                // Features of one slow token: for each kv head, D key values then D value values.
                var sk = new double[slowCount * nkv * D];
                var sv = new double[slowCount * nkv * D];
                for (int s = 0; s < slowCount; s++)
                    for (int g = 0; g < nkv; g++)
                        for (int d = 0; d < D; d++)
                        {
                            sk[(s * nkv + g) * D + d] = kvp[s * 2 * nkv * D + g * 2 * D + d];
                            sv[(s * nkv + g) * D + d] = kvp[s * 2 * nkv * D + g * 2 * D + D + d];
                        }
                Tally("slow kv");
                var gw = W(p + "self_attn.cross_attn_gate_proj.0.weight");
                double gb = W(p + "self_attn.cross_attn_gate_proj.0.bias")[0];
                double warm = _c.GateHasWarmup ? W(p + "self_attn.cross_attn_warm_up_gate")[0] : 1.0;
                if (_c.GateHasWarmup && _c.TextOnlyCrossAttention) warm = Math.Tanh(warm);
                var ctx = new double[nh * D];
                for (int t = 0; t < P; t++)
                {
                    if (!attendRows[t]) continue;
                    double gate = gb;
                    for (int i = 0; i < H; i++) { gate += gw[i] * a[t * H + i]; OpCounter.MultiplyAdds++; }
                    if (_c.GateHasTanh) gate = Math.Tanh(gate);
                    gate *= warm;
                    Array.Clear(ctx);
                    var one = new double[P * nh * D];
                    for (int hd = 0; hd < nh; hd++) Attend(q, t, hd, nh, sk, sv, hd / (nh / nkv), nkv, D, slowCount, one);
                    for (int i = 0; i < nh * D; i++) a[t * H + i] += one[t * nh * D + i] * gate;
                }
            }

            Tally(_c.IsHybridLayer(l) && slow != null && attendRows.Any(r => r) ? "cross" : "layers");
            var o = Linear(a, P, nh * D, W(p + "self_attn.o_proj.weight"), null, H);
            for (int i = 0; i < x.Length; i++) x[i] += o[i];
            var h2 = RmsNorm(x, P, H, W(p + "post_attention_layernorm.weight"), eps);
            int I = _c.IntermediateSize;
            var gateP = Linear(h2, P, H, W(p + "mlp.gate_proj.weight"), null, I);
            var up = Linear(h2, P, H, W(p + "mlp.up_proj.weight"), null, I);
            for (int i = 0; i < gateP.Length; i++) gateP[i] = gateP[i] / (1 + Math.Exp(-gateP[i])) * up[i];
            var down = Linear(gateP, P, I, W(p + "mlp.down_proj.weight"), null, H);
            for (int i = 0; i < x.Length; i++) x[i] += down[i];
        }
        Tally("layers");
        var final = RmsNorm(x, P, H, W("model.norm.weight"), eps);
        var head = W(_c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        var logits = Linear(final, P, H, head, null, _c.VocabSize);
        Tally("lm_head");
        return logits;
    }

    private static double[] RmsNorm(double[] x, int rows, int n, double[] w, double eps)
    {
        var y = new double[rows * n];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += x[r * n + i] * x[r * n + i];
            double inv = 1 / Math.Sqrt(ss / n + eps);
            for (int i = 0; i < n; i++) y[r * n + i] = x[r * n + i] * inv * w[i];
        }
        return y;
    }

    private static double[] Linear(double[] x, int rows, int k, double[] w, double[]? b, int n)
    {
        var y = new double[rows * n];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < n; j++)
            {
                double s = b?[j] ?? 0;
                for (int i = 0; i < k; i++) { s += x[r * k + i] * w[j * k + i]; OpCounter.MultiplyAdds++; }
                y[r * n + j] = s;
            }
        return y;
    }

    /// <summary>HF rotate_half rotary embedding at positions 0..rows-1.</summary>
    private void Rotate(double[] x, int rows, int heads, int D)
    {
        for (int t = 0; t < rows; t++)
            for (int hd = 0; hd < heads; hd++)
                for (int i = 0; i < D / 2; i++)
                {
                    double invFreq = 1.0 / Math.Pow(_c.RopeTheta, 2.0 * i / D);
                    double angle = t * invFreq, cos = Math.Cos(angle), sin = Math.Sin(angle);
                    int at = (t * heads + hd) * D;
                    double a = x[at + i], b = x[at + i + D / 2];
                    x[at + i] = a * cos - b * sin;
                    x[at + i + D / 2] = b * cos + a * sin;
                }
    }

    /// <summary>out[t, head] = softmax(q·kᵀ/√D over keys 0..keyCount-1) · v, keys read from kv head g.</summary>
    private static void Attend(double[] q, int t, int head, int nh, double[] k, double[] v, int g, int nkv, int D, int keyCount, double[] output)
    {
        var scores = new double[keyCount];
        double max = double.NegativeInfinity;
        for (int s = 0; s < keyCount; s++)
        {
            double dot = 0;
            for (int d = 0; d < D; d++) { dot += q[(t * nh + head) * D + d] * k[(s * nkv + g) * D + d]; OpCounter.MultiplyAdds++; }
            scores[s] = dot / Math.Sqrt(D);
            max = Math.Max(max, scores[s]);
        }
        double sum = 0;
        for (int s = 0; s < keyCount; s++) sum += scores[s] = Math.Exp(scores[s] - max);
        for (int d = 0; d < D; d++)
        {
            double acc = 0;
            for (int s = 0; s < keyCount; s++) { acc += scores[s] * v[(s * nkv + g) * D + d]; OpCounter.MultiplyAdds++; }
            output[(t * nh + head) * D + d] = acc / sum;
        }
    }
}
