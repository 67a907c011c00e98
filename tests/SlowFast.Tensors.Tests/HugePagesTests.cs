namespace SlowFast.Tensors.Tests;

/// <summary>
/// Large kept buffers are pinned and advised for transparent huge pages (<see cref="HugePages"/>): the
/// kernel marks the advised range "hg" in /proc/self/smaps, whether or not it then finds huge pages.
/// </summary>
public unsafe class HugePagesTests
{
    private const string ThpSetting = "/sys/kernel/mm/transparent_hugepage/enabled";

    [Fact]
    public void A_large_buffer_is_advised_for_huge_pages()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(ThpSetting)) return;
        var large = HugePages.AllocateUninitialized<float>(3 << 20);   // 12 MiB
        fixed (float* p = large)
        {
            long inner = ((long)p + HugePages.Size - 1) & ~(HugePages.Size - 1);   // a whole 2 MiB page inside it
            Assert.Contains("hg", Smaps.VmFlags(inner));
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
            Assert.Contains("hg", Smaps.VmFlags(inner));
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
