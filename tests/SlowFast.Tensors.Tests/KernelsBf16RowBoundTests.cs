using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// The bfloat16 paths that take over below the row kernel's bound (the GEMM from 4 rows, the rounded-rows
/// dot products under that), checked against the same reference as the row kernel. They lower the
/// process-wide <see cref="MatMul.Bf16RowsMaxRows"/>, so they run alone: a product elsewhere would take
/// another path while it is lowered, and the tests that compare two products bit for bit would differ.
/// </summary>
[Collection(GemmTunablesCollection.Name)]
public class KernelsBf16RowBoundTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(7)]
    public void The_other_bfloat16_paths_agree_with_the_row_kernel(int m)
    {
        int n = 70, k = 300;
        var x = KernelsReference.Random(m * k, 61);
        var (w, bits) = KernelsBf16FewRowsTests.Weights(n, k, 62);
        int saved = MatMul.Bf16RowsMaxRows;
        float[] y;
        MatMul.Bf16RowsMaxRows = 0;
        try { y = KernelsBf16FewRowsTests.Run(x, m, w, null); }
        finally { MatMul.Bf16RowsMaxRows = saved; }
        KernelsReference.AssertClose(KernelsBf16FewRowsTests.Reference(x, m, bits, n, k, null), y,
            KernelsBf16FewRowsTests.Tol(k), 1e-5, "y");
    }
}
