using System.Runtime.InteropServices;

namespace SlowFast.Tensors.Kernels.Jit;

/// <summary>
/// Turns machine code into something callable: copies it into fresh pages from mmap, then makes
/// those pages read + execute (never writable and executable at once). Linux x86-64 only; the
/// pages live for the rest of the process, since generated kernels are cached forever.
/// </summary>
internal static unsafe partial class ExecutableMemory
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20;

    /// <summary>Whether this platform can run generated code at all.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>Copies <paramref name="code"/> into executable pages and returns their address.</summary>
    public static void* Install(ReadOnlySpan<byte> code)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("generated kernels need Linux on x86-64");
        nuint size = (nuint)((code.Length + 4095) & ~4095);
        void* p = mmap(null, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == (void*)-1) throw new OutOfMemoryException($"mmap of {size} bytes for generated code failed (errno {Marshal.GetLastPInvokeError()})");
        code.CopyTo(new Span<byte>(p, code.Length));
        if (mprotect(p, size, ProtRead | ProtExec) != 0)
            throw new InvalidOperationException($"mprotect to read+execute failed (errno {Marshal.GetLastPInvokeError()})");
        return p;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mprotect(void* addr, nuint length, int prot);
}
