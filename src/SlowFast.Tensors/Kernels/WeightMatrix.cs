using System.Runtime.InteropServices;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// A weight matrix in nn.Linear layout: <see cref="Rows"/> = N output features, <see cref="Cols"/> = K
/// input features, row-major, stored as F32, BF16 or F16 — usually straight inside a memory-mapped
/// checkpoint. Kernels convert elements to float32 in registers or in small packed panels; the one
/// whole copy a WeightMatrix may carry is its strips packed for the bfloat16 GEMM (<see cref="Bf16Strips"/>).
/// </summary>
/// <remarks>
/// A block-quantized matrix (<see cref="Format"/> set) holds its integers at <see cref="Data"/>
/// (<see cref="RowBytes"/> a row, DType U8) and one float16 scale per 32-element block at
/// <see cref="Scales"/> ([Rows, Cols/32]); products read both as stored (<see cref="MatMul.Linear(ReadOnlySpan{float}, int, WeightMatrix, ReadOnlySpan{float}, Span{float})"/>).
/// Like <see cref="TensorView"/>, a WeightMatrix does not keep its memory alive (except the one made by
/// <see cref="FromFloats"/>, which holds a reference to its array).
/// </remarks>
public readonly unsafe struct WeightMatrix
{
    /// <summary>Element type of the stored weights (F32, BF16 or F16).</summary>
    public readonly DType DType;
    /// <summary>N: output features.</summary>
    public readonly int Rows;
    /// <summary>K: input features (elements per row).</summary>
    public readonly int Cols;
    /// <summary>First byte of row 0.</summary>
    public readonly byte* Data;
    /// <summary>The block format of a quantized matrix; null for F32/BF16/F16 elements.</summary>
    public readonly BlockFormat? Format;
    /// <summary>A quantized matrix's float16 scales, [Rows, Cols/32] row-major; null otherwise.</summary>
    public readonly Half* Scales;
    /// <summary>
    /// The same weights packed once for the bfloat16 GEMM (<see cref="MatMul.PackForBFloat16"/>), or null:
    /// products in bfloat16 arithmetic over many rows read these strips instead of packing
    /// <see cref="Data"/> anew on every call. <see cref="Data"/> stays valid for every other path.
    /// </summary>
    public readonly uint* Bf16Strips;
    /// <summary>Whether <see cref="Bf16Strips"/> holds the weights packed for the bfloat16 GEMM.</summary>
    public bool IsPackedForBFloat16 => Bf16Strips != null;
    // Keeps a managed (pinned) array or native block alive for matrices that own their memory.
    private readonly object? _owner;

    public WeightMatrix(DType dtype, int rows, int cols, byte* data, object? owner = null)
    {
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
            throw new UserError($"weight matrices must be F32, BF16 or F16, not {dtype}");
        if (rows <= 0 || cols <= 0) throw new ArgumentOutOfRangeException(nameof(rows), $"weight matrix shape [{rows}, {cols}] is empty");
        DType = dtype;
        Rows = rows;
        Cols = cols;
        Data = data;
        _owner = owner;
    }

    /// <summary>
    /// A block-quantized matrix over <paramref name="payload"/> (<see cref="BlockFormats.RowBytes"/> a row)
    /// and <paramref name="scales"/> (Cols/32 a row); Cols must be a multiple of 32.
    /// </summary>
    public WeightMatrix(BlockFormat format, int rows, int cols, byte* payload, Half* scales, object? owner = null)
    {
        if (rows <= 0 || cols <= 0) throw new ArgumentOutOfRangeException(nameof(rows), $"weight matrix shape [{rows}, {cols}] is empty");
        if (cols % BlockFormats.BlockSize != 0)
            throw new ArgumentException($"a {format.Name()} matrix needs rows of whole {BlockFormats.BlockSize}-element blocks, not {cols}", nameof(cols));
        DType = DType.U8;
        Rows = rows;
        Cols = cols;
        Data = payload;
        Format = format;
        Scales = scales;
        _owner = owner;
    }

    /// <summary><paramref name="w"/> with its packed strips (kept alive, like w's own memory, by the result).</summary>
    internal WeightMatrix(WeightMatrix w, uint* bf16Strips, object stripsOwner)
    {
        this = w;
        Bf16Strips = bf16Strips;
        _owner = new[] { w._owner, stripsOwner };
    }

    public bool IsQuantized => Format != null;

    /// <summary>Bytes per stored element (of the payload: 1 for a quantized matrix, whose rows use <see cref="RowBytes"/>).</summary>
    public int ElementSize => DType.SizeOf();

    /// <summary>Stored bytes of one row (without a quantized matrix's scales).</summary>
    public long RowBytes => Format is BlockFormat f ? f.RowBytes(Cols) : (long)Cols * ElementSize;

    /// <summary>Total stored bytes, scales included (what a bandwidth-bound pass over the matrix reads).</summary>
    public long ByteLength => Rows * RowBytes + (IsQuantized ? (long)Rows * (Cols / BlockFormats.BlockSize) * 2 : 0);

    /// <summary>Address of row <paramref name="row"/>.</summary>
    public byte* RowPointer(int row) => Data + row * RowBytes;

    /// <summary>A quantized matrix's scales of row <paramref name="row"/>.</summary>
    public Half* RowScales(int row) => Scales + (long)row * (Cols / BlockFormats.BlockSize);

    /// <summary>
    /// Wraps a checkpoint tensor. 2-D tensors are [out, in]; higher ranks are flattened to
    /// [dim0, product of the rest] (a conv weight [Cout, Cin, kh, kw] becomes [Cout, Cin·kh·kw], which is
    /// what <see cref="Conv.PatchifyChw"/> patches multiply with).
    /// </summary>
    public static WeightMatrix From(TensorView view)
    {
        if (view.Rank < 2)
            throw new UserError($"tensor '{view.Name}' has shape {view.ShapeString}; a weight matrix needs at least 2 dimensions");
        if (view.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new UserError($"tensor '{view.Name}' is {view.DType}; weight matrices must be F32, BF16 or F16");
        long rows = view.Dim(0);
        long cols = view.ElementCount / Math.Max(1, rows);
        if (rows <= 0 || cols <= 0 || rows > int.MaxValue || cols > int.MaxValue)
            throw new UserError($"tensor '{view.Name}' has unsupported weight shape {view.ShapeString}");
        return new WeightMatrix(view.DType, (int)rows, (int)cols, view.Data);
    }

    /// <summary>
    /// An F32 weight matrix over a copy-free pinned array (tests, small computed weights). The
    /// array must hold at least rows·cols elements; it is kept alive by the returned value.
    /// </summary>
    public static WeightMatrix FromFloats(float[] data, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(data);
        if ((long)rows * cols > data.Length)
            throw new ArgumentException($"array of {data.Length} floats is too small for [{rows}, {cols}]", nameof(data));
        var pin = new PinnedArray(data);
        return new WeightMatrix(DType.F32, rows, cols, (byte*)pin.Pointer, pin);
    }

    /// <summary>
    /// A weight matrix over a pinned array of raw BF16 or F16 bits (tests and benchmarks).
    /// </summary>
    public static WeightMatrix FromHalfBits(ushort[] bits, DType dtype, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(bits);
        if (dtype is not (DType.BF16 or DType.F16)) throw new ArgumentException("dtype must be BF16 or F16", nameof(dtype));
        if ((long)rows * cols > bits.Length)
            throw new ArgumentException($"array of {bits.Length} elements is too small for [{rows}, {cols}]", nameof(bits));
        var pin = new PinnedArray(bits);
        return new WeightMatrix(dtype, rows, cols, (byte*)pin.Pointer, pin);
    }

    /// <summary>Converts row <paramref name="row"/>, columns [col, col + dst.Length), to float32.</summary>
    public void ReadRow(int row, int col, Span<float> dst)
    {
        if ((uint)row >= (uint)Rows || col < 0 || col + dst.Length > Cols) throw new ArgumentOutOfRangeException(nameof(row));
        if (Format is BlockFormat f)
        {
            // Whole blocks around the range, then the range.
            const int B = BlockFormats.BlockSize;
            int first = col / B * B, end = (col + dst.Length + B - 1) / B * B;
            Span<float> blocks = end - first <= 1024 ? stackalloc float[end - first] : new float[end - first];
            var payload = new ReadOnlySpan<byte>(RowPointer(row), (int)RowBytes);
            var scales = new ReadOnlySpan<Half>(RowScales(row), Cols / B);
            BlockQuantizer.DequantizeRange(f, payload, scales, first, blocks);
            blocks.Slice(col - first, dst.Length).CopyTo(dst);
            return;
        }
        WeightConvert.ToFloat(DType, RowPointer(row) + (long)col * ElementSize, dst);
    }

    private sealed class PinnedArray
    {
        private GCHandle _handle;
        public readonly void* Pointer;
        public PinnedArray(Array array)
        {
            _handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            Pointer = (void*)_handle.AddrOfPinnedObject();
        }
        ~PinnedArray() => _handle.Free();
    }
}
