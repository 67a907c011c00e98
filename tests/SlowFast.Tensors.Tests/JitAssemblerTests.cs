using System.Diagnostics;
using System.Text.RegularExpressions;
using SlowFast.Tensors.Kernels.Jit;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// The run-time assembler's encodings, checked against an independent disassembler (GNU objdump,
/// from binutils, which scripts/install-deps.sh installs): each instruction is assembled alone and
/// must disassemble to the expected Intel-syntax text and use all of its bytes.
/// </summary>
public class JitAssemblerTests
{
    private static readonly (string Expected, Action<X86Assembler> Emit)[] _cases =
    {
        ("ret", a => a.Ret()),
        ("vzeroupper", a => a.Vzeroupper()),
        ("mov rsi,QWORD PTR [rdi+0x8]", a => a.Load(Gpr.Rsi, Mem.At(Gpr.Rdi, 8))),
        ("mov r9,QWORD PTR [rdi]", a => a.Load(Gpr.R9, Mem.At(Gpr.Rdi))),
        ("mov rax,QWORD PTR [r13+0x0]", a => a.Load(Gpr.Rax, Mem.At(Gpr.R13))),
        ("mov rax,QWORD PTR [r12+0x10]", a => a.Load(Gpr.Rax, Mem.At(Gpr.R12, 16))),
        ("mov r11,QWORD PTR [rdi+0x1000]", a => a.Load(Gpr.R11, Mem.At(Gpr.Rdi, 4096))),
        ("mov rax,r9", a => a.Mov(Gpr.Rax, Gpr.R9)),
        ("mov r10,rcx", a => a.Mov(Gpr.R10, Gpr.Rcx)),
        ("add r10,rsi", a => a.Add(Gpr.R10, Gpr.Rsi)),
        ("add r9,QWORD PTR [rdi+0x40]", a => a.Add(Gpr.R9, Mem.At(Gpr.Rdi, 64))),
        ("add rdx,0x400", a => a.Add(Gpr.Rdx, 1024)),
        ("add rax,0xfffffffffffffff0", a => a.Add(Gpr.Rax, -16)),
        ("lea r10,[r9+rsi*2]", a => a.Lea(Gpr.R10, Mem.At(Gpr.R9, Gpr.Rsi, 2))),
        ("lea rax,[r11+r8*1+0x4]", a => a.Lea(Gpr.Rax, Mem.At(Gpr.R11, Gpr.R8, 1, 4))),
        ("test rcx,rcx", a => a.Test(Gpr.Rcx)),
        ("dec rcx", a => a.Dec(Gpr.Rcx)),
        ("dec QWORD PTR [rdi+0x38]", a => a.Dec(Mem.At(Gpr.Rdi, 56))),
        ("kmovw k1,eax", a => a.KmovwFromGpr(1, Gpr.Rax)),
        ("vpxord zmm0,zmm0,zmm0", a => a.Vpxord(0, 0, 0)),
        ("vpxord zmm23,zmm17,zmm9", a => a.Vpxord(23, 17, 9)),
        ("vmovups zmm24,ZMMWORD PTR [rdx+0xc0]", a => a.VmovupsLoad(24, Mem.At(Gpr.Rdx, 192))),
        ("vmovups zmm3,ZMMWORD PTR [rdx+0x2000]", a => a.VmovupsLoad(3, Mem.At(Gpr.Rdx, 8192))),
        ("vmovups zmm1,ZMMWORD PTR [rdx+0x44]", a => a.VmovupsLoad(1, Mem.At(Gpr.Rdx, 68))),
        ("vmovups ZMMWORD PTR [r10+r8*2+0x40],zmm17", a => a.VmovupsStore(Mem.At(Gpr.R10, Gpr.R8, 2, 64), 17)),
        ("vmovups ZMMWORD PTR [rax]{k1},zmm5", a => a.VmovupsStore(Mem.At(Gpr.Rax), 5, mask: 1)),
        ("vaddps zmm8,zmm8,ZMMWORD PTR [r11+r8*1+0x80]", a => a.Vaddps(8, 8, Mem.At(Gpr.R11, Gpr.R8, 1, 128))),
        ("vaddps zmm20{k1},zmm20,ZMMWORD PTR [rax+0xc0]", a => a.Vaddps(20, 20, Mem.At(Gpr.Rax, 192), mask: 1)),
        ("vpbroadcastd zmm28,DWORD PTR [rax+rsi*2+0xc]", a => a.Vpbroadcastd(28, Mem.At(Gpr.Rax, Gpr.Rsi, 2, 12))),
        ("vpbroadcastd zmm29,DWORD PTR [r10]", a => a.Vpbroadcastd(29, Mem.At(Gpr.R10))),
        ("vpbroadcastd zmm2,DWORD PTR [rax+0x3]", a => a.Vpbroadcastd(2, Mem.At(Gpr.Rax, 3))),
        ("vdpbf16ps zmm0,zmm24,zmm28", a => a.Vdpbf16ps(0, 24, 28)),
        ("vdpbf16ps zmm23,zmm27,zmm29", a => a.Vdpbf16ps(23, 27, 29)),
        ("vdpbf16ps zmm9,zmm2,zmm16", a => a.Vdpbf16ps(9, 2, 16)),
        ("mov QWORD PTR [rdi+0x28],rsi", a => a.Store(Mem.At(Gpr.Rdi, 40), Gpr.Rsi)),
        ("mov QWORD PTR [r9+0x1000],r10", a => a.Store(Mem.At(Gpr.R9, 4096), Gpr.R10)),
        ("lea r8,[r10+r8*2]", a => a.Lea(Gpr.R8, Mem.At(Gpr.R10, Gpr.R8, 2))),
        ("kmovd k1,eax", a => a.KmovdFromGpr(1, Gpr.Rax)),
        ("kmovd k3,esi", a => a.KmovdFromGpr(3, Gpr.Rsi)),
        ("vmovups zmm24,ZMMWORD PTR [rax+rsi*1]", a => a.VmovupsLoad(24, Mem.At(Gpr.Rax, Gpr.Rsi, 1))),
        ("vmovups zmm29,ZMMWORD PTR [r8+rsi*1]", a => a.VmovupsLoad(29, Mem.At(Gpr.R8, Gpr.Rsi, 1))),
        ("vmovdqu16 zmm24{k1}{z},ZMMWORD PTR [rax]", a => a.Vmovdqu16LoadZeroMasked(24, Mem.At(Gpr.Rax), 1)),
        ("vmovdqu16 zmm3{k2}{z},ZMMWORD PTR [r11]", a => a.Vmovdqu16LoadZeroMasked(3, Mem.At(Gpr.R11), 2)),
        ("vmovdqu16 zmm17{k1}{z},ZMMWORD PTR [r8+0x40]", a => a.Vmovdqu16LoadZeroMasked(17, Mem.At(Gpr.R8, 64), 1)),
        ("push rbx", a => a.Push(Gpr.Rbx)),
        ("push r15", a => a.Push(Gpr.R15)),
        ("pop rbp", a => a.Pop(Gpr.Rbp)),
        ("pop r12", a => a.Pop(Gpr.R12)),
        ("vpdpbusd zmm3,zmm24,ZMMWORD PTR [rdx+0xc0]", a => a.Vpdpbusd(3, 24, Mem.At(Gpr.Rdx, 192))),
        ("vpdpbusd zmm17,zmm2,ZMMWORD PTR [r9+rsi*1]", a => a.Vpdpbusd(17, 2, Mem.At(Gpr.R9, Gpr.Rsi, 1))),
        ("prefetcht0 BYTE PTR [r15]", a => a.Prefetcht0(Mem.At(Gpr.R15))),
        ("prefetcht0 BYTE PTR [r15+0xc0]", a => a.Prefetcht0(Mem.At(Gpr.R15, 192))),
        ("prefetcht0 BYTE PTR [rax+0x40]", a => a.Prefetcht0(Mem.At(Gpr.Rax, 64))),
        ("vpdpbusd zmm24,zmm16,zmm8", a => a.Vpdpbusd(24, 16, 8)),
        ("vpdpbusd zmm3,zmm19,zmm9", a => a.Vpdpbusd(3, 19, 9)),
        ("vfmadd231ps zmm0,zmm24,zmm11", a => a.Vfmadd231ps(0, 24, 11)),
        ("vfmadd231ps zmm17,zmm3,zmm30", a => a.Vfmadd231ps(17, 3, 30)),
        ("vmovaps zmm24,zmm10", a => a.Vmovaps(24, 10)),
        ("vmovaps zmm5,zmm27", a => a.Vmovaps(5, 27)),
        ("vcvtph2ps zmm22,YMMWORD PTR [r11+rax*1]", a => a.Vcvtph2ps(22, Mem.At(Gpr.R11, Gpr.Rax, 1))),
        ("vcvtph2ps zmm31,YMMWORD PTR [r12+rax*1+0x20]", a => a.Vcvtph2ps(31, Mem.At(Gpr.R12, Gpr.Rax, 1, 32))),
        ("vpbroadcastq zmm20,QWORD PTR [r11+rsi*1]", a => a.Vpbroadcastq(20, Mem.At(Gpr.R11, Gpr.Rsi, 1))),
        ("vpbroadcastq zmm1,QWORD PTR [rax+0x18]", a => a.Vpbroadcastq(1, Mem.At(Gpr.Rax, 24))),
        ("vpsrlw zmm17,ZMMWORD PTR [rcx+rsi*1],0x4", a => a.Vpsrlw(17, Mem.At(Gpr.Rcx, Gpr.Rsi, 1), 4)),
        ("vpsrlw zmm5,ZMMWORD PTR [r10+rsi*1+0x40],0x4", a => a.Vpsrlw(5, Mem.At(Gpr.R10, Gpr.Rsi, 1, 64), 4)),
        ("vpandd zmm16,zmm28,ZMMWORD PTR [r9+rsi*1]", a => a.Vpandd(16, 28, Mem.At(Gpr.R9, Gpr.Rsi, 1))),
        ("vpandd zmm3,zmm28,ZMMWORD PTR [rcx+0x40]", a => a.Vpandd(3, 28, Mem.At(Gpr.Rcx, 64))),
        ("vpxord zmm18,zmm28,ZMMWORD PTR [r8+rsi*1]", a => a.Vpxord(18, 28, Mem.At(Gpr.R8, Gpr.Rsi, 1))),
        ("vpxord zmm2,zmm9,ZMMWORD PTR [rax+0x80]", a => a.Vpxord(2, 9, Mem.At(Gpr.Rax, 128))),
        ("vpandd zmm21,zmm21,zmm31", a => a.Vpandd(21, 21, 31)),
        ("vcvtph2ps zmm22,ymm22", a => a.Vcvtph2ps(22, 22)),
        ("vcvtph2ps zmm3,ymm17", a => a.Vcvtph2ps(3, 17)),
        ("vpermps zmm22,zmm29,zmm22", a => a.Vpermps(22, 29, 22)),
        ("vcvtdq2ps zmm27,zmm27", a => a.Vcvtdq2ps(27, 27)),
        ("vcvtdq2ps zmm2,zmm19", a => a.Vcvtdq2ps(2, 19)),
        ("vmulps zmm27,zmm27,zmm22", a => a.Vmulps(27, 27, 22)),
        ("vfmadd231ps zmm0,zmm27,ZMMWORD PTR [rdx+0x80]", a => a.Vfmadd231ps(0, 27, Mem.At(Gpr.Rdx, 128))),
        ("vfmadd231ps zmm15,zmm3,ZMMWORD PTR [rdx+0x2c0]", a => a.Vfmadd231ps(15, 3, Mem.At(Gpr.Rdx, 704))),
        ("vpslld zmm24,ZMMWORD PTR [rdx+0xc0],0x10", a => a.Vpslld(24, Mem.At(Gpr.Rdx, 192), 16)),
        ("vpslld zmm3,ZMMWORD PTR [r9],0x10", a => a.Vpslld(3, Mem.At(Gpr.R9), 16)),
        ("mov rax,0xffffffffaaaaaaaa", a => a.Mov(Gpr.Rax, unchecked((int)0xAAAAAAAA))),
        ("mov r10,0x7b", a => a.Mov(Gpr.R10, 123)),
        ("vpbroadcastd zmm22,DWORD PTR [r12+rax*1]", a => a.Vpbroadcastd(22, Mem.At(Gpr.R12, Gpr.Rax, 1))),
        ("vmulps zmm24,zmm28,ZMMWORD PTR [r10+0x40]", a => a.Vmulps(24, 28, Mem.At(Gpr.R10, 64))),
        ("vmulps zmm3,zmm9,ZMMWORD PTR [rdx]", a => a.Vmulps(3, 9, Mem.At(Gpr.Rdx))),
        ("vmovups zmm23{k1}{z},ZMMWORD PTR [r11+r8*2+0xc0]", a => a.VmovupsLoadZeroMasked(23, Mem.At(Gpr.R11, Gpr.R8, 2, 192), 1)),
        ("vmovups zmm2{k3}{z},ZMMWORD PTR [rax]", a => a.VmovupsLoadZeroMasked(2, Mem.At(Gpr.Rax), 3)),
    };

    public static IEnumerable<object[]> Cases() => _cases.Select(c => new object[] { c.Expected });

    [Theory]
    [MemberData(nameof(Cases))]
    public void Instruction_disassembles_to_the_expected_text(string expected)
    {
        var a = new X86Assembler();
        _cases.Single(c => c.Expected == expected).Emit(a);
        var code = a.ToArray();
        var lines = Disassemble(code);
        Assert.True(lines.Count == 1, $"expected one instruction, objdump read {lines.Count}: {string.Join(" | ", lines.Select(l => l.Text))}");
        Assert.Equal(expected, lines[0].Text);
        Assert.Equal(code.Length, lines[0].Bytes);
    }

    [Fact]
    public void Jumps_reach_their_labels_forwards_and_backwards()
    {
        var a = new X86Assembler();
        int back = a.NewLabel(), forward = a.NewLabel();
        a.Place(back);
        a.Dec(Gpr.Rcx);
        a.Jnz(back);
        a.Jz(forward);
        a.Test(Gpr.Rax);
        a.Place(forward);
        a.Ret();
        var lines = Disassemble(a.ToArray());
        Assert.Equal("jne 0x0", lines[1].Text);
        Assert.Equal("ret", lines[4].Text);
        Assert.Equal($"je 0x{lines[4].Offset:x}", lines[2].Text);
    }

    [Fact]
    public void Kernel_argument_offsets_match_the_struct_layout()
    {
        // The generated code reads Bf16TileArgs by these byte offsets.
        foreach (var (field, offset) in Bf16TileKernel.ArgumentOffsets)
            Assert.Equal(offset, (int)System.Runtime.InteropServices.Marshal.OffsetOf<Bf16TileArgs>(field));
        Assert.Equal(typeof(Bf16TileArgs).GetFields().Length, Bf16TileKernel.ArgumentOffsets.Count);
    }

    [Fact]
    public void Row_kernel_argument_offsets_match_the_struct_layout()
    {
        foreach (var (field, offset) in Bf16RowsKernel.ArgumentOffsets)
            Assert.Equal(offset, (int)System.Runtime.InteropServices.Marshal.OffsetOf<Bf16RowsArgs>(field));
        Assert.Equal(typeof(Bf16RowsArgs).GetFields().Length, Bf16RowsKernel.ArgumentOffsets.Count);
    }

    [Fact]
    public void Quantized_row_kernel_argument_offsets_match_the_struct_layout()
    {
        foreach (var (field, offset) in QuantRowsKernel.ArgumentOffsets)
            Assert.Equal(offset, (int)System.Runtime.InteropServices.Marshal.OffsetOf<QuantRowsArgs>(field));
        Assert.Equal(typeof(QuantRowsArgs).GetFields().Length, QuantRowsKernel.ArgumentOffsets.Count);
    }

    [Fact]
    public void Quantized_row_kernels_run_where_the_cpu_has_vnni()
    {
        // The products' tests reach the generated kernels only where this holds; on this project's
        // machines (AVX512-VNNI) it must.
        bool vnni = File.Exists("/proc/cpuinfo") && File.ReadAllText("/proc/cpuinfo").Contains(" avx512_vnni");
        if (Environment.GetEnvironmentVariable("SLOWFAST_NO_JIT") != "1" && OperatingSystem.IsLinux() && vnni)
            Assert.True(QuantRowsKernel.IsSupported);
    }

    [Fact]
    public void Every_generated_row_kernel_disassembles_cleanly()
    {
        for (int rows = 1; rows <= Bf16RowsKernel.MaxRows; rows++)
            for (int nw = 1; nw <= Bf16RowsKernel.WeightRowsFor(rows); nw++)
                foreach (bool tail in new[] { false, true })
                {
                    var code = Bf16RowsKernel.Generate(rows, nw, tail);
                    var lines = Disassemble(code);
                    Assert.DoesNotContain(lines, l => l.Text.Contains("(bad)"));
                    Assert.Equal(code.Length, lines.Sum(l => l.Bytes));
                    // rows × nw products per whole step, and again for the masked tail.
                    Assert.Equal(rows * nw * (tail ? 2 : 1), lines.Count(l => l.Text.StartsWith("vdpbf16ps")));
                    Assert.Equal(tail ? nw : 0, lines.Count(l => l.Text.StartsWith("vmovdqu16")));
                    Assert.Equal(rows * nw, lines.Count(l => l.Text.StartsWith("vmovups ZMMWORD PTR")));
                    Assert.Equal("ret", lines[^1].Text);
                }
    }

    [Fact]
    public void Every_generated_quantized_row_kernel_disassembles_cleanly()
    {
        foreach (var format in new[] { Quantization.BlockFormat.Q8_0, Quantization.BlockFormat.Q4_0 })
            for (int rows = 1; rows <= QuantRowsKernel.MaxRows; rows++)
                for (int nw = 1; nw <= QuantRowsKernel.MaxWeightRows; nw++)
                foreach (bool groups in rows == 1 ? new[] { false, true } : new[] { false })
                foreach (var prefetch in Enum.GetValues<QuantPrefetch>())
                {
                    var code = QuantRowsKernel.Generate(format, rows, nw, prefetch, groups);
                    var lines = Disassemble(code);
                    Assert.DoesNotContain(lines, l => l.Text.Contains("(bad)"));
                    Assert.Equal(code.Length, lines.Sum(l => l.Bytes));
                    bool q4 = format == Quantization.BlockFormat.Q4_0;
                    // Steps per loop trip: with scale groups, one 32-byte load of scales per weight row.
                    int steps = groups ? QuantRowsKernel.ScaleLoadSteps(format) : 1;
                    // Q4_0: the low and the high nibbles of each weight row, multiplied by every input row.
                    Assert.Equal(steps * rows * nw * (q4 ? 2 : 1), lines.Count(l => l.Text.StartsWith("vpdpbusd")));
                    Assert.Equal(q4 ? steps * nw : 0, lines.Count(l => l.Text.StartsWith("vpsrlw")));
                    Assert.Equal(nw, lines.Count(l => l.Text.StartsWith("vcvtph2ps")));
                    Assert.Equal(steps * nw, lines.Count(l => l.Text.StartsWith("vpermps")));
                    // Per weight line, one L1 prefetch (the row ahead) unless None, one L2 prefetch (the groups ahead) with RowAndGroups.
                    Assert.Equal(prefetch == QuantPrefetch.RowAndGroups ? steps * nw : 0, lines.Count(l => l.Text.StartsWith("prefetcht1")));
                    Assert.Equal(prefetch != QuantPrefetch.None ? steps * nw : 0, lines.Count(l => l.Text.StartsWith("prefetcht0")));
                    // Scale groups multiply weight and input scales once per group, not per product.
                    Assert.Equal(groups ? nw : steps * rows * nw, lines.Count(l => l.Text.StartsWith("vmulps")));
                    Assert.Equal(6, lines.Count(l => l.Text.StartsWith("push")));
                    Assert.Equal(6, lines.Count(l => l.Text.StartsWith("pop")));
                    Assert.Equal("ret", lines[^1].Text);
                }
    }

    [Fact]
    public void Unplaced_label_is_an_error()
    {
        var a = new X86Assembler();
        a.Jz(a.NewLabel());
        Assert.Throws<InvalidOperationException>(() => a.ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Every_generated_tile_kernel_disassembles_cleanly(bool widened)
    {
        // Every byte must decode, and to no "(bad)" instruction, for each variant the GEMM can ask for.
        var arithmetic = widened ? Bf16TileKernel.Arithmetic.WidenedFma : Bf16TileKernel.Arithmetic.DotProduct;
        for (int rows = 1; rows <= (widened ? Bf16TileKernel.WidenedMaxRows : Bf16TileKernel.MaxRows); rows++)
            for (int groups = 1; groups <= 4; groups++)
                foreach (bool masked in new[] { false, true })
                    foreach (var sum in Enum.GetValues<Bf16TileKernel.Sum>())
                    {
                        var code = Bf16TileKernel.Generate(rows, groups, masked, sum, arithmetic);
                        var lines = Disassemble(code);
                        Assert.DoesNotContain(lines, l => l.Text.Contains("(bad)"));
                        Assert.Equal(code.Length, lines.Sum(l => l.Bytes));
                        // Only the stored groups are computed: 4 unrolled + 1 tail k pair, each rows × groups products
                        // (vdpbf16ps: one instruction; widened: two FMAs on registers, A's odd and even value each
                        // broadcast once a row, and each group's weights widened once for all rows: a shift and a
                        // masked load).
                        if (!widened) Assert.Equal(rows * groups * 5, lines.Count(l => l.Text.StartsWith("vdpbf16ps")));
                        else
                        {
                            Assert.DoesNotContain(lines, l => l.Text.StartsWith("vdpbf16ps"));
                            Assert.Equal(rows * groups * 5 * 2, lines.Count(l => System.Text.RegularExpressions.Regex.IsMatch(l.Text, @"^vfmadd231ps zmm\d+,zmm\d+,zmm\d+$")));
                            Assert.Equal(rows * 5 * 2, lines.Count(l => l.Text.StartsWith("vpbroadcastd")));
                            Assert.Equal(groups * 5, lines.Count(l => l.Text.StartsWith("vpslld") && l.Text.EndsWith(",0x10")));
                            Assert.Equal(groups * 5, lines.Count(l => l.Text.StartsWith("vmovdqu16") && l.Text.Contains("{k2}{z}")));
                        }
                        Assert.Equal(rows * groups, lines.Count(l => l.Text.StartsWith("vmovups ZMMWORD PTR")));
                        // C or the bias is added once per stored register; a tile on its own adds nothing.
                        Assert.Equal(sum == Bf16TileKernel.Sum.Alone ? 0 : rows * groups, lines.Count(l => l.Text.StartsWith("vaddps")));
                        // One line of the next weights brought toward L2 per main-loop trip, through rbx, which is callee-saved.
                        Assert.Single(lines, l => l.Text.StartsWith("prefetcht1") && l.Text.EndsWith("[rbx]"));
                        Assert.Single(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l.Text, @"^push\s+rbx$"));
                        Assert.Single(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l.Text, @"^pop\s+rbx$"));
                        Assert.Equal("ret", lines[^1].Text);
                    }
    }

    [Fact]
    public void Quantized_tile_kernel_argument_offsets_match_the_struct_layout()
    {
        foreach (var (name, offset) in QuantTileKernel.ArgumentOffsets)
            Assert.Equal(offset, (int)System.Runtime.InteropServices.Marshal.OffsetOf<QuantTileArgs>(name));
        Assert.Equal(QuantTileKernel.ArgumentOffsets.Count, typeof(QuantTileArgs).GetFields().Length);
    }

    [Fact]
    public void Int8_tile_kernel_argument_offsets_match_the_struct_layout()
    {
        foreach (var (name, offset) in Int8TileKernel.ArgumentOffsets)
            Assert.Equal(offset, (int)System.Runtime.InteropServices.Marshal.OffsetOf<Int8TileArgs>(name));
        Assert.Equal(Int8TileKernel.ArgumentOffsets.Count, typeof(Int8TileArgs).GetFields().Length);
    }

    [Fact]
    public void Both_tile_kernels_read_strips_of_the_gemms_width()
    {
        Assert.Equal(Kernels.MatMul.BlockedGemm.Strip, Bf16TileKernel.Columns);
        Assert.Equal(Kernels.MatMul.BlockedGemm.Strip, QuantTileKernel.StripColumns);
        Assert.Equal(0, QuantTileKernel.StripColumns % QuantTileKernel.Columns);
    }

    [Fact]
    public void Every_generated_quantized_tile_kernel_disassembles_cleanly()
    {
        for (int rows = 1; rows <= QuantTileKernel.MaxRows; rows++)
            for (int groups = 1; groups <= 4; groups++)
                foreach (bool masked in new[] { false, true })
                    foreach (bool add in new[] { false, true })
                    {
                        var code = QuantTileKernel.Generate(rows, groups, masked, add);
                        var lines = Disassemble(code);
                        Assert.DoesNotContain(lines, l => l.Text.Contains("(bad)"));
                        Assert.Equal(code.Length, lines.Sum(l => l.Bytes));
                        // Per block: 8 quads of rows × groups integer products, then one conversion and fma each.
                        Assert.Equal(rows * groups * 8, lines.Count(l => l.Text.StartsWith("vpdpbusd")));
                        Assert.Equal(rows * groups, lines.Count(l => l.Text.StartsWith("vcvtdq2ps")));
                        Assert.Equal(rows * groups, lines.Count(l => l.Text.StartsWith("vfmadd231ps")));
                        Assert.Equal(rows * groups, lines.Count(l => l.Text.StartsWith("vmovups ZMMWORD PTR")));
                        // Loads: each quad's weight vectors, and C when continuing a product.
                        Assert.Equal(8 * groups + (add ? rows * groups : 0), lines.Count(l => l.Text.StartsWith("vmovups zmm")));
                        Assert.Equal("push rbx", lines[0].Text);
                        Assert.Equal("ret", lines[^1].Text);
                    }
    }

    internal sealed record Line(long Offset, int Bytes, string Text);

    /// <summary>objdump's Intel-syntax reading of raw x86-64 code: offset, byte count and text per instruction.</summary>
    internal static List<Line> Disassemble(byte[] code)
    {
        string path = Path.Combine(Path.GetTempPath(), $"slowfast-jit-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, code);
        try
        {
            var psi = new ProcessStartInfo("objdump", ["-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", "--insn-width=16", path])
            {
                RedirectStandardOutput = true, RedirectStandardError = true,
            };
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, "objdump failed: " + p.StandardError.ReadToEnd());
            var lines = new List<Line>();
            // "   1f:\t62 f2 ... \tvdpbf16ps zmm0,zmm24,zmm28"
            foreach (Match m in Regex.Matches(output, @"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$", RegexOptions.Multiline))
            {
                string text = Regex.Replace(m.Groups[3].Value.Trim(), @"\s+", " ");
                text = Regex.Replace(text, @"^(\S+) ", "$1 ");
                lines.Add(new Line(Convert.ToInt64(m.Groups[1].Value, 16), m.Groups[2].Value.Trim().Split(' ').Length, text));
            }
            return lines;
        }
        finally { File.Delete(path); }
    }
}
