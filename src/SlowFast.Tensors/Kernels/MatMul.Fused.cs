namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Row work fused into a product of the blocked GEMM (<see cref="MatMul.LinearFused(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision, in LinearFusion, Span{float})"/>): a LayerNorm of
/// each input row as it is rounded to bfloat16 (BF16 weights only), and per output tile, while it is still in cache, an exact
/// GELU and/or a scaled add into a residual stream. Each replaces a whole pass over the matrix.
/// </summary>
public readonly struct LinearFusion
{
    /// <summary>When set, each input row x[r] is replaced by LayerNorm(x[r]) (torch semantics, biased variance) before the product.</summary>
    public float[]? InputNormWeight { get; init; }
    /// <summary>LayerNorm bias (required with <see cref="InputNormWeight"/>).</summary>
    public float[]? InputNormBias { get; init; }
    public float InputNormEps { get; init; }
    /// <summary>y = GELU(y) (exact, erf) after the bias.</summary>
    public bool Gelu { get; init; }
    /// <summary>When set, residual[r, c] += scale[c] · y[r, c] after everything else (y keeps the product).</summary>
    public float[]? ResidualScale { get; init; }
}

public static unsafe partial class MatMul
{
    /// <summary>
    /// Whether <see cref="LinearFused(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision, in LinearFusion, Span{float})"/> can run this product through the blocked GEMM (enough rows for
    /// it): bfloat16 arithmetic on BF16 weights, or block-quantized weights in their integer arithmetic
    /// (these without an input LayerNorm, whose rows the GEMM quantizes as they are). Otherwise the
    /// caller does the row work itself.
    /// </summary>
    public static bool CanFuse(WeightMatrix w, int m, MatMulPrecision precision) =>
        w.Format != null
            ? m >= Quantized.GemmMinRows(w.Format.Value) && Jit.QuantTileKernel.IsSupported
            : w.DType == DType.BF16 && Effective(precision) == MatMulPrecision.BFloat16
              && m >= Bf16GemmMinRows && !(m <= Bf16RowsMaxRows && Jit.Bf16RowsKernel.IsSupported);

    /// <summary>
    /// <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision)"/>
    /// in bfloat16 arithmetic with <paramref name="fusion"/>'s row work done inside the product. Only
    /// where <see cref="CanFuse"/>. <paramref name="residual"/> is [m, N] (needed with a residual scale)
    /// and must not overlap x or y. x is read, never written, even with an input LayerNorm. With BF16
    /// weights and a residual scale, <paramref name="y"/> may be empty: the product then only goes into
    /// the residual, from a tile in cache, and is never written out.
    /// </summary>
    public static void LinearFused(ReadOnlySpan<float> x, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<float> y,
        MatMulPrecision precision, in LinearFusion fusion, Span<float> residual = default)
    {
        if ((long)m * w.Cols > x.Length) throw new ArgumentException($"x holds {x.Length} floats; [{m}, {w.Cols}] needs {(long)m * w.Cols}", nameof(x));
        fixed (float* xp = x) RunFused(xp, null, m, w, bias, y, precision, fusion, residual);
    }

    /// <summary>
    /// <see cref="LinearFused(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision, in LinearFusion, Span{float})"/>
    /// on an input already rounded to bfloat16 (by <see cref="LinearGeluToBFloat16"/>): rows of
    /// <see cref="BFloat16RowElements"/>(K) elements. BF16 weights only (<see cref="CanHandOffBFloat16"/>);
    /// no input LayerNorm (the rows are final).
    /// </summary>
    public static void LinearFused(ReadOnlySpan<ushort> x, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<float> y,
        MatMulPrecision precision, in LinearFusion fusion, Span<float> residual = default)
    {
        if (!CanHandOffBFloat16(w, m, precision)) throw new InvalidOperationException("a product on bfloat16 rows needs bfloat16 arithmetic on BF16 weights and more rows than the row kernel takes (CanHandOffBFloat16)");
        if (fusion.InputNormWeight != null) throw new ArgumentException("bfloat16 input rows are final: no input LayerNorm", nameof(fusion));
        if ((long)m * BFloat16RowElements(w.Cols) > x.Length) throw new ArgumentException($"x holds {x.Length} bfloat16 values; {m} rows of {BFloat16RowElements(w.Cols)} need {(long)m * BFloat16RowElements(w.Cols)}", nameof(x));
        fixed (ushort* xp = x) RunFused(null, xp, m, w, bias, y, precision, fusion, residual);
    }

    /// <summary>Elements per row of bfloat16 activations as the bfloat16 GEMM reads them: K rounded up to whole 64-byte rows.</summary>
    public static int BFloat16RowElements(int k) => 2 * (((k + 1) / 2 + 15) & ~15);

    /// <summary>
    /// Whether a product can hand its output on in bfloat16 (<see cref="LinearGeluToBFloat16"/>) or take its
    /// input so (<see cref="LinearFused(ReadOnlySpan{ushort}, int, WeightMatrix, ReadOnlySpan{float}, Span{float}, MatMulPrecision, in LinearFusion, Span{float})"/>):
    /// <see cref="CanFuse"/> with BF16 weights.
    /// </summary>
    public static bool CanHandOffBFloat16(WeightMatrix w, int m, MatMulPrecision precision) => w.Format == null && CanFuse(w, m, precision);

    /// <summary>
    /// y = bfloat16(GELU(x·Wᵀ + bias)), rows of <see cref="BFloat16RowElements"/>(N) elements: the input of
    /// the next product as that product would round it, bit for bit the same as <c>Linear</c>, then
    /// <see cref="Activations.Gelu(Span{float})"/>, then the next product's rounding — without writing and re-reading
    /// the float32 [m, N] in between (half the bytes, and no separate GELU pass). Only where
    /// <see cref="CanHandOffBFloat16"/>. Elements past N in a row are left as they are (an odd N's pad element is zeroed).
    /// Of <paramref name="inputNorm"/> only the input LayerNorm is taken (x is read, never written).
    /// </summary>
    public static void LinearGeluToBFloat16(ReadOnlySpan<float> x, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<ushort> y, MatMulPrecision precision,
        in LinearFusion inputNorm = default)
    {
        if (!CanHandOffBFloat16(w, m, precision)) throw new InvalidOperationException("a bfloat16 output needs bfloat16 arithmetic on BF16 weights and more rows than the row kernel takes (CanHandOffBFloat16)");
        int n = w.Rows, k = w.Cols, stride = BFloat16RowElements(n);
        if ((long)m * k > x.Length) throw new ArgumentException($"x holds {x.Length} floats; [{m}, {k}] needs {(long)m * k}", nameof(x));
        if ((long)m * stride > y.Length) throw new ArgumentException($"y holds {y.Length} bfloat16 values; {m} rows of {stride} need {(long)m * stride}", nameof(y));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"bias has {bias.Length} floats; expected {n}", nameof(bias));
        CheckInputNorm(inputNorm, k, nameof(inputNorm));
        if (inputNorm.Gelu || inputNorm.ResidualScale != null) throw new ArgumentException("only an input LayerNorm can be fused here (GELU always is)", nameof(inputNorm));
        fixed (float* xp = x) fixed (ushort* yp = y) fixed (float* bp = bias)
        fixed (float* nwp = inputNorm.InputNormWeight) fixed (float* nbp = inputNorm.InputNormBias)
        {
            var operands = new Operands
            {
                X = xp, XStride = k, M = m,
                W = w.Data, WType = w.DType, N = n, K = k, Bf16Strips = w.Bf16Strips,
                Bias = bias.IsEmpty ? null : bp,
                NormWeight = nwp, NormBias = nbp, NormEps = inputNorm.InputNormEps,
                Gelu = true, YBf16 = yp, YBf16Stride = stride,
            };
            BlockedGemm.Run(in operands);
        }
    }

    private static void RunFused(float* x, ushort* xBf16, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<float> y,
        MatMulPrecision precision, in LinearFusion fusion, Span<float> residual)
    {
        if (!CanFuse(w, m, precision)) throw new InvalidOperationException($"a fused product needs bfloat16 arithmetic on BF16 weights and more than {Bf16RowsMaxRows} rows, or quantized weights and as many rows as their GEMM takes (CanFuse)");
        int n = w.Rows, k = w.Cols;
        bool intoResidualOnly = y.IsEmpty && fusion.ResidualScale != null;
        if (intoResidualOnly && w.Format != null) throw new ArgumentException("a quantized product writes y: only BF16 weights go into the residual alone", nameof(y));
        if (intoResidualOnly && fusion.Gelu) throw new ArgumentException("GELU is fused only into a product that writes y", nameof(y));
        if (!intoResidualOnly && (long)m * n > y.Length) throw new ArgumentException($"y holds {y.Length} floats; [{m}, {n}] needs {(long)m * n}", nameof(y));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"bias has {bias.Length} floats; expected {n}", nameof(bias));
        CheckInputNorm(fusion, k, nameof(fusion));
        if (fusion.InputNormWeight != null && w.Format != null)
            throw new ArgumentException("the input LayerNorm is fused only into products with BF16 weights", nameof(fusion));
        if (fusion.ResidualScale is { } rs && (rs.Length != n || (long)m * n > residual.Length))
            throw new ArgumentException($"the residual add needs a scale of {n} floats and a residual of [{m}, {n}]", nameof(fusion));

        fixed (float* yp = y) fixed (float* bp = bias)
        fixed (float* nwp = fusion.InputNormWeight) fixed (float* nbp = fusion.InputNormBias)
        fixed (float* rsp = fusion.ResidualScale) fixed (float* rp = residual)
        {
            var operands = new Operands
            {
                X = x, XStride = k, M = m, XBf16 = xBf16,
                W = w.Data, WType = w.DType, N = n, K = k,
                Format = w.Format, Scales = w.Scales, Bf16Strips = w.Bf16Strips,
                Bias = bias.IsEmpty ? null : bp,
                Y = intoResidualOnly ? null : yp, YStride = n,
                NormWeight = nwp, NormBias = nbp, NormEps = fusion.InputNormEps,
                Gelu = fusion.Gelu,
                ResidualScale = rsp, Residual = rsp == null ? null : rp, ResidualStride = n,
            };
            BlockedGemm.Run(in operands);
        }
    }

    private static void CheckInputNorm(in LinearFusion fusion, int k, string parameter)
    {
        if (fusion.InputNormWeight is { } nw && (nw.Length != k || fusion.InputNormBias?.Length != k))
            throw new ArgumentException($"the input LayerNorm needs weight and bias of {k} floats", parameter);
    }
}
