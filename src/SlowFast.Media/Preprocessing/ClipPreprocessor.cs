using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace SlowFast.Media;

/// <summary>
/// Turns an RGB24 frame into the channels-first float tensor the vision tower sees, exactly as the
/// reference's Hugging Face <c>CLIPImageProcessor</c> (size = crop = S, resample = PIL BICUBIC) does:
/// resize so the shorter side is S (longer side int(S * long / short)) with Pillow's 8-bit bicubic,
/// centre-crop S x S at ((H - S) / 2, (W - S) / 2) rounded down, scale by 1/255, normalise with the
/// CLIP mean/std. Only the cropped pixels are computed, which gives the same bytes as resizing
/// everything and cropping afterwards.
/// An instance keeps its resampling weights and scratch buffers between frames of the same size,
/// so it is not thread-safe: use one per thread.
/// </summary>
public sealed class ClipPreprocessor
{
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    public int Size { get; }
    public AspectMode Aspect { get; }
    public IReadOnlyList<float> Mean { get; }
    public IReadOnlyList<float> Std { get; }

    /// <summary>Normalised value of each uint8 per channel: lut[c * 256 + u].</summary>
    private readonly float[] _lut = new float[3 * 256];
    private readonly byte[] _padFill = new byte[3];

    // Cached for the last frame geometry.
    private int _cachedWidth = -1, _cachedHeight = -1;
    private PilBicubicAxis? _horizontal, _vertical;
    private int _rowFirst, _rowEnd;
    private byte[] _rows = [];
    private byte[] _square = [];
    private byte[] _cropped = [];
    private int[] _accumulator = [];

    public ClipPreprocessor(int size, AspectMode aspect = AspectMode.Crop, float[]? mean = null, float[]? std = null)
    {
        if (size < 1 || size > 8192) throw new ArgumentOutOfRangeException(nameof(size), size, "input size must be 1..8192");
        mean ??= ClipMean;
        std ??= ClipStd;
        if (mean.Length != 3 || std.Length != 3) throw new ArgumentException("mean and std need 3 values (R, G, B)");
        Size = size;
        Aspect = aspect;
        Mean = mean;
        Std = std;
        for (int c = 0; c < 3; c++)
        {
            // HF rescales in float64 then casts to float32, and normalises in float32.
            for (int u = 0; u < 256; u++)
            {
                float scaled = (float)(u * (1.0 / 255.0));
                _lut[c * 256 + u] = (scaled - mean[c]) / std[c];
            }
            // The reference's expand2square fill: int(255 * mean) per channel.
            _padFill[c] = (byte)(int)(mean[c] * 255.0);
        }
    }

    /// <summary>Number of floats one frame produces: 3 * Size * Size.</summary>
    public int FrameLength => 3 * Size * Size;

    /// <summary>Preprocesses a packed RGB24 frame (row-major, 3 bytes per pixel) into <paramref name="chw"/> [3, S, S].</summary>
    public void Preprocess(ReadOnlySpan<byte> rgb, int width, int height, Span<float> chw)
    {
        if (chw.Length < FrameLength) throw new ArgumentException($"output needs {FrameLength} floats", nameof(chw));
        if (_cropped.Length != 3 * Size * Size) _cropped = new byte[3 * Size * Size];
        ResizeAndCrop(rgb, width, height, _cropped);
        int plane = Size * Size;
        var r = chw[..plane];
        var g = chw.Slice(plane, plane);
        var b = chw.Slice(2 * plane, plane);
        ReadOnlySpan<float> lutR = _lut.AsSpan(0, 256), lutG = _lut.AsSpan(256, 256), lutB = _lut.AsSpan(512, 256);
        ReadOnlySpan<byte> src = _cropped;
        for (int i = 0; i < plane; i++)
        {
            r[i] = lutR[src[3 * i]];
            g[i] = lutG[src[3 * i + 1]];
            b[i] = lutB[src[3 * i + 2]];
        }
    }

    /// <summary>Preprocesses a decoded frame.</summary>
    public void Preprocess(DecodedFrame frame, Span<float> chw) => Preprocess(frame.Rgb, frame.Width, frame.Height, chw);

    /// <summary>
    /// The uint8 part of the pipeline: (pad,) resize and crop into <paramref name="output"/> [S, S, 3]
    /// packed RGB. This is what the golden fixtures check.
    /// </summary>
    public void ResizeAndCrop(ReadOnlySpan<byte> rgb, int width, int height, Span<byte> output)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"frame size {width}x{height} is empty");
        if (rgb.Length < 3L * width * height) throw new ArgumentException($"a {width}x{height} RGB frame needs {3L * width * height} bytes, got {rgb.Length}");
        if (output.Length < 3 * Size * Size) throw new ArgumentException($"output needs {3 * Size * Size} bytes", nameof(output));

        if (Aspect == AspectMode.Pad && width != height)
        {
            int side = Math.Max(width, height);
            PadToSquare(rgb, width, height, side);
            rgb = _square.AsSpan(0, 3 * side * side);
            width = height = side;
        }
        Prepare(width, height);
        var horizontal = _horizontal!;
        var vertical = _vertical!;
        int S = Size;
        int rowCount = _rowEnd - _rowFirst;
        int rowStride = 3 * S;

        // Horizontal pass over just the source rows the kept output rows read, into uint8 rows
        // (Pillow stores the intermediate image as 8-bit too, which is where its rounding happens).
        Span<byte> rows = _rows.AsSpan(0, rowCount * rowStride);
        for (int r = 0; r < rowCount; r++)
        {
            var srcRow = rgb.Slice(3 * width * (_rowFirst + r), 3 * width);
            var dstRow = rows.Slice(r * rowStride, rowStride);
            if (horizontal.IsIdentity) srcRow.Slice(3 * horizontal.FirstOutput, rowStride).CopyTo(dstRow);
            else ResampleRow(srcRow, dstRow, horizontal);
        }

        // Vertical pass.
        if (vertical.IsIdentity)
        {
            rows.Slice((vertical.FirstOutput - _rowFirst) * rowStride, S * rowStride).CopyTo(output);
            return;
        }
        ResampleColumns(rows, output, vertical, _rowFirst, rowStride);
    }

    /// <summary>Horizontal pass for one row: each kept output pixel is a weighted sum of a few neighbouring source pixels.</summary>
    private static unsafe void ResampleRow(ReadOnlySpan<byte> src, Span<byte> dst, PilBicubicAxis axis)
    {
        int stride = axis.TapStride;
        fixed (byte* srcBase = src)
        fixed (byte* dstBase = dst)
        fixed (int* weightBase = axis.Weights)
        fixed (int* startBase = axis.Start)
        fixed (int* countBase = axis.Count)
        {
            int outputs = axis.Start.Length;
            for (int x = 0; x < outputs; x++)
            {
                int count = countBase[x];
                int* w = weightBase + x * stride;
                byte* s = srcBase + 3 * startBase[x];
                int r = PilBicubicAxis.Half, g = PilBicubicAxis.Half, b = PilBicubicAxis.Half;
                for (int k = 0; k < count; k++, s += 3)
                {
                    int wk = w[k];
                    r += s[0] * wk;
                    g += s[1] * wk;
                    b += s[2] * wk;
                }
                byte* d = dstBase + 3 * x;
                d[0] = PilBicubicAxis.Clip8(r);
                d[1] = PilBicubicAxis.Clip8(g);
                d[2] = PilBicubicAxis.Clip8(b);
            }
        }
    }

    /// <summary>Vertical pass; each output row is a weighted sum of whole intermediate rows.</summary>
    private void ResampleColumns(ReadOnlySpan<byte> rows, Span<byte> output, PilBicubicAxis axis, int rowFirst, int rowStride)
    {
        int stride = axis.TapStride;
        if (_accumulator.Length < rowStride) _accumulator = new int[rowStride];
        var accumulator = _accumulator.AsSpan(0, rowStride);
        for (int y = 0; y < axis.Start.Length; y++)
        {
            int start = axis.Start[y] - rowFirst, count = axis.Count[y];
            var w = axis.Weights.AsSpan(y * stride, count);
            accumulator.Fill(PilBicubicAxis.Half);
            for (int k = 0; k < count; k++)
                AccumulateRow(rows.Slice((start + k) * rowStride, rowStride), w[k], accumulator);
            var dst = output.Slice(y * rowStride, rowStride);
            for (int i = 0; i < rowStride; i++) dst[i] = PilBicubicAxis.Clip8(accumulator[i]);
        }
    }

    /// <summary>accumulator += row * weight, widening bytes to int32 (the inner loop of the vertical pass).</summary>
    private static void AccumulateRow(ReadOnlySpan<byte> row, int weight, Span<int> accumulator)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && row.Length >= 32)
        {
            var w = Vector256.Create(weight);
            ref byte src = ref MemoryMarshal.GetReference(row);
            ref int acc = ref MemoryMarshal.GetReference(accumulator);
            for (; i <= row.Length - 32; i += 32)
            {
                var bytes = Vector256.LoadUnsafe(ref src, (nuint)i);
                var (lo16, hi16) = Vector256.Widen(bytes);
                var (a, b) = Vector256.Widen(lo16);
                var (c, d) = Vector256.Widen(hi16);
                (Vector256.LoadUnsafe(ref acc, (nuint)i) + a.AsInt32() * w).StoreUnsafe(ref acc, (nuint)i);
                (Vector256.LoadUnsafe(ref acc, (nuint)(i + 8)) + b.AsInt32() * w).StoreUnsafe(ref acc, (nuint)(i + 8));
                (Vector256.LoadUnsafe(ref acc, (nuint)(i + 16)) + c.AsInt32() * w).StoreUnsafe(ref acc, (nuint)(i + 16));
                (Vector256.LoadUnsafe(ref acc, (nuint)(i + 24)) + d.AsInt32() * w).StoreUnsafe(ref acc, (nuint)(i + 24));
            }
        }
        for (; i < row.Length; i++) accumulator[i] += row[i] * weight;
    }

    private void PadToSquare(ReadOnlySpan<byte> rgb, int width, int height, int side)
    {
        int length = 3 * side * side;
        if (_square.Length < length) _square = new byte[length];
        var square = _square.AsSpan(0, length);
        for (int i = 0; i < side * side; i++)
        {
            square[3 * i] = _padFill[0];
            square[3 * i + 1] = _padFill[1];
            square[3 * i + 2] = _padFill[2];
        }
        int left = (side - width) / 2, top = (side - height) / 2;
        for (int y = 0; y < height; y++)
            rgb.Slice(3 * width * y, 3 * width).CopyTo(square.Slice(3 * (side * (top + y) + left)));
    }

    private void Prepare(int width, int height)
    {
        if (width == _cachedWidth && height == _cachedHeight) return;
        var (newWidth, newHeight) = ResizedSize(width, height, Size);
        _horizontal = new PilBicubicAxis(width, newWidth, (newWidth - Size) / 2, Size);
        _vertical = new PilBicubicAxis(height, newHeight, (newHeight - Size) / 2, Size);
        if (_vertical.IsIdentity)
        {
            _rowFirst = _vertical.FirstOutput;
            _rowEnd = _rowFirst + Size;
        }
        else
        {
            _rowFirst = _vertical.Start.Min();
            _rowEnd = Enumerable.Range(0, Size).Max(i => _vertical.Start[i] + _vertical.Count[i]);
        }
        int needed = (_rowEnd - _rowFirst) * 3 * Size;
        if (_rows.Length < needed) _rows = new byte[needed];
        _cachedWidth = width;
        _cachedHeight = height;
    }

    /// <summary>HF's shortest-edge size: the short side becomes S, the long side int(S * long / short).</summary>
    public static (int Width, int Height) ResizedSize(int width, int height, int size)
    {
        int shortSide = Math.Min(width, height), longSide = Math.Max(width, height);
        int newLong = (int)((double)((long)size * longSide) / shortSide);
        return width <= height ? (size, newLong) : (newLong, size);
    }
}
