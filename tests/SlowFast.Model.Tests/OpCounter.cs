namespace SlowFast.Model.Tests;

/// <summary>
/// Operations the scalar reference implementations perform, counted one by one in their innermost
/// loops (per thread): the independent count the compute-cost formulas are checked against.
/// </summary>
internal static class OpCounter
{
    [ThreadStatic] public static long MultiplyAdds;
    [ThreadStatic] public static long Additions;

    public static void Reset() => MultiplyAdds = Additions = 0;
}
