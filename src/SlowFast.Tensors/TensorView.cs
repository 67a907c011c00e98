using System.Runtime.InteropServices;

namespace SlowFast.Tensors;

/// <summary>
/// A read-only tensor over memory someone else owns (usually a memory-mapped checkpoint): a pointer,
/// its element type and its shape, row-major. Views do not keep the memory alive: the
/// <see cref="IO.SafetensorsFile"/> they came from must outlive them.
/// </summary>
public readonly unsafe partial struct TensorView
{
    public readonly byte* Data;
    public readonly DType DType;
    private readonly long[] _shape;
    public readonly string Name;

    public TensorView(string name, byte* data, DType dtype, long[] shape)
    {
        Name = name;
        Data = data;
        DType = dtype;
        _shape = shape;
    }

    public ReadOnlySpan<long> Shape => _shape;
    public int Rank => _shape.Length;
    public long ElementCount
    {
        get { long n = 1; foreach (var d in _shape) n *= d; return n; }
    }
    public long ByteLength => ElementCount * DType.SizeOf();

    public long Dim(int i) => _shape[i < 0 ? _shape.Length + i : i];

    public string ShapeString => "[" + string.Join(", ", _shape) + "]";

    /// <summary>
    /// Drops this tensor's pages from the process's resident set, for a view of a read-only file
    /// mapping that will not be read again soon (a weight just quantized or copied): the page cache
    /// keeps them, and a later read maps them back. Linux only; elsewhere, and on failure, nothing happens.
    /// </summary>
    public void ReleasePages()
    {
        if (!OperatingSystem.IsLinux() || ByteLength == 0) return;
        const long Page = 4096, DontNeed = 4;   // MADV_DONTNEED
        long start = (long)Data / Page * Page, end = ((long)Data + ByteLength + Page - 1) / Page * Page;
        _ = madvise((void*)start, (nuint)(end - start), (int)DontNeed);
    }

    [LibraryImport("libc")]
    private static partial int madvise(void* address, nuint length, int advice);

    /// <summary>The raw stored bytes (tensors over 2 GiB must be read with <see cref="Data"/> directly).</summary>
    public ReadOnlySpan<byte> Bytes => new(Data, checked((int)ByteLength));

    /// <summary>The elements as <typeparamref name="T"/> (e.g. float for F32, ushort for BF16/F16).</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        if (sizeof(T) != DType.SizeOf())
            throw new InvalidOperationException($"tensor '{Name}' is {DType}; cannot view it as {typeof(T).Name}");
        return new ReadOnlySpan<T>(Data, checked((int)ElementCount));
    }

    /// <summary>Converts elements [start, start + dst.Length) to float32.</summary>
    public void ToFloat(long start, Span<float> dst)
    {
        if (start < 0 || start + dst.Length > ElementCount)
            throw new ArgumentOutOfRangeException(nameof(start));
        switch (DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)Data + start, dst.Length).CopyTo(dst);
                break;
            case DType.BF16:
                {
                    var src = new ReadOnlySpan<ushort>((ushort*)Data + start, dst.Length);
                    for (int i = 0; i < src.Length; i++) dst[i] = DTypes.BF16ToFloat(src[i]);
                    break;
                }
            case DType.F16:
                {
                    var src = new ReadOnlySpan<Half>((Half*)Data + start, dst.Length);
                    for (int i = 0; i < src.Length; i++) dst[i] = (float)src[i];
                    break;
                }
            case DType.F64:
                {
                    var src = new ReadOnlySpan<double>((double*)Data + start, dst.Length);
                    for (int i = 0; i < src.Length; i++) dst[i] = (float)src[i];
                    break;
                }
            default:
                throw new UserError($"tensor '{Name}' has dtype {DType}, which is not a floating-point type");
        }
    }

    /// <summary>A new float32 copy of the whole tensor (for small tensors: norms, biases, fixtures).</summary>
    public float[] ToFloatArray()
    {
        var a = new float[checked((int)ElementCount)];
        ToFloat(0, a);
        return a;
    }
}
