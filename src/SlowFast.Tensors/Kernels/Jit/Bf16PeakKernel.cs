namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// A register-only loop of independent <c>vdpbf16ps</c>: what one core's bfloat16 dot-product unit
/// can do at best, the ceiling the bfloat16 products are judged against; and the same loop of
/// float32 FMAs, against which <see cref="Bf16TileKernel.Tiles"/> chooses its arithmetic.
/// </summary>
public static unsafe class Bf16PeakKernel
{
    /// <summary>Independent accumulator chains per trip: enough to cover the instruction's latency on two ports.</summary>
    private const int Chains = 24;

    /// <summary>Floating-point operations one trip of the loop does: Chains × 16 lanes × 2 pairs × 2 (multiply and add).</summary>
    public const long FlopsPerTrip = Chains * 16L * 2 * 2;

    private static nint _code, _fmaCode;

    /// <summary>Whether the loop can run here (see <see cref="Bf16TileKernel.IsSupported"/>).</summary>
    public static bool IsSupported => Bf16TileKernel.IsSupported;

    /// <summary>Runs <paramref name="trips"/> trips on the calling thread.</summary>
    public static void Run(long trips)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-BF16");
        ArgumentOutOfRangeException.ThrowIfLessThan(trips, 1);
        if (_code == 0) _code = (nint)ExecutableMemory.Install(Generate());
        ((delegate* unmanaged<long, void>)_code)(trips);
    }

    /// <summary>
    /// Runs <paramref name="trips"/> trips of the same loop with vfmadd231ps in place of vdpbf16ps on the
    /// calling thread: half the flops a trip (<see cref="FlopsPerTrip"/> / 2).
    /// </summary>
    public static void RunFma(long trips)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-BF16");
        ArgumentOutOfRangeException.ThrowIfLessThan(trips, 1);
        if (_fmaCode == 0) _fmaCode = (nint)ExecutableMemory.Install(Generate(fma: true));
        ((delegate* unmanaged<long, void>)_fmaCode)(trips);
    }

    /// <summary>
    /// Flops per second of the FMA loop over those of the vdpbf16ps loop on the calling thread: each run
    /// about a millisecond, three of each alternately, the best of each (a descheduled run is slow, never fast).
    /// </summary>
    public static double FmaToDotRatio()
    {
        const long trips = 20_000;
        Run(trips);
        RunFma(trips);
        double dot = double.MaxValue, fma = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            Run(trips);
            long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
            RunFma(trips);
            long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
            dot = Math.Min(dot, t1 - t0);
            fma = Math.Min(fma, t2 - t1);
        }
        return dot / fma / 2;   // a dot trip does twice the flops of an FMA trip
    }

    /// <summary>Machine code: rdi = trip count; zmm0..23 accumulate zmm24 · zmm25 (whatever they hold: only the rate matters).</summary>
    internal static byte[] Generate(bool fma = false)
    {
        var a = new X86Assembler();
        for (int i = 0; i < Chains; i++) a.Vpxord(i, i, i);
        a.Vpxord(24, 24, 24);
        a.Vpxord(25, 25, 25);
        int loop = a.NewLabel();
        a.Place(loop);
        for (int i = 0; i < Chains; i++)
            if (fma) a.Vfmadd231ps(i, 24, 25);
            else a.Vdpbf16ps(i, 24, 25);
        a.Dec(Gpr.Rdi);
        a.Jnz(loop);
        a.Vzeroupper();
        a.Ret();
        return a.ToArray();
    }
}
