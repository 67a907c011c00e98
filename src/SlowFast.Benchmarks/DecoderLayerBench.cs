using System.Text.Json.Nodes;
using SlowFast.Model;
using SlowFast.Model.Decoder;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>A prompt of the released layout: system text, the fast visual tokens, then the question and the assistant prompt.</summary>
public sealed record PromptShape(int TextBefore, int FastTokens, int TextAfter, int SlowTokens)
{
    public int Positions => TextBefore + FastTokens + TextAfter;
    public int TextTokens => TextBefore + TextAfter;

    /// <summary>
    /// The qwen_1_5 chat prompt of a one-question video request is about 60 text tokens (~20 of system
    /// prompt and "user" header before the video, ~40 of question and assistant header after it) around
    /// the fast tokens of <paramref name="frames"/> frames; the slow tokens are cross-attended.
    /// </summary>
    public static PromptShape ForFrames(SlowFastConfig config, int frames, int textBefore = 20, int textAfter = 40) =>
        ForFrames(config, frames, VisualDesign.SlowFast, textBefore, textAfter);

    /// <summary>The same for <paramref name="design"/>: the baseline puts every frame's tokens in the sequence and cross-attends to none.</summary>
    public static PromptShape ForFrames(SlowFastConfig config, int frames, VisualDesign design, int textBefore = 20, int textAfter = 40)
    {
        var plan = VisualTokenPlan.For(config, frames);
        return design == VisualDesign.Baseline
            ? new PromptShape(textBefore, plan.SlowTokens, textAfter, 0)
            : new PromptShape(textBefore, plan.FastTokens, textAfter, plan.SlowTokens);
    }

    /// <summary>Token types of every position (1 = text, 3 = visual), as the decoder's cross-attention row selection reads them.</summary>
    public int[] TokenTypes()
    {
        var types = new int[Positions];
        Array.Fill(types, Model.Decoder.TokenTypes.UserText);
        types.AsSpan(TextBefore, FastTokens).Fill(Model.Decoder.TokenTypes.Visual);
        return types;
    }

    public JsonObject ToJson() => new()
    {
        ["positions"] = Positions, ["text_tokens"] = TextTokens, ["fast_tokens"] = FastTokens, ["slow_tokens"] = SlowTokens,
    };
}

/// <summary>
/// One Qwen2 decoder layer (plain or hybrid) of real shapes with random weights, run by the model's
/// own <see cref="Qwen2Decoder"/>: a decoder whose only layer is the one under test. Prefill runs the
/// whole prompt through it (a hybrid layer also projects the slow tokens to keys/values and adds the
/// gated cross-attention on the text rows, as in a real request); decode runs one more position at
/// a time against the prompt's KV cache.
/// </summary>
public sealed class DecoderLayerBench
{
    private readonly Qwen2Decoder _decoder;
    private readonly MatMulPrecision _precision;
    private readonly DecoderWorkspace _workspace = new();
    private readonly DecoderLayerWeights _layer;

    public SlowFastConfig Config { get; }

    public DecoderLayerBench(SlowFastConfig config, bool hybrid, DType weightType, MatMulPrecision precision = MatMulPrecision.Float32)
    {
        Config = config;
        _layer = RandomLayer(config, hybrid, weightType);
        _precision = precision;
        // The layer under test never computes logits, so the embedding table and lm_head are one-row stand-ins.
        var stand = RandomData.Matrix(1, config.HiddenSize, DType.F32, 99);
        unsafe
        {
            var embedding = new TensorView("bench.embed", stand.Data, DType.F32, [1, config.HiddenSize]);
            _decoder = new Qwen2Decoder(config, new DecoderWeights
            {
                Embedding = embedding,
                Layers = [_layer],
                FinalNorm = RandomData.Floats(config.HiddenSize, 1f, 98),
                LmHead = stand,
            });
        }
    }

    /// <summary>Bytes of weight matrices a decoding step reads in this layer (the cross-attention projection is not read while decoding by default).</summary>
    public long DecodeWeightBytes => MatrixBytes(_layer);

    public static long MatrixBytes(DecoderLayerWeights l) =>
        l.QProj.ByteLength + l.KProj.ByteLength + l.VProj.ByteLength + l.OProj.ByteLength
        + l.GateProj.ByteLength + l.UpProj.ByteLength + l.DownProj.ByteLength
        + 4L * (l.QBias.Length + l.KBias.Length + l.VBias.Length + l.InputNorm.Length + l.PostAttentionNorm.Length);

    /// <summary>Times the prefill of <paramref name="prompt"/> and then one-position decoding steps after it.</summary>
    public (Timing Prefill, Timing Decode) Measure(PromptShape prompt, int reps, int decodeReps, int warmups = 1)
    {
        int hidden = Config.HiddenSize;
        var embeddings = RandomData.Floats((long)prompt.Positions * hidden, 0.05f, 11);
        var slowTokens = prompt.SlowTokens > 0 ? RandomData.Floats((long)prompt.SlowTokens * hidden, 0.05f, 12) : null;
        var rows = CrossAttentionRows.ForPrompt(Config, prompt.TokenTypes());
        var cache = _decoder.CreateCache(prompt.Positions + decodeReps + 8);
        SlowKeyValues? NewSlow() => slowTokens == null ? null : _decoder.CreateSlowKeyValues(slowTokens, prompt.SlowTokens);

        // Fresh cache and slow keys/values every repetition: the slow projection is part of a request's prefill.
        var prefill = Timing.Measure(() => { cache.Clear(); return NewSlow(); },
            slow => _decoder.Forward(embeddings, prompt.Positions, cache, rows, slow, LogitRows.None, default, _precision, _workspace), reps, warmups);

        var token = RandomData.Floats(hidden, 0.05f, 13);
        var decode = Timing.Measure(() => _decoder.Forward(token, 1, cache, [], null, LogitRows.None, default, _precision, _workspace), decodeReps, warmups: 2);
        return (prefill, decode);
    }

    private static DecoderLayerWeights RandomLayer(SlowFastConfig c, bool hybrid, DType dtype)
    {
        int h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim, mlp = c.IntermediateSize;
        ulong seed = 100;
        WeightMatrix M(int rows, int cols) => RandomData.Matrix(rows, cols, dtype, seed++);
        float[] Norm() { var a = RandomData.Floats(h, 0.2f, seed++); for (int i = 0; i < a.Length; i++) a[i] += 1f; return a; }
        float[] Bias(int n) => RandomData.Floats(n, 0.1f, seed++);
        CrossAttentionWeights? cross = null;
        if (hybrid)
        {
            // Laid out as the checkpoint stores it: (kv heads, key|value, head dim) over the self-attention's KV heads.
            int crossKv = 2 * kv;
            cross = new CrossAttentionWeights
            {
                KvProj = M(crossKv, h), KvBias = Bias(crossKv),
                GateWeight = RandomData.Floats(h, 0.05f, seed++), GateBias = 0.5f,
                WarmUpGate = c.GateHasWarmup ? 0.5f : null,
            };
        }
        return new DecoderLayerWeights
        {
            // Index 0: the hybrid layer's slow keys/values slot; a plain layer never uses it.
            Index = 0,
            InputNorm = Norm(), QProj = M(q, h), QBias = Bias(q), KProj = M(kv, h), KBias = Bias(kv), VProj = M(kv, h), VBias = Bias(kv),
            OProj = M(h, q), PostAttentionNorm = Norm(), GateProj = M(mlp, h), UpProj = M(mlp, h), DownProj = M(h, mlp),
            CrossAttention = cross,
        };
    }
}
