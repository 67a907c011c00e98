using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// What one call of a <see cref="QuantRowsKernel"/> computes: for each of <see cref="Groups"/> groups of
/// NW consecutive quantized weight rows, the R×NW dot products of R quantized input rows with them,
/// each left as 16 float32 partial sums (one zmm) in <see cref="Out"/>. The kernel advances
/// <see cref="W"/>, <see cref="S"/> and <see cref="Out"/> and counts <see cref="Groups"/> down to zero.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct QuantRowsArgs
{
    /// <summary>
    /// The R input rows by step (<see cref="QuantRowsKernel.StepElements"/> elements): step s of row r at
    /// X + (s·R + r)·<see cref="QuantRowsKernel.InputStepBytes"/>, as one (Q8_0) or two (Q4_0) 64-byte
    /// vectors of signed bytes in the weights' lane order, 16 int32 corrections and 16 float32 scales, one per lane.
    /// </summary>
    public byte* X;
    /// <summary>Row 0 of the current weight group's integers, plus <c>-KNeg</c> bytes (its end).</summary>
    public byte* W;
    /// <summary>Bytes from one weight row's integers to the next.</summary>
    public long WStride;
    /// <summary>Minus the integer bytes of a weight row.</summary>
    public long KNeg;
    /// <summary>Row 0 of the current group's float16 scales, plus <c>-SNeg</c> bytes (its end).</summary>
    public byte* S;
    /// <summary>Bytes from one weight row's scales to the next.</summary>
    public long SStride;
    /// <summary>Minus the scale bytes of a weight row (<see cref="QuantRowsKernel.ScaleStepBytes"/> a step).</summary>
    public long SNeg;
    /// <summary>Partial sums: per group, accumulator r·NW + j (input row r, weight row j) as 16 floats.</summary>
    public float* Out;
    /// <summary>Weight groups to run (the kernel decrements it).</summary>
    public long Groups;
    /// <summary>Bytes from one group's integers to the next (NW·WStride).</summary>
    public long GroupStepW;
    /// <summary>Bytes from one group's scales to the next (NW·SStride).</summary>
    public long GroupStepS;
    /// <summary>Two 64-byte constants: the byte mask, the scale lane indexes.</summary>
    public byte* Consts;
    /// <summary>
    /// Bytes from the start of the current group's integers to those prefetched while it runs (a whole
    /// number of groups ahead: the rows that follow in memory).
    /// </summary>
    public long Ahead;
}

/// <summary>What a <see cref="QuantRowsKernel"/> prefetches ahead of the weight lines it reads.</summary>
internal enum QuantPrefetch
{
    /// <summary>Nothing: the hardware prefetchers alone.</summary>
    None,
    /// <summary>Each weight row's next kilobyte, into L1.</summary>
    Row,
    /// <summary>Each row's next kilobyte into L1, and the weight groups ahead into L2.</summary>
    RowAndGroups,
}

/// <summary>
/// Products of few input rows with block-quantized weights (<see cref="BlockFormat"/>) read as stored,
/// in integer arithmetic: AVX512-VNNI <c>vpdpbusd</c> multiplies the weights' unsigned bytes with the
/// inputs' signed bytes, four products a lane, as llama.cpp does (generated at run time like
/// <see cref="Bf16RowsKernel"/>).
/// </summary>
/// <remarks>
/// <para>A step is 64 bytes of one weight row's integers: 64 elements (two blocks) of Q8_0, 128 (four
/// blocks) of Q4_0. Q8_0 flips the bytes' sign bits (w + 128 as unsigned). Q4_0 masks the low nibbles
/// into one register and shifts and masks the high nibbles into another; since a Q4_0 byte holds
/// elements j and j + 16 of its block, int32 lane l of both registers belongs to block l / 4, so both
/// products add into the same lanes and one lane-scale vector serves 128 elements. The step's float16
/// scales become 16 lane scales (broadcast, convert, permute to each lane's block).</para>
/// <para>Per input row r: the int32 lanes start at the row's correction (−offset · the input integers of
/// the lane, offset 128 or 8, so that the unsigned weights count as signed), vpdpbusd adds the
/// products, and acc[r, j] += float(lane) · weight scale · input scale. Every lane holds integer sums
/// of one block exactly; the scales and the sum over lanes are float32. With one input row (decoding) and
/// scale groups, each weight row's scales of a group are converted and multiplied by the input's block
/// scales once (16 blocks at a time), and each step adds float(lane) · (d_w · d_x) with one
/// <c>vfmadd231ps</c>: per weight line 6 instructions (Q8_0) or 9 (Q4_0).</para>
/// <para>Registers: R·NW ≤ 16 accumulators (zmm0–15); the unpacked weights and lane scales of two weight
/// rows at a time (zmm16–21: renaming lets the next row's start while this one's products run),
/// four temporaries (zmm24–27) and two constants (zmm28, zmm30).</para>
/// </remarks>
internal static unsafe class QuantRowsKernel
{
    public const int MaxRows = 4;
    public const int MaxWeightRows = 4;

    /// <summary>Elements of a weight row per step: one 64-byte load of its integers.</summary>
    public static int StepElements(BlockFormat format) => format == BlockFormat.Q8_0 ? 64 : 128;

    /// <summary>Integer bytes of one weight row per step (both formats).</summary>
    public const int WeightStepBytes = 64;

    /// <summary>Float16 scale bytes of one weight row per step: two blocks' (Q8_0) or four blocks' (Q4_0).</summary>
    public static int ScaleStepBytes(BlockFormat format) => StepElements(format) / BlockFormats.BlockSize * 2;

    /// <summary>Steps whose float16 scales one 32-byte load holds, per weight row: 8 (Q8_0) or 4 (Q4_0).</summary>
    public static int ScaleLoadSteps(BlockFormat format) => 32 / ScaleStepBytes(format);

    /// <summary>Signed input bytes per row and step (one or two vectors), then 64 bytes of corrections and 64 of lane scales.</summary>
    public static int InputBytes(BlockFormat format) => StepElements(format);

    /// <summary>Bytes of one input row's step: <see cref="InputBytes"/>, 16 int32 corrections, 16 float scales.</summary>
    public static int InputStepBytes(BlockFormat format) => InputBytes(format) + 128;

    private static readonly ConcurrentDictionary<int, nint> _cache = new();

    /// <summary>The CPU has AVX512-BW and AVX512-VNNI and the platform runs generated code. SLOWFAST_NO_JIT=1 turns it off (products then take the scalar path).</summary>
    public static bool IsSupported { get; } = Detect();

    private static bool Detect()
    {
        if (Environment.GetEnvironmentVariable("SLOWFAST_NO_JIT") == "1") return false;
        if (!ExecutableMemory.IsSupported || !System.Runtime.Intrinsics.X86.Avx512BW.IsSupported || !System.Runtime.Intrinsics.X86.X86Base.IsSupported) return false;
        // CPUID leaf 7, sub-leaf 0: ECX bit 11 = AVX512_VNNI.
        var (_, _, ecx, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 0);
        return (ecx & (1 << 11)) != 0;
    }

    /// <param name="scaleGroups">
    /// One input row whose steps are a multiple of <see cref="ScaleLoadSteps"/>: each weight row's scales
    /// are converted 32 bytes at a time instead of every step.
    /// </param>
    public static delegate* unmanaged<QuantRowsArgs*, void> Get(BlockFormat format, int rows, int weightRows, bool scaleGroups = false)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX512-VNNI");
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows));
        if (weightRows is < 1 or > MaxWeightRows) throw new ArgumentOutOfRangeException(nameof(weightRows));
        int key = rows | weightRows << 4 | (int)format << 8 | (int)PrefetchFor(format) << 12 | (scaleGroups ? 1 << 16 : 0);
        nint code = _cache.GetOrAdd(key, static k =>
            (nint)ExecutableMemory.Install(Generate((BlockFormat)(k >> 8 & 15), k & 15, k >> 4 & 15, (QuantPrefetch)(k >> 12 & 15), (k >> 16 & 1) != 0)));
        return (delegate* unmanaged<QuantRowsArgs*, void>)code;
    }

    // Argument offsets in QuantRowsArgs (a test checks them against the struct's layout).
    private const int OffX = 0, OffW = 8, OffWStride = 16, OffKNeg = 24, OffS = 32, OffSStride = 40, OffSNeg = 48,
        OffOut = 56, OffGroups = 64, OffGroupStepW = 72, OffGroupStepS = 80, OffConsts = 88, OffAhead = 96;

    internal static IReadOnlyDictionary<string, int> ArgumentOffsets { get; } = new Dictionary<string, int>
    {
        [nameof(QuantRowsArgs.X)] = OffX, [nameof(QuantRowsArgs.W)] = OffW, [nameof(QuantRowsArgs.WStride)] = OffWStride,
        [nameof(QuantRowsArgs.KNeg)] = OffKNeg, [nameof(QuantRowsArgs.S)] = OffS, [nameof(QuantRowsArgs.SStride)] = OffSStride,
        [nameof(QuantRowsArgs.SNeg)] = OffSNeg, [nameof(QuantRowsArgs.Out)] = OffOut, [nameof(QuantRowsArgs.Groups)] = OffGroups,
        [nameof(QuantRowsArgs.GroupStepW)] = OffGroupStepW, [nameof(QuantRowsArgs.GroupStepS)] = OffGroupStepS,
        [nameof(QuantRowsArgs.Consts)] = OffConsts, [nameof(QuantRowsArgs.Ahead)] = OffAhead,
    };

    /// <summary>Machine code of one variant (System V: args pointer in rdi; rbx, rbp, r12–r15 saved and restored).</summary>
    public static byte[] Generate(BlockFormat format, int rows, int weightRows, bool scaleGroups = false) =>
        Generate(format, rows, weightRows, PrefetchFor(format), scaleGroups);

    /// <summary>
    /// The prefetch the kernel of <paramref name="format"/> issues unless <see cref="PrefetchOverride"/> is
    /// set: both for Q4_0, whose 64-byte lines carry 9 instructions and whose rows are short; only the
    /// row's next kilobyte for Q8_0, whose lines carry 6 (`bench --quantized-products` times each format
    /// with each choice).
    /// </summary>
    public static QuantPrefetch DefaultPrefetch(BlockFormat format) =>
        format == BlockFormat.Q4_0 ? QuantPrefetch.RowAndGroups : QuantPrefetch.Row;

    /// <summary>When set, the prefetch every format's kernels issue (benchmarks compare the choices).</summary>
    internal static QuantPrefetch? PrefetchOverride { get; set; }

    private static QuantPrefetch PrefetchFor(BlockFormat format) => PrefetchOverride ?? DefaultPrefetch(format);

    /// <summary>
    /// How far ahead in its own row each step prefetches into L1: far enough to cover a memory access's
    /// latency at one core's share of the bandwidth, near enough that the lines are still in L1 when read.
    /// </summary>
    private const int RowAheadBytes = 1024;

    internal static byte[] Generate(BlockFormat format, int rows, int weightRows, QuantPrefetch prefetch, bool scaleGroups)
    {
        if (scaleGroups && rows != 1) throw new ArgumentException("scale groups take one input row", nameof(scaleGroups));
        var a = new X86Assembler();
        Gpr[] saved = [Gpr.Rbx, Gpr.Rbp, Gpr.R12, Gpr.R13, Gpr.R14, Gpr.R15];
        foreach (var r in saved) a.Push(r);

        Gpr args = Gpr.Rdi, kw = Gpr.Rsi, ks = Gpr.Rax, xp = Gpr.Rdx, stride = Gpr.R13, consts = Gpr.R14, ahead = Gpr.R15;
        Gpr[] wRow = [Gpr.Rcx, Gpr.R8, Gpr.R9, Gpr.R10];
        Gpr[] sRow = [Gpr.R11, Gpr.Rbx, Gpr.Rbp, Gpr.R12];
        int nw = weightRows;
        bool q4 = format == BlockFormat.Q4_0;
        int inputBytes = InputBytes(format), stepBytes = InputStepBytes(format);
        int Acc(int r, int j) => r * nw + j;
        int Low(int j) => 16 + 3 * (j & 1);    // the unsigned weights (Q4_0: low nibbles)
        int High(int j) => 17 + 3 * (j & 1);   // Q4_0: high nibbles
        int Scale(int j) => 18 + 3 * (j & 1);
        int Temp(int i) => 24 + (i & 3);
        const int CMask = 28, CIndex = 30;

        a.Load(consts, Mem.At(args, OffConsts));
        a.VmovupsLoad(CMask, Mem.At(consts));
        a.VmovupsLoad(CIndex, Mem.At(consts, 64));

        void RowPointers(Gpr[] ptr, int offBase, int offStride)
        {
            a.Load(ptr[0], Mem.At(args, offBase));
            a.Load(stride, Mem.At(args, offStride));
            if (nw > 1) a.Lea(ptr[1], Mem.At(ptr[0], stride, 1));
            if (nw > 2) a.Lea(ptr[2], Mem.At(ptr[0], stride, 2));
            if (nw > 3) a.Lea(ptr[3], Mem.At(ptr[1], stride, 2));
        }

        int groupLoop = a.NewLabel(), mainLoop = a.NewLabel();
        a.Place(groupLoop);
        for (int i = 0; i < rows * nw; i++) a.Vpxord(i, i, i);
        RowPointers(wRow, OffW, OffWStride);
        RowPointers(sRow, OffS, OffSStride);
        a.Load(xp, Mem.At(args, OffX));
        a.Load(kw, Mem.At(args, OffKNeg));
        a.Load(ks, Mem.At(args, OffSNeg));
        // The groups that follow lie after this one in memory: NW·64 bytes of them are prefetched per
        // step, Ahead bytes ahead, so they are in cache when their turn comes. The weight rows are short
        // (a few KB), too short for the hardware prefetcher to ramp up on each one.
        a.Load(ahead, Mem.At(args, OffW));
        a.Add(ahead, kw);
        a.Add(ahead, Mem.At(args, OffAhead));

        a.Place(mainLoop);
        // One input row (decoding): its step is loaded into registers once for all weight rows; with
        // scaleGroups, each weight row's float16 scales of ScaleLoadSteps steps are converted by one
        // instruction and each step permutes its lanes out of them (indexes in zmm4–7, zmm12–15).
        const int XLow = 8, XHigh = 9, XCorrection = 10, XScale = 11;
        int[] stepIndex = [4, 5, 6, 7, 12, 13, 14, 15];
        int[] scales16 = [22, 23, 29, 31];
        bool oneRow = rows == 1;
        int unroll = scaleGroups ? ScaleLoadSteps(format) : 1;
        if (scaleGroups)
            for (int u = 0; u < unroll; u++) a.VmovupsLoad(stepIndex[u], Mem.At(consts, 128 + 64 * u));
        int t = 0;
        for (int u = 0; u < unroll; u++)
        {
            // Per weight line, up to two prefetches, each into the level where it pays: this row's next
            // kilobyte into L1, and the groups that follow (a linear sweep of whole groups, Ahead bytes
            // on) into L2, since the rows are short (a few KB) for the hardware prefetcher to ramp up on
            // each one. They keep more lines in flight than the out-of-order window alone would while the
            // integer and float work of earlier lines fills it, at the cost of their own instructions.
            for (int j = 0; j < nw; j++)
            {
                if (prefetch == QuantPrefetch.RowAndGroups) a.Prefetcht1(Mem.At(ahead, WeightStepBytes * (u * nw + j)));
                if (prefetch != QuantPrefetch.None) a.Prefetcht0(Mem.At(wRow[j], kw, 1, WeightStepBytes * u + RowAheadBytes));
            }
            int xu = stepBytes * u;
            if (oneRow)
            {
                a.VmovupsLoad(XLow, Mem.At(xp, xu));
                if (q4) a.VmovupsLoad(XHigh, Mem.At(xp, xu + 64));
                a.VmovupsLoad(XCorrection, Mem.At(xp, xu + inputBytes));
                // With scale groups, the group's first step holds its 16 block scales (block order).
                if (!scaleGroups || u == 0) a.VmovupsLoad(XScale, Mem.At(xp, xu + inputBytes + 64));
            }
            for (int j = 0; j < nw; j++)
            {
                var w = Mem.At(wRow[j], kw, 1, WeightStepBytes * u);
                if (q4)
                {
                    a.Vpandd(Low(j), CMask, w);
                    a.Vpsrlw(High(j), w, 4);
                    a.Vpandd(High(j), High(j), CMask);
                }
                else a.Vpxord(Low(j), CMask, w);
                if (scaleGroups)
                {
                    if (u == 0)
                    {
                        a.Vcvtph2ps(scales16[j], Mem.At(sRow[j], ks, 1));
                        a.Vmulps(scales16[j], scales16[j], XScale);   // d_w · d_x, block by block
                    }
                    a.Vpermps(Scale(j), stepIndex[u], scales16[j]);
                }
                else
                {
                    if (q4) a.Vpbroadcastq(Scale(j), Mem.At(sRow[j], ks, 1));
                    else a.Vpbroadcastd(Scale(j), Mem.At(sRow[j], ks, 1));
                    a.Vcvtph2ps(Scale(j), Scale(j));
                    a.Vpermps(Scale(j), CIndex, Scale(j));
                }
                for (int r = 0; r < rows; r++, t++)
                {
                    int tmp = Temp(t);
                    if (oneRow)
                    {
                        a.Vmovaps(tmp, XCorrection);
                        a.Vpdpbusd(tmp, Low(j), XLow);
                        if (q4) a.Vpdpbusd(tmp, High(j), XHigh);
                        a.Vcvtdq2ps(tmp, tmp);
                        if (scaleGroups) a.Vfmadd231ps(Acc(r, j), tmp, Scale(j));
                        else
                        {
                            a.Vmulps(tmp, tmp, Scale(j));
                            a.Vfmadd231ps(Acc(r, j), tmp, XScale);
                        }
                        continue;
                    }
                    a.VmovupsLoad(tmp, Mem.At(xp, stepBytes * r + inputBytes));
                    a.Vpdpbusd(tmp, Low(j), Mem.At(xp, stepBytes * r));
                    if (q4) a.Vpdpbusd(tmp, High(j), Mem.At(xp, stepBytes * r + 64));
                    a.Vcvtdq2ps(tmp, tmp);
                    a.Vmulps(tmp, tmp, Scale(j));
                    a.Vfmadd231ps(Acc(r, j), tmp, Mem.At(xp, stepBytes * r + inputBytes + 64));
                }
            }
        }
        a.Add(ahead, WeightStepBytes * nw * unroll);
        a.Add(xp, stepBytes * rows * unroll);
        a.Add(ks, ScaleStepBytes(format) * unroll);
        a.Add(kw, WeightStepBytes * unroll);    // counts up to zero with ks: the flags for the jump
        a.Jnz(mainLoop);

        a.Load(Gpr.Rsi, Mem.At(args, OffOut));
        for (int i = 0; i < rows * nw; i++) a.VmovupsStore(Mem.At(Gpr.Rsi, 64 * i), i);
        a.Add(Gpr.Rsi, 64 * rows * nw);
        a.Store(Mem.At(args, OffOut), Gpr.Rsi);
        a.Load(Gpr.Rax, Mem.At(args, OffW));
        a.Add(Gpr.Rax, Mem.At(args, OffGroupStepW));
        a.Store(Mem.At(args, OffW), Gpr.Rax);
        a.Load(Gpr.Rax, Mem.At(args, OffS));
        a.Add(Gpr.Rax, Mem.At(args, OffGroupStepS));
        a.Store(Mem.At(args, OffS), Gpr.Rax);
        a.Dec(Mem.At(args, OffGroups));
        a.Jnz(groupLoop);
        a.Vzeroupper();
        for (int i = saved.Length - 1; i >= 0; i--) a.Pop(saved[i]);
        a.Ret();
        return a.ToArray();
    }

    /// <summary>
    /// The element of the step (0 to <see cref="StepElements"/> − 1) that input byte <paramref name="i"/>
    /// (0 to <see cref="InputBytes"/> − 1) holds: the weights' own order for Q8_0; for Q4_0 byte i of
    /// the first vector is low nibble i mod 16 of block i / 16 (element i mod 16), of the second vector
    /// the high nibble (element 16 + i mod 16).
    /// </summary>
    public static int ElementOfByte(BlockFormat format, int i) =>
        format == BlockFormat.Q8_0 ? i : (i & 63) / 16 * 32 + (i & 15) + i / 64 * 16;

    /// <summary>Which of the step's blocks int32 lane <paramref name="lane"/> (0–15) sums: two blocks of eight lanes (Q8_0), four of four (Q4_0).</summary>
    public static int BlockOfLane(BlockFormat format, int lane) => format == BlockFormat.Q8_0 ? lane >> 3 : lane >> 2;

    /// <summary>The unsigned offset the kernel gives the weights (q + offset ∈ [0, 255]).</summary>
    public static int WeightOffset(BlockFormat format) => format == BlockFormat.Q8_0 ? 128 : 8;
}
