using System.Text;
using System.Text.Json;
using SlowFast.Tensors;
using SlowFast.Tensors.IO;
using SlowFast.Tensors.Kernels;
using SlowFast.Tensors.Quantization;

namespace SlowFast.Model.Quantization;

/// <summary>
/// Writes a block-quantized copy of a checkpoint (<c>slowfast quantize</c>): the linear weights that
/// <see cref="CheckpointQuantization.IsQuantizable"/> picks become NAME (U8 integers) + NAME.scales
/// (F16), every other tensor is copied as stored, config.json gains a <c>"quantization"</c> object and
/// the other files (tokenizer, generation config) are copied.
/// </summary>
/// <remarks>
/// Streams tensor by tensor from the memory-mapped source, a band of rows at a time; a tensor's scales
/// (1/16 of its BF16 bytes) are the only thing held until they are written right after it. The source
/// pages of a tensor are dropped from the process once it is written, so the resident set stays small.
/// </remarks>
public static partial class CheckpointQuantizer
{
    public sealed record Summary(int QuantizedTensors, long SourceBytes, long WrittenBytes, IReadOnlyList<string> Files);

    /// <summary>Rows quantized per band (in parallel) before they are written.</summary>
    private const int BandRows = 512;

    public static Summary Run(string sourceDir, string outDir, BlockFormat format, bool includeVision, TextWriter? log = null,
        long maxShardBytes = 5_000_000_000)
    {
        if (Path.GetFullPath(sourceDir).TrimEnd('/') == Path.GetFullPath(outDir).TrimEnd('/'))
            throw new UserError($"quantize: --out must be another directory than the model ({outDir})");
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new UserError($"quantize: {outDir} exists and is not empty");
        using var model = ModelDirectory.Open(sourceDir);
        if (model.Quantization != null)
            throw new UserError($"{sourceDir}: is quantized already ({model.Quantization.Format.Name()}); quantize its original weights instead");

        var chosen = model.Layout.Where(w => model.Has(w.Name) && CheckpointQuantization.IsQuantizable(w, includeVision))
            .Select(w => w.Name).ToHashSet(StringComparer.Ordinal);
        var specs = new List<TensorSpec>();
        foreach (var e in model.Weights.Entries)
        {
            if (chosen.Contains(e.Name))
            {
                long rows = e.Shape[0], cols = e.Shape[1];
                specs.Add(new TensorSpec(e.Name, DType.U8, [rows, format.RowBytes(cols)]));
                specs.Add(new TensorSpec(QuantizedWeights.ScalesName(e.Name), DType.F16, [rows, cols / BlockFormats.BlockSize]));
            }
            else specs.Add(new TensorSpec(e.Name, e.DType, e.Shape.ToArray()));
        }

        Directory.CreateDirectory(outDir);
        var pendingScales = new Dictionary<string, Half[]>(StringComparer.Ordinal);
        int done = 0;
        var files = CheckpointWriter.Write(outDir, specs, (spec, stream) =>
        {
            if (chosen.Contains(spec.Name))
            {
                var source = model.Weights.Get(spec.Name);
                pendingScales[spec.Name] = WriteQuantized(WeightMatrix.From(source), format, stream);
                source.ReleasePages();
                done++;
                if (log != null && (done % 32 == 0 || done == chosen.Count)) log.WriteLine($"  {done}/{chosen.Count} matrices quantized");
            }
            else if (spec.Name.EndsWith(CheckpointQuantization.ScalesSuffix, StringComparison.Ordinal)
                     && pendingScales.Remove(spec.Name[..^CheckpointQuantization.ScalesSuffix.Length], out var scales))
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(scales.AsSpan()));
            else
            {
                var source = model.Weights.Get(spec.Name);
                CopyRaw(source, stream);
                source.ReleasePages();
            }
        }, maxShardBytes);

        var config = model.Config.Raw.DeepClone().AsObject();
        config[CheckpointQuantization.ConfigKey] = new CheckpointQuantization(format, chosen, includeVision).ToJson();
        File.WriteAllText(Path.Combine(outDir, "config.json"),
            config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n", new UTF8Encoding(false));
        foreach (var file in Directory.EnumerateFiles(sourceDir))
        {
            string name = Path.GetFileName(file);
            if (name == "config.json" || name.EndsWith(".safetensors", StringComparison.Ordinal) || name == CheckpointWriter.IndexFileName) continue;
            File.Copy(file, Path.Combine(outDir, name));
        }
        long source = model.Weights.Entries.Sum(e => e.ByteLength), written = specs.Sum(s => s.ByteLength);
        return new Summary(chosen.Count, source, written, files);
    }

    /// <summary>Writes the matrix's integers band by band and returns its scales.</summary>
    private static Half[] WriteQuantized(WeightMatrix m, BlockFormat format, Stream stream)
    {
        int cols = m.Cols, blocks = cols / BlockFormats.BlockSize;
        int rowBytes = (int)format.RowBytes(cols);
        var scales = new Half[(long)m.Rows * blocks];
        var band = new byte[(long)Math.Min(BandRows, m.Rows) * rowBytes];
        for (int r0 = 0; r0 < m.Rows; r0 += BandRows)
        {
            int n = Math.Min(BandRows, m.Rows - r0);
            Parallel.For(0, n, () => new float[cols], (i, _, row) =>
            {
                m.ReadRow(r0 + i, 0, row);
                BlockQuantizer.QuantizeRow(format, row, band.AsSpan(i * rowBytes, rowBytes), scales.AsSpan((r0 + i) * blocks, blocks));
                return row;
            }, _ => { });
            stream.Write(band, 0, n * rowBytes);
        }
        return scales;
    }

    private static unsafe void CopyRaw(TensorView view, Stream stream)
    {
        const long Chunk = 1 << 24;
        for (long at = 0; at < view.ByteLength; at += Chunk)
            stream.Write(new ReadOnlySpan<byte>(view.Data + at, (int)Math.Min(Chunk, view.ByteLength - at)));
    }
}
