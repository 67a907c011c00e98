namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// What the register-blocked tile kernels (<see cref="Bf16TileKernel"/>, <see cref="Int8TileKernel"/>,
/// <see cref="QuantTileKernel"/>) emit alike: up to six rows addressed in two groups of three from one
/// pointer each ([p], [p + s], [p + 2s], in rax and r10), the last column group's lane mask in k1, and
/// the step from one tile to the next. Each kernel keeps its own arguments, registers and arithmetic.
/// </summary>
internal sealed class TileCode(X86Assembler a, int rows)
{
    private static readonly Gpr[] RowGroups = [Gpr.Rax, Gpr.R10];   // rows 0–2, 3–5

    /// <summary>The zmm register that <see cref="DotLoops"/> accumulates row <paramref name="row"/>, 16-column group <paramref name="group"/> in (zmm0–23).</summary>
    public static int Accumulator(int row, int group) => row * 4 + group;

    /// <summary>Row <paramref name="row"/> of the tile at byte <paramref name="disp"/>, rows <paramref name="stride"/> bytes apart.</summary>
    public static Mem Row(int row, Gpr stride, int disp) =>
        row % 3 == 0 ? Mem.At(RowGroups[row / 3], disp) : Mem.At(RowGroups[row / 3], stride, row % 3, disp);

    /// <summary>Points the row groups at the tile's rows from <paramref name="from"/> (rows 0 and 3).</summary>
    public void SetRowPointers(Gpr from, Gpr stride)
    {
        a.Mov(RowGroups[0], from);
        if (rows > 3) { a.Lea(RowGroups[1], Mem.At(from, stride, 2)); a.Add(RowGroups[1], stride); }
    }

    /// <summary>Moves every row <paramref name="bytes"/> on.</summary>
    public void AdvanceRows(int bytes)
    {
        a.Add(RowGroups[0], bytes);
        if (rows > 3) a.Add(RowGroups[1], bytes);
    }

    /// <summary>k1 = the lane mask of the last stored column group, from the arguments (clobbers rax, free until the rows are set).</summary>
    public void LoadLastMask(Gpr args, int offLastMask)
    {
        a.Load(Gpr.Rax, Mem.At(args, offLastMask));
        a.KmovwFromGpr(1, Gpr.Rax);
    }

    /// <summary>
    /// The products over k, the same for every kernel whose tile is six rows × four 16-column groups with a
    /// 32-bit element of A broadcast against four weight vectors: accumulators zmm0–23 (row·4 + group),
    /// weights zmm24–27, broadcasts zmm28/29. A step reads 4 bytes of each row and 256 bytes of weights at
    /// <paramref name="b"/>, and <paramref name="multiplyAdd"/>(accumulator, weights, broadcast) is the
    /// kernel's instruction (see <see cref="Loops"/> for the rest of the arguments).
    /// </summary>
    public void DotLoops(Gpr args, int offKMain, int offKRem, Gpr b, Gpr count, Gpr aStride, int groups, int unroll,
        Action<int, int, int> multiplyAdd, Action? eachTrip = null)
    {
        const int columnGroups = 4, maxRows = 6;
        int W(int g) => maxRows * columnGroups + g;                                 // zmm24..27
        int Broadcast(int row) => maxRows * columnGroups + columnGroups + (row & 1);   // zmm28, 29
        Loops(args, offKMain, offKRem, b, count, unroll, rowBytesPerStep: 4, eachTrip, step: u =>
        {
            for (int g = 0; g < groups; g++) a.VmovupsLoad(W(g), Mem.At(b, 64 * (columnGroups * u + g)));
            for (int r = 0; r < rows; r++)
            {
                a.Vpbroadcastd(Broadcast(r), Row(r, aStride, 4 * u));
                for (int g = 0; g < groups; g++) multiplyAdd(Accumulator(r, g), W(g), Broadcast(r));
            }
        });
    }

    /// <summary>
    /// The loops over k around a kernel's step: the main loop runs <paramref name="unroll"/> steps a trip
    /// (the arguments' KMain trips, <paramref name="eachTrip"/> first), the tail loop one a trip (KRem).
    /// <paramref name="step"/>(u) emits step u of a trip; each step reads <paramref name="rowBytesPerStep"/>
    /// bytes of every row and 256 bytes of weights at <paramref name="b"/>.
    /// </summary>
    public void Loops(Gpr args, int offKMain, int offKRem, Gpr b, Gpr count, int unroll, int rowBytesPerStep, Action? eachTrip, Action<int> step)
    {
        void Advance(int steps)
        {
            AdvanceRows(rowBytesPerStep * steps);
            a.Add(b, 256 * steps);
        }

        int mainLoop = a.NewLabel(), tail = a.NewLabel(), tailLoop = a.NewLabel(), done = a.NewLabel();
        a.Load(count, Mem.At(args, offKMain));
        a.Test(count);
        a.Jz(tail);
        a.Place(mainLoop);
        eachTrip?.Invoke();
        for (int u = 0; u < unroll; u++) step(u);
        Advance(unroll);
        a.Dec(count);
        a.Jnz(mainLoop);

        a.Place(tail);
        a.Load(count, Mem.At(args, offKRem));
        a.Test(count);
        a.Jz(done);
        a.Place(tailLoop);
        step(0);
        Advance(1);
        a.Dec(count);
        a.Jnz(tailLoop);
        a.Place(done);
    }

    /// <summary>Moves A and C on by a tile (their tile steps from the arguments).</summary>
    public void AdvanceTile(Gpr args, Gpr aTile, Gpr cTile, int offATileStep, int offCTileStep)
    {
        a.Add(aTile, Mem.At(args, offATileStep));
        a.Add(cTile, Mem.At(args, offCTileStep));
    }

    /// <summary>Counts the arguments' tiles down and goes back to <paramref name="tileLoop"/> while any are left.</summary>
    public void CloseTileLoop(Gpr args, int offMTiles, int tileLoop)
    {
        a.Dec(Mem.At(args, offMTiles));
        a.Jnz(tileLoop);
    }
}
