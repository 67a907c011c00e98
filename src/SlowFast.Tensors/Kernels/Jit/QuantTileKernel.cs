using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// What one call of a <see cref="QuantTileKernel"/> computes: for each of <see cref="MTiles"/> tiles of
/// MR input rows, C[MR, up to 32 columns] (=, or continued from C) Σ over <see cref="KBlocks"/> 32-element
/// blocks of float(integer dot product) · (d_x · d_w). The kernel reads every field and counts
/// <see cref="MTiles"/> down to zero.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct QuantTileArgs
{
    /// <summary>
    /// Row 0 of the first tile: per block a <see cref="QuantTileKernel.InputBlockBytes"/>-byte record of 32
    /// signed bytes, the int32 correction −offset·Σq and the float32 scale d_x.
    /// </summary>
    public byte* A;
    /// <summary>Bytes from one input row to the next.</summary>
    public long AStride;
    /// <summary>
    /// The tile's first column in a packed strip: per block 8 quads × 64 columns × 4 unsigned bytes
    /// (2,048 bytes), of which the tile reads its 32 columns' 128 bytes per quad.
    /// </summary>
    public byte* B;
    /// <summary>The tile's first column's scale in the strip's scales: per block 64 float32 (256 bytes).</summary>
    public float* S;
    /// <summary>Row 0 of the first tile's output.</summary>
    public float* C;
    /// <summary>Bytes from one C row to the next.</summary>
    public long CStride;
    /// <summary>Blocks of 32 elements to run.</summary>
    public long KBlocks;
    /// <summary>Tiles of MR rows to run (the kernel decrements it).</summary>
    public long MTiles;
    /// <summary>MR · AStride.</summary>
    public long ATileStep;
    /// <summary>MR · CStride.</summary>
    public long CTileStep;
    /// <summary>Lane mask for the last 16-column group (bit i = column i present).</summary>
    public long LastMask;
}

/// <summary>
/// A register-blocked microkernel for products of many input rows with block-quantized weights, in
/// integer arithmetic: AVX512-VNNI <c>vpdpbusd</c> multiplies 64 unsigned weight bytes by a broadcast
/// quad of signed input bytes and adds each lane's four products into an int32 — 64 multiply-adds an
/// instruction, twice vdpbf16ps's 32.
/// </summary>
/// <remarks>
/// <para>A tile is MR ≤ 6 rows × 32 columns (half a packed strip: more rows than columns, since each
/// block's weights stream from L2 once per tile while the input quads are 4-byte broadcasts). Per 32-element block each (row, 16-column group) has an
/// int32 accumulator that starts at the row's correction (−offset·Σq_x, offset 128 for Q8_0 and 8 for
/// Q4_0, whose weights the panel holds as w + offset ≥ 0), takes 8 vpdpbusd (one per quad of elements)
/// and so holds the block's exact signed dot product; then the float32 accumulator
/// acc = fma(float(dot), d_x · d_w, acc). Blocks run in order, so the float sums are the same
/// sequence whatever the blocking, and a call that continues a product (addToC) starts from C.</para>
/// <para>Registers: 12 int32 accumulators (zmm0–11), 12 float32 accumulators (zmm12–23), a quad's two
/// weight vectors (zmm24, 25, reused for the scale products), two input broadcasts (zmm26, 27).</para>
/// </remarks>
internal static unsafe class QuantTileKernel
{
    /// <summary>Rows per full tile.</summary>
    public const int MaxRows = 6;
    /// <summary>Columns per tile: two 16-column groups.</summary>
    public const int Columns = 32;
    /// <summary>Columns of a packed strip (two tiles wide).</summary>
    public const int StripColumns = 64;
    /// <summary>Bytes of one input row's block record: 32 int8, int32 correction, float32 scale.</summary>
    public const int InputBlockBytes = 40;
    /// <summary>Packed weight bytes per block of a strip: 8 quads × 64 columns × 4 bytes.</summary>
    public const int WeightBlockBytes = 8 * StripColumns * 4;
    /// <summary>Packed scale bytes per block of a strip: 64 float32.</summary>
    public const int ScaleBlockBytes = StripColumns * 4;
    private const int ColumnGroups = Columns / 16;

    private static readonly ConcurrentDictionary<int, nint> _cache = new();

    /// <summary>Where the integer row kernel runs (AVX512-BW and VNNI, generated code allowed).</summary>
    public static bool IsSupported => QuantRowsKernel.IsSupported;

    public static delegate* unmanaged<QuantTileArgs*, void> Get(int rows, int groups, bool masked, bool addToC)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-VNNI");
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows));
        if (groups is < 1 or > ColumnGroups) throw new ArgumentOutOfRangeException(nameof(groups));
        int key = rows | groups << 4 | (masked ? 1 << 8 : 0) | (addToC ? 1 << 9 : 0);
        nint code = _cache.GetOrAdd(key, static k => (nint)ExecutableMemory.Install(Generate(k & 15, k >> 4 & 15, (k & 1 << 8) != 0, (k & 1 << 9) != 0)));
        return (delegate* unmanaged<QuantTileArgs*, void>)code;
    }

    // Argument offsets in QuantTileArgs (a test checks them against the struct's layout).
    private const int OffA = 0, OffAStride = 8, OffB = 16, OffS = 24, OffC = 32, OffCStride = 40, OffKBlocks = 48,
        OffMTiles = 56, OffATileStep = 64, OffCTileStep = 72, OffLastMask = 80;

    internal static IReadOnlyDictionary<string, int> ArgumentOffsets { get; } = new Dictionary<string, int>
    {
        [nameof(QuantTileArgs.A)] = OffA, [nameof(QuantTileArgs.AStride)] = OffAStride, [nameof(QuantTileArgs.B)] = OffB,
        [nameof(QuantTileArgs.S)] = OffS, [nameof(QuantTileArgs.C)] = OffC, [nameof(QuantTileArgs.CStride)] = OffCStride,
        [nameof(QuantTileArgs.KBlocks)] = OffKBlocks, [nameof(QuantTileArgs.MTiles)] = OffMTiles,
        [nameof(QuantTileArgs.ATileStep)] = OffATileStep, [nameof(QuantTileArgs.CTileStep)] = OffCTileStep,
        [nameof(QuantTileArgs.LastMask)] = OffLastMask,
    };

    /// <summary>Machine code of one variant (System V calling convention: args pointer in rdi).</summary>
    public static byte[] Generate(int rows, int groups, bool masked, bool addToC)
    {
        var a = new X86Assembler();
        var tile = new TileCode(a, rows);
        Gpr args = Gpr.Rdi, aStride = Gpr.Rsi, cStride = Gpr.R8, aTile = Gpr.R9, cTile = Gpr.R11,
            weights = Gpr.Rdx, scales = Gpr.Rbx, count = Gpr.Rcx;
        int Dot(int r, int g) => r * ColumnGroups + g;              // zmm0..11
        int Acc(int r, int g) => 12 + r * ColumnGroups + g;         // zmm12..23
        int W(int g) => 24 + g;                                     // zmm24, 25
        int Broadcast(int r) => 26 + (r & 1);                       // zmm26, 27

        a.Push(Gpr.Rbx);
        if (masked) tile.LoadLastMask(args, OffLastMask);
        a.Load(aStride, Mem.At(args, OffAStride));
        a.Load(cStride, Mem.At(args, OffCStride));
        a.Load(aTile, Mem.At(args, OffA));
        a.Load(cTile, Mem.At(args, OffC));

        int tileLoop = a.NewLabel(), blockLoop = a.NewLabel();
        a.Place(tileLoop);
        if (addToC) tile.SetRowPointers(cTile, cStride);
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
            {
                int mask = masked && g == groups - 1 ? 1 : 0;
                if (!addToC) a.Vpxord(Acc(r, g), Acc(r, g), Acc(r, g));
                else if (mask != 0) a.VmovupsLoadZeroMasked(Acc(r, g), TileCode.Row(r, cStride, 64 * g), mask);
                else a.VmovupsLoad(Acc(r, g), TileCode.Row(r, cStride, 64 * g));
            }
        tile.SetRowPointers(aTile, aStride);
        a.Load(weights, Mem.At(args, OffB));
        a.Load(scales, Mem.At(args, OffS));
        a.Load(count, Mem.At(args, OffKBlocks));

        a.Place(blockLoop);
        for (int r = 0; r < rows; r++)
        {
            a.Vpbroadcastd(Dot(r, 0), TileCode.Row(r, aStride, 32));           // the row's correction
            for (int g = 1; g < groups; g++) a.Vmovaps(Dot(r, g), Dot(r, 0));
        }
        for (int q = 0; q < 8; q++)
        {
            for (int g = 0; g < groups; g++) a.VmovupsLoad(W(g), Mem.At(weights, 4 * StripColumns * q + 64 * g));
            for (int r = 0; r < rows; r++)
            {
                a.Vpbroadcastd(Broadcast(r), TileCode.Row(r, aStride, 4 * q));
                for (int g = 0; g < groups; g++) a.Vpdpbusd(Dot(r, g), W(g), Broadcast(r));
            }
        }
        for (int r = 0; r < rows; r++)
        {
            a.Vpbroadcastd(Broadcast(r), TileCode.Row(r, aStride, 36));         // d_x
            for (int g = 0; g < groups; g++)
            {
                a.Vcvtdq2ps(Dot(r, g), Dot(r, g));
                a.Vmulps(W(g), Broadcast(r), Mem.At(scales, 64 * g));
                a.Vfmadd231ps(Acc(r, g), Dot(r, g), W(g));
            }
        }
        tile.AdvanceRows(InputBlockBytes);
        a.Add(weights, WeightBlockBytes);
        a.Add(scales, ScaleBlockBytes);
        a.Dec(count);
        a.Jnz(blockLoop);

        tile.SetRowPointers(cTile, cStride);
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
                a.VmovupsStore(TileCode.Row(r, cStride, 64 * g), Acc(r, g), masked && g == groups - 1 ? 1 : 0);

        tile.AdvanceTile(args, aTile, cTile, OffATileStep, OffCTileStep);
        tile.CloseTileLoop(args, OffMTiles, tileLoop);
        a.Pop(Gpr.Rbx);
        a.Vzeroupper();
        a.Ret();
        return a.ToArray();
    }
}
