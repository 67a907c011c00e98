namespace SlowFast.Tensors.Tests;

/// <summary>
/// Tests that set the GEMM's process-wide tunables (<c>MatMul.BlockedGemm.PanelBytes</c>,
/// <c>MaxBlockPairs</c>, <c>StripObserver</c>, <c>MatMul.Quantized.GemmMinRowsOverride</c>,
/// <c>MatMul.Bf16RowsMaxRows</c>). They run alone, never beside another test: a product running while
/// a tunable is changed blocks its sums otherwise, and the many tests that compare two products bit for
/// bit would see them differ in the last bits.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GemmTunablesCollection
{
    public const string Name = "GEMM tunables (run alone)";
}
