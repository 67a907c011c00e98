using System.Runtime.InteropServices;

namespace SlowFast.Tensors;

/// <summary>
/// Large buffers made once and kept (packed weights, the vision tower's activations, kernel scratch,
/// an LLM quantized as it loads) with Linux asked for transparent huge pages (2 MiB) on them before
/// anything touches them. On the project's VMs the first touch of fresh 4 KiB pages is most of what
/// making such a buffer costs (docs/benchmarks/vision-2026-12-02-hugepages.md). A checkpoint's file
/// mapping is advised too, so its pages read from disk come in huge pages. Debian's default THP
/// mode is "madvise", where only advised ranges get them; under "never", on other systems, or if the
/// advice fails, the buffers are ordinary ones and nothing else changes.
/// </summary>
public static unsafe partial class HugePages
{
    /// <summary>The huge page size on x86-64 Linux.</summary>
    public const long Size = 2L << 20;

    /// <summary>A pinned array of <paramref name="length"/> elements, not cleared, its whole huge pages advised.</summary>
    public static T[] AllocateUninitialized<T>(int length) where T : unmanaged
    {
        var array = GC.AllocateUninitializedArray<T>(length, pinned: true);
        Advise(array);
        return array;
    }

    /// <summary>A pinned array of <paramref name="length"/> zeros, its whole huge pages advised before the zeros are written.</summary>
    public static T[] AllocateZeroed<T>(long length) where T : unmanaged
    {
        var array = AllocateUninitialized<T>(checked((int)length));
        Array.Clear(array);
        return array;
    }

    /// <summary>Advises the whole 2 MiB pages inside a pinned array (smaller arrays are left alone).</summary>
    private static void Advise<T>(T[] array) where T : unmanaged
    {
        fixed (T* p = array) Advise(p, (long)array.Length * sizeof(T));   // pinned: the address stays
    }

    /// <summary>
    /// Advises the whole 2 MiB pages inside <paramref name="bytes"/> bytes at <paramref name="start"/> that
    /// nothing has touched yet: a fresh large allocation, or a file mapping, whose pages read from disk then
    /// come in 2 MiB folios (pages the page cache already holds stay as they are). Under 4 MiB nothing is done.
    /// </summary>
    public static void Advise(void* start, long bytes)
    {
        if (!OperatingSystem.IsLinux() || bytes < 2 * Size) return;
        long first = ((long)start + Size - 1) & ~(Size - 1), end = ((long)start + bytes) & ~(Size - 1);
        if (end > first) _ = madvise((void*)first, (nuint)(end - first), HugePageAdvice);
    }

    private const int HugePageAdvice = 14;   // MADV_HUGEPAGE

    [LibraryImport("libc")]
    private static partial int madvise(void* address, nuint length, int advice);
}
