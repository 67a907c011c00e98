using System.Globalization;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// Large kept buffers are pinned and advised for transparent huge pages (<see cref="HugePages"/>): the
/// kernel marks the advised range "hg" in /proc/self/smaps, whether or not it then finds huge pages.
/// </summary>
public unsafe class HugePagesTests
{
    private const string ThpSetting = "/sys/kernel/mm/transparent_hugepage/enabled";

    /// <summary>The VmFlags of the mapping holding <paramref name="address"/>.</summary>
    private static string[] VmFlags(long address)
    {
        bool inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            if (dash > 0 && line.Length > dash + 1 && line.IndexOf(' ') > dash
                && long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, null, out long start)
                && long.TryParse(line.AsSpan(dash + 1, line.IndexOf(' ') - dash - 1), NumberStyles.HexNumber, null, out long end))
                inside = address >= start && address < end;
            else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
                return line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        }
        throw new InvalidOperationException($"no mapping holds 0x{address:x}");
    }

    [Fact]
    public void A_large_buffer_is_advised_for_huge_pages()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(ThpSetting)) return;
        var large = HugePages.AllocateUninitialized<float>(3 << 20);   // 12 MiB
        fixed (float* p = large)
        {
            long inner = ((long)p + HugePages.Size - 1) & ~(HugePages.Size - 1);   // a whole 2 MiB page inside it
            Assert.Contains("hg", VmFlags(inner));
        }
        GC.KeepAlive(large);
    }

    [Fact]
    public void Fresh_native_memory_is_advised_too()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(ThpSetting)) return;
        long bytes = 12L << 20;
        byte* p = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            HugePages.Advise(p, bytes);
            long inner = ((long)p + HugePages.Size - 1) & ~(HugePages.Size - 1);
            Assert.Contains("hg", VmFlags(inner));
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(p);
        }
    }

    [Fact]
    public void Zeroed_buffers_are_zeros_of_the_asked_length()
    {
        var z = HugePages.AllocateZeroed<float>(5 << 20);
        Assert.Equal(5 << 20, z.Length);
        Assert.All(new[] { 0, 1 << 20, (5 << 20) - 1 }, i => Assert.Equal(0f, z[i]));
        Assert.True(z.AsSpan().IndexOfAnyExcept(0f) < 0);
    }
}
