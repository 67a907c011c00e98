using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Benchmarks;

/// <summary>
/// y[M, N] = x[M, K] · W[N, K]ᵀ with W stored as <see cref="WeightType"/>, computed in
/// <see cref="Precision"/> (float32 activations by default; BFloat16 = PyTorch's bf16 × bf16 arithmetic).
/// </summary>
public sealed record MatShape(string Name, int M, int K, int N, DType WeightType, MatMulPrecision Precision = MatMulPrecision.Float32)
{
    public double Flops => 2.0 * M * K * N;
    public double WeightBytes => (double)K * N * WeightType.SizeOf();
    /// <summary>Few rows: the product reads each weight once and does little with it, so memory bandwidth bounds it.</summary>
    public bool MemoryBound => M <= 16;
    public string Key => $"{M}x{K}x{N}";
}

/// <summary>The matrix products that dominate the 7B model (Qwen2-7B decoder shapes).</summary>
public static class KernelShapes
{
    /// <summary>
    /// The acceptance shape (M=2048, K=N=3584: a 2048-position prefill through q_proj/o_proj) with
    /// float32 activations and in bfloat16 arithmetic (the like-for-like comparison with PyTorch's
    /// bf16 matmul), smaller prefills, and the GEMVs of decoding: MLP up/gate and MLP down for one
    /// sequence and batches of 2 to 16 (each weight read once for all rows), lm_head for 1 and 8, and
    /// the three decoding shapes for 1, 4 and 8 rows in bfloat16 arithmetic.
    /// </summary>
    public static IReadOnlyList<MatShape> Full { get; } =
    [
        new("gemm 2048x3584x3584 bf16", 2048, 3584, 3584, DType.BF16),
        new("gemm 2048x3584x3584 bf16, bf16 math", 2048, 3584, 3584, DType.BF16, MatMulPrecision.BFloat16),
        new("gemm 2048x3584x3584 f32", 2048, 3584, 3584, DType.F32),
        new("gemm 256x3584x3584 bf16", 256, 3584, 3584, DType.BF16),
        new("gemm 64x3584x3584 bf16", 64, 3584, 3584, DType.BF16),
        new("gemm 17x3584x3584 bf16", 17, 3584, 3584, DType.BF16),
        new("gemv 1x3584x18944 bf16", 1, 3584, 18944, DType.BF16),
        new("gemv 2x3584x18944 bf16", 2, 3584, 18944, DType.BF16),
        new("gemv 4x3584x18944 bf16", 4, 3584, 18944, DType.BF16),
        new("gemv 8x3584x18944 bf16", 8, 3584, 18944, DType.BF16),
        new("gemv 16x3584x18944 bf16", 16, 3584, 18944, DType.BF16),
        new("gemv 1x18944x3584 bf16", 1, 18944, 3584, DType.BF16),
        new("gemv 2x18944x3584 bf16", 2, 18944, 3584, DType.BF16),
        new("gemv 4x18944x3584 bf16", 4, 18944, 3584, DType.BF16),
        new("gemv 8x18944x3584 bf16", 8, 18944, 3584, DType.BF16),
        new("gemv 16x18944x3584 bf16", 16, 18944, 3584, DType.BF16),
        new("gemv 1x3584x152064 bf16", 1, 3584, 152064, DType.BF16),
        new("gemv 8x3584x152064 bf16", 8, 3584, 152064, DType.BF16),
        new("gemv 1x3584x18944 bf16, bf16 math", 1, 3584, 18944, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 4x3584x18944 bf16, bf16 math", 4, 3584, 18944, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 8x3584x18944 bf16, bf16 math", 8, 3584, 18944, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 1x18944x3584 bf16, bf16 math", 1, 18944, 3584, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 4x18944x3584 bf16, bf16 math", 4, 18944, 3584, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 8x18944x3584 bf16, bf16 math", 8, 18944, 3584, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 1x3584x152064 bf16, bf16 math", 1, 3584, 152064, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 4x3584x152064 bf16, bf16 math", 4, 3584, 152064, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 8x3584x152064 bf16, bf16 math", 8, 3584, 152064, DType.BF16, MatMulPrecision.BFloat16),
    ];

    /// <summary>A smoke run's worth: one small GEMM and one decoding GEMV.</summary>
    public static IReadOnlyList<MatShape> Quick { get; } =
    [
        new("gemm 64x3584x3584 bf16", 64, 3584, 3584, DType.BF16),
        new("gemm 64x3584x3584 bf16, bf16 math", 64, 3584, 3584, DType.BF16, MatMulPrecision.BFloat16),
        new("gemv 1x3584x18944 bf16", 1, 3584, 18944, DType.BF16),
    ];
}
