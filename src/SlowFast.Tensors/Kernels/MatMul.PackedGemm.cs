namespace SlowFast.Tensors.Kernels;

public static unsafe partial class MatMul
{
    /// <summary>Many-rows strategy (placeholder: shares the dot-product kernel until the packed GEMM lands).</summary>
    private static class PackedGemm
    {
        public static void Run(in Operands op) => DotProducts.Run(op);
    }
}
