namespace SlowFast.Model.Tests;

/// <summary>
/// Tests that set the GEMM's process-wide tunables (<c>MatMul.Quantized.GemmMinRowsOverride</c>). They
/// run alone, never beside another test, which could otherwise take another product path in the middle
/// of a bit-for-bit comparison.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GemmTunablesCollection
{
    public const string Name = "GEMM tunables (run alone)";
}
