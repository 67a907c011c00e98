using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// What one call of a <see cref="Bf16RowsKernel"/> computes: for each of <see cref="Groups"/> groups
/// of NW consecutive weight rows, the R×NW dot products of R bfloat16 input rows with those weight
/// rows, each left as 16 float32 partial sums (one zmm) in <see cref="Out"/>. The kernel advances
/// <see cref="W"/> and <see cref="Out"/> and counts <see cref="Groups"/> down to zero.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Bf16RowsArgs
{
    /// <summary>
    /// The R input rows interleaved by 32-element step: step s of row r at X + (s·R + r)·64 bytes, for
    /// every step that holds an element of K (the last one zero past K).
    /// </summary>
    public ushort* X;
    /// <summary>Row 0 of the current weight group, plus <c>-KNeg</c> bytes (the start of the last, partial step).</summary>
    public byte* W;
    /// <summary>Bytes from one weight row to the next (K·2).</summary>
    public long WStride;
    /// <summary>Minus the bytes of the whole 32-element steps of a row (−64·⌊K/32⌋).</summary>
    public long KNeg;
    /// <summary>Elements of the last, partial step as a 32-bit element mask (bit i = element i present); unused when K % 32 = 0.</summary>
    public long TailMask;
    /// <summary>Partial sums: per group, accumulator r·NW + j (input row r, weight row j) as 16 floats.</summary>
    public float* Out;
    /// <summary>Weight groups to run (the kernel decrements it).</summary>
    public long Groups;
    /// <summary>Bytes from one weight group to the next (NW·WStride).</summary>
    public long GroupStep;
}

/// <summary>
/// A bandwidth-bound kernel for few input rows in bfloat16 arithmetic that reads the BF16 weights in
/// their stored [N, K] layout: each weight byte comes from memory once, into a register, and meets
/// every input row there through <c>vdpbf16ps</c> (generated at run time, as .NET 10 has no intrinsic).
/// </summary>
/// <remarks>
/// <para>A group is R input rows (1..<see cref="MaxRows"/>) × NW weight rows (1..<see cref="MaxWeightRows"/>):
/// R·NW zmm accumulators, NW zmm of weights and two of inputs, so R·NW + NW + 2 ≤ 32. Per 32-element
/// step it loads NW weight vectors (each from its own row, sequential streams) and R input vectors
/// (interleaved so one pointer walks them; they stay in L1/L2), then does R·NW vdpbf16ps. A row's
/// last K % 32 elements are a zero-masked load of the weights (elements past K are never read) against
/// inputs zero-padded past K. Horizontal sums are left to the caller.</para>
/// </remarks>
internal static unsafe class Bf16RowsKernel
{
    public const int MaxRows = 8;
    public const int MaxWeightRows = 6;

    private static readonly ConcurrentDictionary<int, nint> _cache = new();

    /// <summary>
    /// True when <see cref="Bf16TileKernel.IsSupported"/> and a generated kernel, run once on known
    /// operands, returns their exact dot product; otherwise callers keep their other paths.
    /// </summary>
    public static bool IsSupported { get; } = Bf16TileKernel.IsSupported && Probe();

    private static bool Probe()
    {
        try
        {
            // One row of K = 40 (a whole step and a masked tail) against two weight rows.
            const int k = 40;
            var x = new ushort[2 * 32 + 32];
            var w = new ushort[2 * k];
            for (int i = 0; i < k; i++)
            {
                x[i] = DTypes.FloatToBF16(i + 1);
                w[i] = DTypes.FloatToBF16(1f);
                w[k + i] = DTypes.FloatToBF16(i % 2 == 0 ? 2f : -1f);
            }
            var sums = new float[2 * 16];
            fixed (ushort* xp = x, wp = w)
            fixed (float* sp = sums)
            {
                var args = new Bf16RowsArgs
                {
                    X = xp, W = (byte*)wp + 64, WStride = 2 * k, KNeg = -64, TailMask = (1L << (k % 32)) - 1,
                    Out = sp, Groups = 1, GroupStep = 4 * k,
                };
                Get(1, 2, tail: true)(&args);
            }
            float s0 = 0, s1 = 0;
            for (int i = 0; i < 16; i++) { s0 += sums[i]; s1 += sums[16 + i]; }
            // Σ (i+1) = 820; Σ over odd i+1 of 2(i+1) minus Σ over even i+1 of (i+1) = 2·400 − 420 = 380.
            return s0 == 820f && s1 == 380f;
        }
        catch (Exception e) when (e is InvalidOperationException or OutOfMemoryException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>The kernel for <paramref name="rows"/> input rows × <paramref name="weightRows"/> weight rows; <paramref name="tail"/>: K % 32 ≠ 0.</summary>
    public static delegate* unmanaged<Bf16RowsArgs*, void> Get(int rows, int weightRows, bool tail)
    {
        if (!Bf16TileKernel.IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-BF16");
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows));
        if (weightRows is < 1 or > MaxWeightRows || rows * weightRows + weightRows + 2 > 32) throw new ArgumentOutOfRangeException(nameof(weightRows));
        int key = rows | weightRows << 4 | (tail ? 1 << 8 : 0);
        nint code = _cache.GetOrAdd(key, static k => (nint)ExecutableMemory.Install(Generate(k & 15, k >> 4 & 15, (k & 1 << 8) != 0)));
        return (delegate* unmanaged<Bf16RowsArgs*, void>)code;
    }

    /// <summary>Most weight rows per group for <paramref name="rows"/> input rows (register budget).</summary>
    public static int WeightRowsFor(int rows) => Math.Min(MaxWeightRows, 30 / (rows + 1));

    // Argument offsets in Bf16RowsArgs (a test checks them against the struct's layout).
    private const int OffX = 0, OffW = 8, OffWStride = 16, OffKNeg = 24, OffTailMask = 32, OffOut = 40, OffGroups = 48, OffGroupStep = 56;

    internal static IReadOnlyDictionary<string, int> ArgumentOffsets { get; } = new Dictionary<string, int>
    {
        [nameof(Bf16RowsArgs.X)] = OffX, [nameof(Bf16RowsArgs.W)] = OffW, [nameof(Bf16RowsArgs.WStride)] = OffWStride,
        [nameof(Bf16RowsArgs.KNeg)] = OffKNeg, [nameof(Bf16RowsArgs.TailMask)] = OffTailMask, [nameof(Bf16RowsArgs.Out)] = OffOut,
        [nameof(Bf16RowsArgs.Groups)] = OffGroups, [nameof(Bf16RowsArgs.GroupStep)] = OffGroupStep,
    };

    /// <summary>Machine code of one variant (System V: args pointer in rdi; only caller-saved registers).</summary>
    public static byte[] Generate(int rows, int weightRows, bool tail)
    {
        var a = new X86Assembler();
        Gpr args = Gpr.Rdi, kOff = Gpr.Rsi, xp = Gpr.Rdx;
        // Weight row pointers; r8 holds the stride until the last one is computed.
        Gpr[] wRow = [Gpr.Rax, Gpr.Rcx, Gpr.R9, Gpr.R10, Gpr.R11, Gpr.R8];
        int nw = weightRows;
        int Acc(int r, int j) => r * nw + j;
        int WReg(int j) => rows * nw + j;
        int XReg(int r) => rows * nw + nw + (r & 1);

        if (tail)
        {
            a.Load(Gpr.Rax, Mem.At(args, OffTailMask));
            a.KmovdFromGpr(1, Gpr.Rax);
        }
        int groupLoop = a.NewLabel(), mainLoop = a.NewLabel(), tailPart = a.NewLabel();
        a.Place(groupLoop);
        for (int i = 0; i < rows * nw; i++) a.Vpxord(i, i, i);
        a.Load(wRow[0], Mem.At(args, OffW));
        a.Load(Gpr.R8, Mem.At(args, OffWStride));
        if (nw > 1) a.Lea(wRow[1], Mem.At(wRow[0], Gpr.R8, 1));
        if (nw > 2) a.Lea(wRow[2], Mem.At(wRow[0], Gpr.R8, 2));
        if (nw > 3) a.Lea(wRow[3], Mem.At(wRow[2], Gpr.R8, 1));
        if (nw > 4) a.Lea(wRow[4], Mem.At(wRow[2], Gpr.R8, 2));
        if (nw > 5) a.Lea(wRow[5], Mem.At(wRow[3], Gpr.R8, 2));
        a.Load(xp, Mem.At(args, OffX));
        a.Load(kOff, Mem.At(args, OffKNeg));
        a.Test(kOff);
        a.Jz(tailPart);

        void Products()
        {
            for (int r = 0; r < rows; r++)
            {
                a.VmovupsLoad(XReg(r), Mem.At(xp, 64 * r));
                for (int j = 0; j < nw; j++) a.Vdpbf16ps(Acc(r, j), XReg(r), WReg(j));
            }
        }

        a.Place(mainLoop);
        for (int j = 0; j < nw; j++) a.VmovupsLoad(WReg(j), Mem.At(wRow[j], kOff, 1));
        Products();
        a.Add(xp, 64 * rows);
        a.Add(kOff, 64);           // counts up to zero: the flags for the jump
        a.Jnz(mainLoop);

        a.Place(tailPart);
        if (tail)
        {
            // kOff is zero here: the row pointers sit at the partial step.
            for (int j = 0; j < nw; j++) a.Vmovdqu16LoadZeroMasked(WReg(j), Mem.At(wRow[j]), 1);
            Products();
        }

        a.Load(Gpr.Rsi, Mem.At(args, OffOut));
        for (int i = 0; i < rows * nw; i++) a.VmovupsStore(Mem.At(Gpr.Rsi, 64 * i), i);
        a.Add(Gpr.Rsi, 64 * rows * nw);
        a.Store(Mem.At(args, OffOut), Gpr.Rsi);
        a.Load(Gpr.Rax, Mem.At(args, OffW));
        a.Add(Gpr.Rax, Mem.At(args, OffGroupStep));
        a.Store(Mem.At(args, OffW), Gpr.Rax);
        a.Dec(Mem.At(args, OffGroups));
        a.Jnz(groupLoop);
        a.Vzeroupper();
        a.Ret();
        return a.ToArray();
    }
}
