using SlowFast.Tensors.IO;

namespace SlowFast.Tensors.Tests;

/// <summary>
/// <see cref="HugePageAlignedWriter"/> hands the file whole pieces at aligned offsets, loses no byte and
/// keeps their order; and a checkpoint written through it is mapped with huge pages wherever the
/// file system gives them to a file written in one aligned piece.
/// </summary>
public sealed class HugePageAlignedWriterTests : IDisposable
{
    private const int Piece = HugePageAlignedWriter.PieceBytes;
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-hp-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A memory "file" that records the offset and length of every write it gets.</summary>
    private sealed class RecordingFile : MemoryStream
    {
        public readonly List<(long Offset, int Count)> Writes = [];
        public int FailAfterWrites = int.MaxValue;   // the write after this many writes takes half its bytes, then throws
        public bool Disposed;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (Writes.Count == FailAfterWrites)
            {
                FailAfterWrites = int.MaxValue;   // once
                Append(buffer[..(buffer.Length / 2)]);
                throw new IOException("No space left on device");
            }
            Writes.Add((Position, buffer.Length));
            Append(buffer);
        }

        // MemoryStream's span overload calls back into the array one in a subclass
        private void Append(ReadOnlySpan<byte> bytes) => base.Write(bytes.ToArray(), 0, bytes.Length);

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        protected override void Dispose(bool disposing) { Disposed = true; base.Dispose(disposing); }
    }

    private static byte[] RandomBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Cuts <paramref name="data"/> into writes of random lengths, some longer than a piece.</summary>
    private static IEnumerable<ReadOnlyMemory<byte>> RandomWrites(byte[] data, int seed)
    {
        var random = new Random(seed);
        for (int at = 0; at < data.Length;)
        {
            int n = Math.Min(data.Length - at, random.Next(4) == 0 ? random.Next(Piece, 3 * Piece) : random.Next(1, 300_000));
            yield return data.AsMemory(at, n);
            at += n;
        }
    }

    /// <summary>Every write ends on a multiple of a piece except the last, follows the one before, and is at most a piece long.</summary>
    private static void AssertAlignedPieces(List<(long Offset, int Count)> writes, long start, long end)
    {
        Assert.Equal(start, writes[0].Offset);
        for (int i = 0; i < writes.Count; i++)
        {
            var (offset, count) = writes[i];
            Assert.InRange(count, 1, Piece);
            if (i > 0) Assert.Equal(writes[i - 1].Offset + writes[i - 1].Count, offset);
            if (i < writes.Count - 1) Assert.Equal(0, (offset + count) % Piece);
        }
        Assert.Equal(end, writes[^1].Offset + writes[^1].Count);
    }

    [Fact]
    public void A_new_file_gets_whole_aligned_pieces_and_every_byte_in_order()
    {
        var data = RandomBytes(3 * Piece + 1_234_567, seed: 1);
        var file = new RecordingFile();
        using (var writer = new HugePageAlignedWriter(file))
            foreach (var w in RandomWrites(data, seed: 2)) writer.Write(w.Span);

        Assert.True(file.Disposed);
        Assert.Equal(data, file.ToArray());
        AssertAlignedPieces(file.Writes, 0, data.Length);
        Assert.Equal(4, file.Writes.Count);
    }

    [Fact]
    public async Task Written_asynchronously_from_the_middle_of_a_file_the_first_piece_ends_on_the_next_boundary()
    {
        var before = RandomBytes(5_000_123, seed: 3);   // what an earlier, interrupted download left
        var data = RandomBytes(2 * Piece + 999, seed: 4);
        var file = new RecordingFile();
        file.Write(before);
        file.Writes.Clear();

        await using (var writer = new HugePageAlignedWriter(file))
        {
            foreach (var w in RandomWrites(data, seed: 5)) await writer.WriteAsync(w);
            await writer.FlushAsync();
            Assert.Equal(before.Length + data.Length, file.Length);   // flushed: all of it is in the file
        }

        Assert.Equal(before.Concat(data).ToArray(), file.ToArray());
        AssertAlignedPieces(file.Writes, before.Length, before.Length + data.Length);
        Assert.Equal(2 * Piece, file.Writes[0].Offset + file.Writes[0].Count);
    }

    [Fact]
    public void A_flush_writes_what_is_gathered_and_the_next_piece_realigns()
    {
        var data = RandomBytes(2 * Piece, seed: 6);
        var file = new RecordingFile();
        using (var writer = new HugePageAlignedWriter(file))
        {
            writer.Write(data.AsSpan(0, 1000));
            writer.Flush();
            Assert.Equal(1000, file.Length);
            writer.Write(data.AsSpan(1000));
        }

        Assert.Equal(data, file.ToArray());
        Assert.Equal(new List<(long, int)> { (0, 1000), (1000, Piece - 1000), (Piece, Piece) }, file.Writes);
    }

    [Fact]
    public void A_piece_whose_write_failed_is_not_written_again()
    {
        var data = RandomBytes(2 * Piece + 10, seed: 7);
        var file = new RecordingFile { FailAfterWrites = 1 };
        var writer = new HugePageAlignedWriter(file);
        var error = Assert.Throws<IOException>(() => writer.Write(data.AsSpan(0, 2 * Piece)));
        Assert.Contains("No space", error.Message);
        writer.Write(data.AsSpan(2 * Piece));
        writer.Dispose();   // writes the 10 bytes gathered after the failed piece, not the failed piece again

        // the file holds the first piece, half of the second (what the system took before failing), then
        // the last 10 bytes where the file had got to: a resumed download goes by the file's length
        byte[] expected = [.. data.AsSpan(0, Piece), .. data.AsSpan(Piece, Piece / 2), .. data.AsSpan(2 * Piece)];
        Assert.Equal(expected, file.ToArray());
        Assert.True(file.Disposed);
    }

    /// <summary>Reads one byte of every 4 KiB page of a file's mapping, so each is mapped.</summary>
    private static unsafe long Touch(SafetensorsFile f)
    {
        long sum = 0;
        foreach (var e in f.Entries)
        {
            var v = f.View(e);
            for (long at = 0; at < v.ByteLength; at += 4096) sum += v.Data[at];
        }
        return sum;
    }

    /// <summary>Writes a checkpoint of 40 tensors of 256 KiB each (10 MiB).</summary>
    private string WriteCheckpoint(string name)
    {
        var specs = Enumerable.Range(0, 40).Select(i => new TensorSpec($"w{i}", DType.BF16, [512, 256])).ToList();
        string path = Path.Combine(_dir, name);
        var chunk = RandomBytes(64 << 10, seed: 8);
        SafetensorsWriter.Write(path, specs, (spec, stream) =>
        {
            for (long at = 0; at < spec.ByteLength; at += chunk.Length) stream.Write(chunk);   // small writes, as create-model's are
        });
        return path;
    }

    [Fact]
    public unsafe void A_checkpoint_just_written_is_mapped_with_huge_pages_wherever_one_aligned_write_is()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/sys/kernel/mm/transparent_hugepage/enabled")) return;
        string written = WriteCheckpoint("written.safetensors");
        // The same bytes written in one write from offset 0: whole aligned 2 MiB folios wherever the file system has them.
        string oneWrite = Path.Combine(_dir, "one-write.safetensors");
        File.WriteAllBytes(oneWrite, File.ReadAllBytes(written));

        using var a = SafetensorsFile.Open(written);
        using var b = SafetensorsFile.Open(oneWrite);
        Assert.Equal(Touch(b), Touch(a));
        long start = (long)a.View(a.Entries[0]).Data;
        long inner = (start + HugePages.Size - 1) & ~(HugePages.Size - 1);
        Assert.Contains("hg", Smaps.VmFlags(inner));   // the mapping is advised
        long pmdWritten = Smaps.Bytes(inner, "FilePmdMapped");
        long pmdOneWrite = Smaps.Bytes((long)b.View(b.Entries[0]).Data, "FilePmdMapped");
        Assert.True(pmdWritten >= pmdOneWrite,
            $"{pmdWritten} bytes of the checkpoint are mapped with huge pages, {pmdOneWrite} of the same bytes written at once");
    }
}
