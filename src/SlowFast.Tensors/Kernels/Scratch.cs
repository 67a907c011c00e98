namespace SlowFast.Tensors.Kernels;

/// <summary>
/// Per-thread reusable float buffers for kernels, allocated on the pinned object heap so raw
/// pointers to them stay valid (large ones on huge pages, <see cref="HugePages"/>). Each kernel owns its own [ThreadStatic] slot; a buffer only grows.
/// </summary>
internal static unsafe class Scratch
{
    /// <summary>A pointer to at least <paramref name="count"/> floats held in <paramref name="slot"/>.</summary>
    public static float* Get(ref float[]? slot, long count)
    {
        if (slot == null || slot.Length < count)
        {
            long size = Math.Max(count, (slot?.Length ?? 0) * 3L / 2);
            // 64 floats of slack so callers may align to 64 bytes.
            slot = HugePages.AllocateUninitialized<float>(checked((int)size + 64));
        }
        fixed (float* p = slot) return p; // pinned-heap arrays never move
    }

    /// <summary>Rounds <paramref name="p"/> up to a 64-byte boundary (needs the 64-float slack above).</summary>
    public static float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);
}
