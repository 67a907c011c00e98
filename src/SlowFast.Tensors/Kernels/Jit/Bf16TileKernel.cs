using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// What one call of a <see cref="Bf16TileKernel"/> computes: for each of <see cref="MTiles"/> tiles
/// of MR rows, C[MR, up to 64 columns] (+)= A[MR, 2·kPairs] · B-panel, with A and B in bfloat16 and
/// C in float32. The kernel reads every field and counts <see cref="MTiles"/> down to zero.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Bf16TileArgs
{
    /// <summary>
    /// Row 0 of the first tile, consecutive k in consecutive elements: bfloat16 for
    /// <see cref="Bf16TileKernel.Arithmetic.DotProduct"/>, float32 holding bfloat16 values (low 16 bits zero)
    /// for <see cref="Bf16TileKernel.Arithmetic.WidenedFma"/>.
    /// </summary>
    public ushort* A;
    /// <summary>Bytes from one A row to the next.</summary>
    public long AStride;
    /// <summary>Packed weights: for each k pair, the 64 columns' (k, k+1) bfloat16 pairs (256 bytes).</summary>
    public ushort* B;
    /// <summary>Row 0 of the first tile's output.</summary>
    public float* C;
    /// <summary>Bytes from one C row to the next.</summary>
    public long CStride;
    /// <summary>Number of k pairs / <see cref="Bf16TileKernel.Unroll"/> (main loop trips).</summary>
    public long KMain;
    /// <summary>Number of k pairs % <see cref="Bf16TileKernel.Unroll"/> (tail loop trips).</summary>
    public long KRem;
    /// <summary>Tiles of MR rows to run (the kernel decrements it).</summary>
    public long MTiles;
    /// <summary>MR · AStride.</summary>
    public long ATileStep;
    /// <summary>MR · CStride.</summary>
    public long CTileStep;
    /// <summary>Lane mask for the last stored 16-column group (bit i = column i present).</summary>
    public long LastMask;
    /// <summary>The tile's first column's bias (read by <see cref="Bf16TileKernel.Sum.PlusBias"/> variants only).</summary>
    public float* Bias;
    /// <summary>
    /// Where to start bringing lines into L2 ahead of use: one 64-byte line per main-loop trip, in
    /// order, over all tiles of the call (a hint: any address, never read).
    /// </summary>
    public byte* Prefetch;
}

/// <summary>
/// A register-blocked microkernel for bfloat16 matrix products, generated at run time around the
/// AVX512-BF16 instruction <c>vdpbf16ps</c>, which .NET 10 has no intrinsic for, or, on CPUs where
/// that instruction runs at less than the float32 FMA's rate, around FMAs on the operands widened to
/// float32 (<see cref="Arithmetic"/>).
/// </summary>
/// <remarks>
/// <para>Each vdpbf16ps multiplies 16 lanes of bfloat16 pairs and adds both products into 16 float32
/// accumulators: 64 flops per instruction, twice the 32 of a float32 FMA. A tile is MR rows × 64
/// columns: MR·4 zmm accumulators, 4 zmm of packed weights per k pair, and each A pair (two
/// bfloat16 = 32 bits) broadcast to all lanes.</para>
/// <para>Variants differ in rows (1..<see cref="MaxRows"/>), how many 16-column groups are computed
/// and stored (the last one possibly masked, for N not a multiple of 64: a narrow strip costs only
/// its own groups), and what the tile's sums are added to before the store (<see cref="Sum"/>:
/// nothing, C from earlier k blocks, or the bias — from registers, so a product with a bias never
/// writes and re-reads its output just to start it from the bias). Each variant is generated once
/// and cached.</para>
/// </remarks>
internal static unsafe class Bf16TileKernel
{
    /// <summary>Rows per full tile.</summary>
    public const int MaxRows = 6;
    /// <summary>
    /// Rows per full tile of the widened tiles: 20 accumulators, 8 registers of widened weights, and each
    /// row's two A values broadcast into registers, loaded once for all four groups. Six rows leave no
    /// register for A, so every FMA broadcasts its own from memory (8 loads a row and pair instead of 2);
    /// that measured slower in the whole GEMM on the 2-core Intel Xeon here.
    /// </summary>
    public const int WidenedMaxRows = 5;
    /// <summary>Columns per tile: four zmm registers of 16 floats.</summary>
    public const int Columns = 64;
    /// <summary>K pairs per main-loop trip.</summary>
    public const int Unroll = 4;
    private const int ColumnGroups = Columns / 16;

    private static readonly ConcurrentDictionary<int, nint> _cache = new();

    /// <summary>How a tile multiplies its bfloat16 pairs. Both give the same sums: vdpbf16ps adds a pair's odd
    /// product, then its even one, each rounded once, as two FMAs on the widened values do.</summary>
    public enum Arithmetic
    {
        /// <summary>vdpbf16ps: one instruction for both products of 16 pairs (64 flops), operands as stored.</summary>
        DotProduct,
        /// <summary>
        /// Two FMAs per 16 pairs on values widened to float32 (exact: a bfloat16 is the top half of a float32).
        /// A arrives widened (<see cref="Bf16TileArgs.A"/>); each 64 bytes of packed weights are widened in
        /// two instructions (shift for the even k, masked load of the odd k), once for all the tile's
        /// <see cref="WidenedMaxRows"/> rows. Unlike vdpbf16ps it keeps denormal inputs and sums.
        /// </summary>
        WidenedFma,
    }

    /// <summary>
    /// The arithmetic the bfloat16 GEMM's tiles use on this machine: <see cref="Arithmetic.WidenedFma"/>
    /// where a register-only loop of FMAs does <see cref="WidenedFmaAdvantage"/> times or more the flops of
    /// one of vdpbf16ps (the Intel Xeon seen here runs vdpbf16ps at half the FMA's flop rate, the AMD EPYC
    /// Zen 5 at about twice it), measured once per process at first use. SLOWFAST_BF16_TILES=dot|fma
    /// overrides the measurement; tests set it.
    /// </summary>
    public static Arithmetic Tiles
    {
        get
        {
            int tiles = Volatile.Read(ref _tiles);
            if (tiles < 0)
            {
                // Two threads may both measure the first time: each gets a valid answer, the last one stays.
                tiles = (int)ChooseArithmetic(out double ratio);
                _measuredRatio = ratio;
                Volatile.Write(ref _tiles, tiles);
            }
            return (Arithmetic)tiles;
        }
        internal set => Volatile.Write(ref _tiles, (int)value);
    }
    private static int _tiles = -1;   // an Arithmetic once chosen
    private static double _measuredRatio;

    /// <summary>
    /// FMA flops per vdpbf16ps flop (both register-only loops, best of three each on one core) measured
    /// when <see cref="Tiles"/> was chosen; 0 where it was not measured (set, or chosen by the environment).
    /// </summary>
    public static double MeasuredFmaToDotRatio { get { _ = Tiles; return _measuredRatio; } }

    /// <summary>
    /// How much faster the FMA loop must be for the widened tiles to win: they spend one instruction in
    /// six on widening the weights and have five rows to the dot product's six, so on a machine where
    /// both peaks are equal the dot product is still faster.
    /// </summary>
    public const double WidenedFmaAdvantage = 1.3;

    private static Arithmetic ChooseArithmetic(out double ratio)
    {
        ratio = 0;
        switch (Environment.GetEnvironmentVariable("SLOWFAST_BF16_TILES"))
        {
            case "dot": return Arithmetic.DotProduct;
            case "fma": return Arithmetic.WidenedFma;
            case null or "": break;
            case var other: throw new UserError($"SLOWFAST_BF16_TILES must be dot or fma (or unset: measured), not '{other}'");
        }
        if (!IsSupported) return Arithmetic.DotProduct;
        ratio = Bf16PeakKernel.FmaToDotRatio();
        return ratio >= WidenedFmaAdvantage ? Arithmetic.WidenedFma : Arithmetic.DotProduct;
    }

    /// <summary>What a tile's sums are added to before they are stored.</summary>
    public enum Sum
    {
        /// <summary>Nothing: C is overwritten.</summary>
        Alone,
        /// <summary>C as it is (the sums of earlier k blocks).</summary>
        PlusC,
        /// <summary>The bias at <see cref="Bf16TileArgs.Bias"/>, one value per column: sums + bias, as C = bias then C += sums rounds.</summary>
        PlusBias,
    }

    /// <summary>
    /// True when this CPU and OS can run the kernel: Linux x86-64 with AVX-512F and AVX512-BF16
    /// (CPUID leaf 7 sub-leaf 1, EAX bit 5), where generated code may run. SLOWFAST_NO_JIT=1 turns it off.
    /// </summary>
    public static bool IsSupported { get; } = Detect();

    private static bool Detect()
    {
        if (Environment.GetEnvironmentVariable("SLOWFAST_NO_JIT") == "1") return false;
        if (!ExecutableMemory.IsSupported || !Avx512F.IsSupported || !X86Base.IsSupported) return false;
        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (maxLeaf < 7) return false;
        var (maxSubLeaf, _, _, _) = X86Base.CpuId(7, 0);
        if (maxSubLeaf < 1) return false;
        var (eax, _, _, _) = X86Base.CpuId(7, 1);
        if ((eax & (1 << 5)) == 0) return false;
        // A system may forbid executable pages made at run time (SELinux execmem, hardened kernels):
        // then the products simply stay in float32.
        try
        {
            var probe = (delegate* unmanaged<int>)ExecutableMemory.Install([0xB8, 42, 0, 0, 0, 0xC3]);   // mov eax, 42; ret
            return probe() == 42;
        }
        catch (Exception e) when (e is InvalidOperationException or OutOfMemoryException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>The kernel for tiles of <paramref name="rows"/> rows computing and storing <paramref name="groups"/> 16-column groups.</summary>
    public static delegate* unmanaged<Bf16TileArgs*, void> Get(int rows, int groups, bool masked, Sum sum, Arithmetic arithmetic)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-BF16");
        if (rows < 1 || rows > (arithmetic == Arithmetic.WidenedFma ? WidenedMaxRows : MaxRows)) throw new ArgumentOutOfRangeException(nameof(rows));
        if (groups is < 1 or > ColumnGroups) throw new ArgumentOutOfRangeException(nameof(groups));
        int key = rows | groups << 4 | (masked ? 1 << 8 : 0) | (int)sum << 9 | (int)arithmetic << 12;
        // A static lambda decoding the key: the cached path (every tile call) allocates no closure.
        nint code = _cache.GetOrAdd(key, static k => (nint)ExecutableMemory.Install(
            Generate(k & 15, k >> 4 & 15, (k & 1 << 8) != 0, (Sum)(k >> 9 & 7), (Arithmetic)(k >> 12))));
        return (delegate* unmanaged<Bf16TileArgs*, void>)code;
    }

    // Argument offsets in Bf16TileArgs (a test checks them against the struct's layout).
    private const int OffA = 0, OffAStride = 8, OffB = 16, OffC = 24, OffCStride = 32, OffKMain = 40, OffKRem = 48,
        OffMTiles = 56, OffATileStep = 64, OffCTileStep = 72, OffLastMask = 80, OffBias = 88, OffPrefetch = 96;

    internal static IReadOnlyDictionary<string, int> ArgumentOffsets { get; } = new Dictionary<string, int>
    {
        [nameof(Bf16TileArgs.A)] = OffA, [nameof(Bf16TileArgs.AStride)] = OffAStride, [nameof(Bf16TileArgs.B)] = OffB,
        [nameof(Bf16TileArgs.C)] = OffC, [nameof(Bf16TileArgs.CStride)] = OffCStride, [nameof(Bf16TileArgs.KMain)] = OffKMain,
        [nameof(Bf16TileArgs.KRem)] = OffKRem, [nameof(Bf16TileArgs.MTiles)] = OffMTiles, [nameof(Bf16TileArgs.ATileStep)] = OffATileStep,
        [nameof(Bf16TileArgs.CTileStep)] = OffCTileStep, [nameof(Bf16TileArgs.LastMask)] = OffLastMask,
        [nameof(Bf16TileArgs.Bias)] = OffBias, [nameof(Bf16TileArgs.Prefetch)] = OffPrefetch,
    };

    /// <summary>Machine code of one variant (System V calling convention: args pointer in rdi).</summary>
    public static byte[] Generate(int rows, int groups, bool masked, Sum sum, Arithmetic arithmetic = Arithmetic.DotProduct)
    {
        var a = new X86Assembler();
        var tile = new TileCode(a, rows);
        Gpr args = Gpr.Rdi, aStride = Gpr.Rsi, cStride = Gpr.R8, aTile = Gpr.R9, cTile = Gpr.R11, b = Gpr.Rdx, count = Gpr.Rcx;
        Gpr prefetch = Gpr.Rbx;   // callee-saved: pushed and popped
        static int Acc(int row, int g) => TileCode.Accumulator(row, g);

        if (masked) tile.LoadLastMask(args, OffLastMask);
        if (arithmetic == Arithmetic.WidenedFma)
        {
            a.Mov(Gpr.Rax, unchecked((int)0xAAAAAAAA));   // k2: the odd 16-bit lanes, each pair's high half
            a.KmovdFromGpr(2, Gpr.Rax);
        }
        a.Push(prefetch);
        a.Load(prefetch, Mem.At(args, OffPrefetch));
        a.Load(aStride, Mem.At(args, OffAStride));
        a.Load(cStride, Mem.At(args, OffCStride));
        a.Load(aTile, Mem.At(args, OffA));
        a.Load(cTile, Mem.At(args, OffC));

        int tileLoop = a.NewLabel();
        a.Place(tileLoop);
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++) a.Vpxord(Acc(r, g), Acc(r, g), Acc(r, g));
        tile.SetRowPointers(aTile, aStride);
        a.Load(b, Mem.At(args, OffB));
        // One line brought toward L2 per main-loop trip (see Bf16TileArgs.Prefetch).
        Action eachTrip = () => { a.Prefetcht1(Mem.At(prefetch)); a.Add(prefetch, 64); };
        if (arithmetic == Arithmetic.DotProduct)
            tile.DotLoops(args, OffKMain, OffKRem, b, count, aStride, groups, Unroll, a.Vdpbf16ps, eachTrip);
        else
        {
            // Weights widened: the even k of group g in zmm24+g (each pair shifted up 16 bits), the odd k in
            // zmm28+g (each pair's low half zeroed); a row's odd and even A values in zmm20/21 (zmm22/23 for
            // odd rows, so consecutive rows' broadcasts need not wait on each other's FMAs).
            if (rows > WidenedMaxRows) throw new ArgumentOutOfRangeException(nameof(rows), $"widened tiles have at most {WidenedMaxRows} rows");
            static int Even(int g) => 24 + g;
            static int Odd(int g) => 28 + g;
            tile.Loops(args, OffKMain, OffKRem, b, count, Unroll, rowBytesPerStep: 8, eachTrip, step: u =>
            {
                for (int g = 0; g < groups; g++)
                {
                    Mem w = Mem.At(b, 64 * (ColumnGroups * u + g));
                    a.Vpslld(Even(g), w, 16);
                    a.Vmovdqu16LoadZeroMasked(Odd(g), w, 2);
                }
                for (int r = 0; r < rows; r++)
                {
                    int odd = 20 + 2 * (r & 1), even = odd + 1;
                    a.Vpbroadcastd(odd, TileCode.Row(r, aStride, 8 * u + 4));
                    a.Vpbroadcastd(even, TileCode.Row(r, aStride, 8 * u));
                    // The odd product first, then the even one: vdpbf16ps's order, so both arithmetics agree.
                    for (int g = 0; g < groups; g++) a.Vfmadd231ps(Acc(r, g), Odd(g), odd);
                    for (int g = 0; g < groups; g++) a.Vfmadd231ps(Acc(r, g), Even(g), even);
                }
            });
        }

        tile.SetRowPointers(cTile, cStride);
        if (sum == Sum.PlusBias) a.Load(b, Mem.At(args, OffBias));   // b is reloaded for the next tile
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
            {
                // Masked lanes of the last group are neither read nor stored (no fault past the bias or the row).
                int mask = masked && g == groups - 1 ? 1 : 0;
                Mem at = TileCode.Row(r, cStride, 64 * g);
                if (sum == Sum.PlusC) a.Vaddps(Acc(r, g), Acc(r, g), at, mask);
                else if (sum == Sum.PlusBias) a.Vaddps(Acc(r, g), Acc(r, g), Mem.At(b, 64 * g), mask);
                a.VmovupsStore(at, Acc(r, g), mask);
            }

        tile.AdvanceTile(args, aTile, cTile, OffATileStep, OffCTileStep);
        tile.CloseTileLoop(args, OffMTiles, tileLoop);
        a.Pop(prefetch);
        a.Vzeroupper();
        a.Ret();
        return a.ToArray();
    }
}
