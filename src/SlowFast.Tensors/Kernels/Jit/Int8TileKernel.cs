using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// What one call of an <see cref="Int8TileKernel"/> computes: for each of <see cref="MTiles"/> tiles of
/// MR rows, C[MR, up to 64 columns] = float(Σ_k q_x·q_w) · (d_x · s_w), the integer sum over all K in
/// one int32 accumulator (no per-block scales: one scale per input row, one per weight column).
/// The kernel reads every field and counts <see cref="MTiles"/> down to zero.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Int8TileArgs
{
    /// <summary>Row 0 of the first tile: signed bytes, consecutive k in consecutive bytes, zero past K.</summary>
    public sbyte* A;
    /// <summary>Bytes from one A row to the next (a multiple of 4).</summary>
    public long AStride;
    /// <summary>The strip: for each quad of k, the 64 columns' four weights as unsigned bytes q_w + 128 (256 bytes).</summary>
    public byte* B;
    /// <summary>The strip's 64 column scales s_w.</summary>
    public float* S;
    /// <summary>Row 0 of the first tile's output.</summary>
    public float* C;
    /// <summary>Bytes from one C row to the next.</summary>
    public long CStride;
    /// <summary>Quads of k (K rounded up to a multiple of 4, over 4) / <see cref="Int8TileKernel.Unroll"/> (main loop trips).</summary>
    public long KMain;
    /// <summary>Quads of k % <see cref="Int8TileKernel.Unroll"/> (tail loop trips).</summary>
    public long KRem;
    /// <summary>Tiles of MR rows to run (the kernel decrements it).</summary>
    public long MTiles;
    /// <summary>MR · AStride.</summary>
    public long ATileStep;
    /// <summary>MR · CStride.</summary>
    public long CTileStep;
    /// <summary>Lane mask for the last stored 16-column group (bit i = column i present).</summary>
    public long LastMask;
    /// <summary>The first tile's rows' scales d_x (one float each; advanced by MR per tile).</summary>
    public float* RowScale;
    /// <summary>The first tile's rows' corrections −128·Σ_k q_x (one int32 each; advanced by MR per tile).</summary>
    public int* RowCorrection;
}

/// <summary>
/// A register-blocked microkernel for int8 products with one scale per input row and one per weight
/// column, around AVX512-VNNI <c>vpdpbusd</c>: 64 unsigned-by-signed byte multiply-adds into 16 int32
/// lanes an instruction, twice the multiply-adds of <c>vdpbf16ps</c> at the same instruction rate.
/// </summary>
/// <remarks>
/// <para>The weights are held as q_w + 128 (unsigned), so each int32 accumulator starts at the row's
/// correction −128·Σ_k q_x and then holds the exact Σ_k q_x·q_w after the last quad. vpdpbusd wraps
/// (it does not saturate), so a partial sum may overflow on the way: only the final |Σ| ≤ 127²·K must
/// fit in int32, K up to <see cref="MaxK"/>.</para>
/// <para>A tile is MR ≤ 6 rows × 64 columns: 24 int32 accumulators (zmm0–23), a quad's four weight
/// vectors (zmm24–27), two input broadcasts (zmm28, 29), and zmm30, 31 for the scales at the store.
/// The same shape as <see cref="Bf16TileKernel"/>, one quad of k where that kernel takes a pair.</para>
/// </remarks>
internal static unsafe class Int8TileKernel
{
    /// <summary>Rows per full tile.</summary>
    public const int MaxRows = 6;
    /// <summary>Columns per tile and per packed strip: four zmm registers of 16 lanes.</summary>
    public const int Columns = 64;
    /// <summary>Quads of k per main-loop trip.</summary>
    public const int Unroll = 4;
    /// <summary>Longest K whose sums stay exact in int32: 127² · K &lt; 2³¹.</summary>
    public const int MaxK = int.MaxValue / (127 * 127);
    private const int ColumnGroups = Columns / 16;

    private static readonly ConcurrentDictionary<int, nint> _cache = new();

    /// <summary>Where the kernel runs: AVX512-VNNI and generated code allowed (see <see cref="QuantRowsKernel.IsSupported"/>).</summary>
    public static bool IsSupported => QuantRowsKernel.IsSupported;

    public static delegate* unmanaged<Int8TileArgs*, void> Get(int rows, int groups, bool masked)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-VNNI");
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows));
        if (groups is < 1 or > ColumnGroups) throw new ArgumentOutOfRangeException(nameof(groups));
        int key = rows | groups << 4 | (masked ? 1 << 8 : 0);
        nint code = _cache.GetOrAdd(key, static k => (nint)ExecutableMemory.Install(Generate(k & 15, k >> 4 & 15, (k & 1 << 8) != 0)));
        return (delegate* unmanaged<Int8TileArgs*, void>)code;
    }

    // Argument offsets in Int8TileArgs (a test checks them against the struct's layout).
    private const int OffA = 0, OffAStride = 8, OffB = 16, OffS = 24, OffC = 32, OffCStride = 40, OffKMain = 48, OffKRem = 56,
        OffMTiles = 64, OffATileStep = 72, OffCTileStep = 80, OffLastMask = 88, OffRowScale = 96, OffRowCorrection = 104;

    internal static IReadOnlyDictionary<string, int> ArgumentOffsets { get; } = new Dictionary<string, int>
    {
        [nameof(Int8TileArgs.A)] = OffA, [nameof(Int8TileArgs.AStride)] = OffAStride, [nameof(Int8TileArgs.B)] = OffB,
        [nameof(Int8TileArgs.S)] = OffS, [nameof(Int8TileArgs.C)] = OffC, [nameof(Int8TileArgs.CStride)] = OffCStride,
        [nameof(Int8TileArgs.KMain)] = OffKMain, [nameof(Int8TileArgs.KRem)] = OffKRem, [nameof(Int8TileArgs.MTiles)] = OffMTiles,
        [nameof(Int8TileArgs.ATileStep)] = OffATileStep, [nameof(Int8TileArgs.CTileStep)] = OffCTileStep,
        [nameof(Int8TileArgs.LastMask)] = OffLastMask, [nameof(Int8TileArgs.RowScale)] = OffRowScale,
        [nameof(Int8TileArgs.RowCorrection)] = OffRowCorrection,
    };

    /// <summary>Machine code of one variant (System V calling convention: args pointer in rdi).</summary>
    public static byte[] Generate(int rows, int groups, bool masked)
    {
        var a = new X86Assembler();
        var tile = new TileCode(a, rows);
        Gpr args = Gpr.Rdi, aStride = Gpr.Rsi, cStride = Gpr.R8, aTile = Gpr.R9, cTile = Gpr.R11, b = Gpr.Rdx, count = Gpr.Rcx;
        Gpr rowScale = Gpr.Rbx, rowCorrection = Gpr.R12;   // callee-saved: pushed and popped
        static int Acc(int row, int g) => TileCode.Accumulator(row, g);
        const int scaleReg = 30, productReg = 31;

        if (masked) tile.LoadLastMask(args, OffLastMask);
        a.Push(rowScale);
        a.Push(rowCorrection);
        a.Load(aStride, Mem.At(args, OffAStride));
        a.Load(cStride, Mem.At(args, OffCStride));
        a.Load(aTile, Mem.At(args, OffA));
        a.Load(cTile, Mem.At(args, OffC));
        a.Load(rowScale, Mem.At(args, OffRowScale));
        a.Load(rowCorrection, Mem.At(args, OffRowCorrection));

        int tileLoop = a.NewLabel();
        a.Place(tileLoop);
        for (int r = 0; r < rows; r++)
        {
            a.Vpbroadcastd(Acc(r, 0), Mem.At(rowCorrection, 4 * r));   // every column of the row starts at its correction
            for (int g = 1; g < groups; g++) a.Vmovaps(Acc(r, g), Acc(r, 0));
        }
        tile.SetRowPointers(aTile, aStride);
        a.Load(b, Mem.At(args, OffB));
        tile.DotLoops(args, OffKMain, OffKRem, b, count, aStride, groups, Unroll, a.Vpdpbusd);

        // C = float(sum) · (d_x · s_w): the row's scale broadcast, times each group's column scales.
        tile.SetRowPointers(cTile, cStride);
        a.Load(b, Mem.At(args, OffS));
        for (int r = 0; r < rows; r++)
        {
            a.Vpbroadcastd(scaleReg, Mem.At(rowScale, 4 * r));
            for (int g = 0; g < groups; g++)
            {
                int mask = masked && g == groups - 1 ? 1 : 0;
                a.Vcvtdq2ps(Acc(r, g), Acc(r, g));
                a.Vmulps(productReg, scaleReg, Mem.At(b, 64 * g));
                a.Vmulps(Acc(r, g), Acc(r, g), productReg);
                a.VmovupsStore(TileCode.Row(r, cStride, 64 * g), Acc(r, g), mask);
            }
        }

        tile.AdvanceTile(args, aTile, cTile, OffATileStep, OffCTileStep);
        a.Add(rowScale, 4 * rows);
        a.Add(rowCorrection, 4 * rows);
        tile.CloseTileLoop(args, OffMTiles, tileLoop);
        a.Pop(rowCorrection);
        a.Pop(rowScale);
        a.Vzeroupper();
        a.Ret();
        return a.ToArray();
    }
}
