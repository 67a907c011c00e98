namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Row work fused into a product of the blocked GEMM (<see cref="MatMul.LinearFused"/>): a LayerNorm of
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
    /// Whether <see cref="LinearFused"/> can run this product through the blocked GEMM (enough rows for
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
    /// and must not overlap x or y. x is read, never written, even with an input LayerNorm.
    /// </summary>
    public static void LinearFused(ReadOnlySpan<float> x, int m, WeightMatrix w, ReadOnlySpan<float> bias, Span<float> y,
        MatMulPrecision precision, in LinearFusion fusion, Span<float> residual = default)
    {
        if (!CanFuse(w, m, precision)) throw new InvalidOperationException($"a fused product needs bfloat16 arithmetic on BF16 weights and more than {Bf16RowsMaxRows} rows, or quantized weights and as many rows as their GEMM takes (CanFuse)");
        int n = w.Rows, k = w.Cols;
        if ((long)m * k > x.Length) throw new ArgumentException($"x holds {x.Length} floats; [{m}, {k}] needs {(long)m * k}", nameof(x));
        if ((long)m * n > y.Length) throw new ArgumentException($"y holds {y.Length} floats; [{m}, {n}] needs {(long)m * n}", nameof(y));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"bias has {bias.Length} floats; expected {n}", nameof(bias));
        if (fusion.InputNormWeight is { } nw && (nw.Length != k || fusion.InputNormBias?.Length != k))
            throw new ArgumentException($"the input LayerNorm needs weight and bias of {k} floats", nameof(fusion));
        if (fusion.InputNormWeight != null && w.Format != null)
            throw new ArgumentException("the input LayerNorm is fused only into products with BF16 weights", nameof(fusion));
        if (fusion.ResidualScale is { } rs && (rs.Length != n || (long)m * n > residual.Length))
            throw new ArgumentException($"the residual add needs a scale of {n} floats and a residual of [{m}, {n}]", nameof(fusion));

        fixed (float* xp = x) fixed (float* yp = y) fixed (float* bp = bias)
        fixed (float* nwp = fusion.InputNormWeight) fixed (float* nbp = fusion.InputNormBias)
        fixed (float* rsp = fusion.ResidualScale) fixed (float* rp = residual)
        {
            var operands = new Operands
            {
                X = xp, XStride = k, M = m,
                W = w.Data, WType = w.DType, N = n, K = k,
                Format = w.Format, Scales = w.Scales,
                Bias = bias.IsEmpty ? null : bp,
                Y = yp, YStride = n,
                NormWeight = nwp, NormBias = nbp, NormEps = fusion.InputNormEps,
                Gelu = fusion.Gelu,
                ResidualScale = rsp, Residual = rsp == null ? null : rp, ResidualStride = n,
            };
            BlockedGemm.Run(in operands);
        }
    }
}
