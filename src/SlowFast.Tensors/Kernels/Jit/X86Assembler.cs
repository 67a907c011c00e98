namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>General-purpose 64-bit registers, numbered as the x86-64 encoding numbers them.</summary>
internal enum Gpr { Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15 }

/// <summary>A memory operand [base + index·scale + disp] (index optional; scale 1, 2, 4 or 8).</summary>
internal readonly record struct Mem(Gpr Base, int Disp = 0, Gpr? Index = null, int Scale = 1)
{
    public static Mem At(Gpr b, int disp = 0) => new(b, disp);
    public static Mem At(Gpr b, Gpr index, int scale, int disp = 0) => new(b, disp, index, scale);
}

/// <summary>
/// A tiny x86-64 assembler: exactly the instructions the generated kernels use, encoded by hand.
/// </summary>
/// <remarks>
/// .NET 10 has no intrinsics for AVX512-BF16 (<c>vdpbf16ps</c>), so the kernels that need it are
/// assembled here at run time, the way oneDNN does with Xbyak. Every encoder below is checked
/// against GNU objdump by JitAssemblerTests. Vector registers are zmm0–zmm31, given as ints.
/// Integer operations are all 64-bit (REX.W).
/// </remarks>
internal sealed class X86Assembler
{
    private readonly List<byte> _code = new();
    private readonly List<(int At, int Label)> _fixups = new();
    private readonly List<int> _labels = new();

    public byte[] ToArray()
    {
        foreach (var (at, label) in _fixups)
        {
            int target = _labels[label];
            if (target < 0) throw new InvalidOperationException($"label {label} was never placed");
            int rel = target - (at + 4);
            for (int i = 0; i < 4; i++) _code[at + i] = (byte)(rel >> (8 * i));
        }
        return _code.ToArray();
    }

    // ---- labels and jumps ----

    public int NewLabel() { _labels.Add(-1); return _labels.Count - 1; }
    public void Place(int label) => _labels[label] = _code.Count;
    public void Jnz(int label) => Jcc(0x85, label);
    public void Jz(int label) => Jcc(0x84, label);

    private void Jcc(byte op, int label)
    {
        Emit(0x0F, op);
        _fixups.Add((_code.Count, label));
        Emit(0, 0, 0, 0);
    }

    // ---- general-purpose instructions ----

    public void Ret() => Emit(0xC3);
    public void Vzeroupper() => Emit(0xC5, 0xF8, 0x77);

    /// <summary>dst = <paramref name="imm"/> sign-extended to 64 bits.</summary>
    public void Mov(Gpr dst, int imm) => RexRegReg(0xC7, 0, (int)dst, imm);

    /// <summary>dst = [mem] (64-bit load).</summary>
    public void Load(Gpr dst, Mem src) => RexMem(0x8B, (int)dst, src);
    /// <summary>[mem] = src (64-bit store).</summary>
    public void Store(Mem dst, Gpr src) => RexMem(0x89, (int)src, dst);
    /// <summary>dst = src.</summary>
    public void Mov(Gpr dst, Gpr src) => RexRegReg(0x89, (int)src, (int)dst);
    /// <summary>dst += src.</summary>
    public void Add(Gpr dst, Gpr src) => RexRegReg(0x01, (int)src, (int)dst);
    /// <summary>dst += [mem].</summary>
    public void Add(Gpr dst, Mem src) => RexMem(0x03, (int)dst, src);
    /// <summary>dst += imm.</summary>
    public void Add(Gpr dst, int imm) => RexRegReg(0x81, 0, (int)dst, imm);
    /// <summary>dst = address of mem.</summary>
    public void Lea(Gpr dst, Mem src) => RexMem(0x8D, (int)dst, src);
    /// <summary>Sets the flags from r AND r (zero test).</summary>
    public void Test(Gpr r) => RexRegReg(0x85, (int)r, (int)r);
    /// <summary>r -= 1.</summary>
    public void Dec(Gpr r) => RexRegReg(0xFF, 1, (int)r);
    /// <summary>[mem] -= 1 (64-bit).</summary>
    public void Dec(Mem m) => RexMem(0xFF, 1, m);
    /// <summary>prefetcht0: bring the cache line at mem into every cache level (a hint: never faults).</summary>
    public void Prefetcht0(Mem m) => Prefetch(m, 1);
    /// <summary>prefetcht1: bring the cache line at mem into L2 and the levels beyond (a hint: never faults).</summary>
    public void Prefetcht1(Mem m) => Prefetch(m, 2);

    private void Prefetch(Mem m, int hint)
    {
        int index = m.Index is Gpr i ? (int)i : 0;
        int rex = 0x40 | ((index >> 3) & 1) << 1 | (((int)m.Base >> 3) & 1);
        if (rex != 0x40) Emit((byte)rex);
        Emit(0x0F, 0x18);
        ModRmMem(hint, m, 1);
    }

    /// <summary>Pushes a 64-bit register (to save a callee-saved one).</summary>
    public void Push(Gpr r) { if ((int)r >= 8) Emit(0x41); Emit((byte)(0x50 + ((int)r & 7))); }
    /// <summary>Pops a 64-bit register.</summary>
    public void Pop(Gpr r) { if ((int)r >= 8) Emit(0x41); Emit((byte)(0x58 + ((int)r & 7))); }

    private void RexRegReg(byte op, int reg, int rm, int? imm = null)
    {
        Emit((byte)(0x48 | ((reg >> 3) & 1) << 2 | ((rm >> 3) & 1)), op, (byte)(0xC0 | (reg & 7) << 3 | (rm & 7)));
        if (imm is int v) Emit((byte)v, (byte)(v >> 8), (byte)(v >> 16), (byte)(v >> 24));
    }

    private void RexMem(byte op, int reg, Mem m)
    {
        int index = m.Index is Gpr i ? (int)i : 0;
        Emit((byte)(0x48 | ((reg >> 3) & 1) << 2 | ((index >> 3) & 1) << 1 | (((int)m.Base >> 3) & 1)), op);   // REX.W R X B
        ModRmMem(reg, m, 1);
    }

    // ---- AVX-512 (EVEX, 512-bit) ----

    /// <summary>Opmask register k = the low 16 bits of a legacy register (rax..rdi).</summary>
    public void KmovwFromGpr(int k, Gpr src)
    {
        if ((int)src >= 8 || k is < 0 or > 7) throw new ArgumentException("kmovw takes rax..rdi and k0..k7");
        Emit(0xC5, 0xF8, 0x92, (byte)(0xC0 | k << 3 | (int)src));
    }

    /// <summary>Opmask register k = the low 32 bits of a legacy register (rax..rdi).</summary>
    public void KmovdFromGpr(int k, Gpr src)
    {
        if ((int)src >= 8 || k is < 0 or > 7) throw new ArgumentException("kmovd takes rax..rdi and k0..k7");
        Emit(0xC5, 0xFB, 0x92, (byte)(0xC0 | k << 3 | (int)src));
    }

    /// <summary>
    /// dst = the 32 16-bit elements at mem whose bits are set in opmask k<paramref name="mask"/> (1–7),
    /// zero elsewhere; masked-off elements are not read (no fault past the end of a buffer).
    /// </summary>
    public void Vmovdqu16LoadZeroMasked(int dst, Mem src, int mask)
    {
        if (mask is < 1 or > 7) throw new ArgumentException("zero-masking needs k1..k7");
        EvexMem(pp: 3, map: 1, op: 0x6F, dst, 0, src, scale: 64, mask, w: 1, zero: true);
    }

    /// <summary>
    /// dst = the 16 floats at mem whose bits are set in opmask k<paramref name="mask"/> (1–7), zero
    /// elsewhere; masked-off elements are not read.
    /// </summary>
    public void VmovupsLoadZeroMasked(int dst, Mem src, int mask)
    {
        if (mask is < 1 or > 7) throw new ArgumentException("zero-masking needs k1..k7");
        EvexMem(pp: 0, map: 1, op: 0x10, dst, 0, src, scale: 64, mask, zero: true);
    }

    /// <summary>dst = a XOR b (used to zero accumulators).</summary>
    public void Vpxord(int dst, int a, int b) => EvexRegs(pp: 1, map: 1, op: 0xEF, dst, a, b);
    /// <summary>dst = 64 bytes at mem.</summary>
    public void VmovupsLoad(int dst, Mem src) => EvexMem(pp: 0, map: 1, op: 0x10, dst, 0, src, scale: 64);
    /// <summary>64 bytes at mem = src.</summary>
    public void VmovupsStore(Mem dst, int src, int mask = 0) => EvexMem(pp: 0, map: 1, op: 0x11, src, 0, dst, scale: 64, mask);
    /// <summary>dst = a + 16 floats at mem.</summary>
    public void Vaddps(int dst, int a, Mem b, int mask = 0) => EvexMem(pp: 0, map: 1, op: 0x58, dst, a, b, scale: 64, mask);
    /// <summary>dst = the 32-bit value at mem in all 16 lanes.</summary>
    public void Vpbroadcastd(int dst, Mem src) => EvexMem(pp: 1, map: 2, op: 0x58, dst, 0, src, scale: 4);
    /// <summary>
    /// AVX512-BF16: for each of the 16 float lanes, dst += a.lo·b.lo + a.hi·b.hi, where a and b hold
    /// bfloat16 pairs (products exact in float32, denormals flushed, round to nearest even).
    /// </summary>
    public void Vdpbf16ps(int dst, int a, int b) => EvexRegs(pp: 2, map: 2, op: 0x52, dst, a, b);

    // ---- AVX-512 integer (VNNI) and conversions, for the quantized kernels ----

    /// <summary>
    /// AVX512-VNNI: for each of the 16 int32 lanes, dst += the sum of the four products of a's unsigned
    /// bytes with the signed bytes at mem (no saturation).
    /// </summary>
    public void Vpdpbusd(int dst, int a, Mem b) => EvexMem(pp: 1, map: 2, op: 0x50, dst, a, b, scale: 64);
    /// <summary>As <see cref="Vpdpbusd(int, int, Mem)"/> with the signed bytes in register b.</summary>
    public void Vpdpbusd(int dst, int a, int b) => EvexRegs(pp: 1, map: 2, op: 0x50, dst, a, b);
    /// <summary>dst = the 64-bit value at mem in all 8 lanes.</summary>
    public void Vpbroadcastq(int dst, Mem src) => EvexMem(pp: 1, map: 2, op: 0x59, dst, 0, src, scale: 8, w: 1);
    /// <summary>Each 16-bit lane of the 64 bytes at mem shifted right (logically) by <paramref name="count"/> bits.</summary>
    public void Vpsrlw(int dst, Mem src, byte count)
    {
        EvexMem(pp: 1, map: 1, op: 0x71, 2, dst, src, scale: 64);   // 71 /2 ib: ModRM.reg is the opcode extension, EVEX.vvvv the destination
        Emit(count);
    }
    /// <summary>dst = a AND the 64 bytes at mem.</summary>
    public void Vpandd(int dst, int a, Mem b) => EvexMem(pp: 1, map: 1, op: 0xDB, dst, a, b, scale: 64);
    /// <summary>dst = a XOR the 64 bytes at mem.</summary>
    public void Vpxord(int dst, int a, Mem b) => EvexMem(pp: 1, map: 1, op: 0xEF, dst, a, b, scale: 64);
    /// <summary>dst = a AND b.</summary>
    public void Vpandd(int dst, int a, int b) => EvexRegs(pp: 1, map: 1, op: 0xDB, dst, a, b);
    /// <summary>dst = the 16 float16 values of ymm src as float32.</summary>
    public void Vcvtph2ps(int dst, int src) => EvexRegs(pp: 1, map: 2, op: 0x13, dst, 0, src);
    /// <summary>dst = the 16 float16 values at mem (32 bytes) as float32.</summary>
    public void Vcvtph2ps(int dst, Mem src) => EvexMem(pp: 1, map: 2, op: 0x13, dst, 0, src, scale: 32);
    /// <summary>dst[i] = src[indexes[i] mod 16] (32-bit lanes).</summary>
    public void Vpermps(int dst, int indexes, int src) => EvexRegs(pp: 1, map: 2, op: 0x16, dst, indexes, src);
    /// <summary>dst = the 16 int32 lanes of src as float32 (rounded to nearest even).</summary>
    public void Vcvtdq2ps(int dst, int src) => EvexRegs(pp: 0, map: 1, op: 0x5B, dst, 0, src);
    /// <summary>dst = a · b (floats).</summary>
    public void Vmulps(int dst, int a, int b) => EvexRegs(pp: 0, map: 1, op: 0x59, dst, a, b);
    /// <summary>dst = a · (16 floats at mem).</summary>
    public void Vmulps(int dst, int a, Mem b) => EvexMem(pp: 0, map: 1, op: 0x59, dst, a, b, scale: 64);
    /// <summary>dst += a · (16 floats at mem), one rounding.</summary>
    public void Vfmadd231ps(int dst, int a, Mem b) => EvexMem(pp: 1, map: 2, op: 0xB8, dst, a, b, scale: 64);
    /// <summary>dst += a · b, one rounding.</summary>
    public void Vfmadd231ps(int dst, int a, int b) => EvexRegs(pp: 1, map: 2, op: 0xB8, dst, a, b);
    /// <summary>Each 32-bit lane of the 64 bytes at mem shifted left by <paramref name="count"/> bits.</summary>
    public void Vpslld(int dst, Mem src, byte count)
    {
        EvexMem(pp: 1, map: 1, op: 0x72, 6, dst, src, scale: 64);   // 72 /6 ib: ModRM.reg is the opcode extension, EVEX.vvvv the destination
        Emit(count);
    }
    /// <summary>dst = a (a register copy).</summary>
    public void Vmovaps(int dst, int a) => EvexRegs(pp: 0, map: 1, op: 0x28, dst, 0, a);

    private void EvexRegs(int pp, int map, byte op, int reg, int vvvv, int rm, int w = 0)
    {
        // P0: R̄ X̄ B̄ R̄' 0 0 m m — for a register rm, X extends it to zmm16–31.
        byte p0 = (byte)((~reg >> 3 & 1) << 7 | (~rm >> 4 & 1) << 6 | (~rm >> 3 & 1) << 5 | (~reg >> 4 & 1) << 4 | map);
        byte p1 = (byte)(w << 7 | (~vvvv & 15) << 3 | 1 << 2 | pp);
        byte p2 = (byte)(0b10 << 5 | (~vvvv >> 4 & 1) << 3);             // L'L = 512 bits, no mask
        Emit(0x62, p0, p1, p2, op, (byte)(0xC0 | (reg & 7) << 3 | (rm & 7)));
    }

    /// <remarks>
    /// A non-zero <paramref name="mask"/> names the opmask register k1–k7 (merge masking, or zero-masking
    /// with <paramref name="zero"/>, EVEX.z); <paramref name="w"/> is EVEX.W.
    /// </remarks>
    private void EvexMem(int pp, int map, byte op, int reg, int vvvv, Mem m, int scale, int mask = 0, int w = 0, bool zero = false)
    {
        int b = (int)m.Base, x = m.Index is Gpr i ? (int)i : 0;
        byte p0 = (byte)((~reg >> 3 & 1) << 7 | (~x >> 3 & 1) << 6 | (~b >> 3 & 1) << 5 | (~reg >> 4 & 1) << 4 | map);
        byte p1 = (byte)(w << 7 | (~vvvv & 15) << 3 | 1 << 2 | pp);
        byte p2 = (byte)((zero ? 1 : 0) << 7 | 0b10 << 5 | (~vvvv >> 4 & 1) << 3 | mask);
        Emit(0x62, p0, p1, p2, op);
        ModRmMem(reg, m, scale);
    }

    /// <summary>
    /// ModRM (+ SIB) (+ displacement). EVEX compresses an 8-bit displacement by the operand size
    /// (<paramref name="disp8Scale"/>); legacy encodings use 1.
    /// </summary>
    private void ModRmMem(int reg, Mem m, int disp8Scale)
    {
        int baseLow = (int)m.Base & 7;
        if (m.Index == Gpr.Rsp) throw new ArgumentException("rsp cannot be an index register");
        int mod;
        if (m.Disp == 0 && baseLow != 5) mod = 0;                       // rbp/r13 need an explicit displacement
        else if (m.Disp % disp8Scale == 0 && m.Disp / disp8Scale is >= -128 and <= 127) mod = 1;
        else mod = 2;
        bool sib = m.Index != null || baseLow == 4;                      // rsp/r12 as base need a SIB byte
        Emit((byte)(mod << 6 | (reg & 7) << 3 | (sib ? 4 : baseLow)));
        if (sib)
        {
            int scaleBits = m.Scale switch { 1 => 0, 2 => 1, 4 => 2, 8 => 3, _ => throw new ArgumentException($"scale {m.Scale}") };
            int indexLow = m.Index is Gpr i ? (int)i & 7 : 4;            // 100 = no index
            Emit((byte)(scaleBits << 6 | indexLow << 3 | baseLow));
        }
        if (mod == 1) Emit((byte)(sbyte)(m.Disp / disp8Scale));
        else if (mod == 2) Emit((byte)m.Disp, (byte)(m.Disp >> 8), (byte)(m.Disp >> 16), (byte)(m.Disp >> 24));
    }

    private void Emit(params ReadOnlySpan<byte> bytes) { foreach (byte b in bytes) _code.Add(b); }
}
