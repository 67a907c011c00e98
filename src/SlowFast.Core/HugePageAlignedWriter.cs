using System.Buffers;

namespace SlowFast;

/// <summary>
/// A write-only stream over a file that gives the file system whole <see cref="PieceBytes"/> pieces at
/// offsets that are multiples of it (a stream that starts mid-file, as a resumed download does, first
/// writes up to the next multiple). Used for large files that are later memory-mapped: checkpoints,
/// shards, downloaded blobs.
/// </summary>
/// <remarks>
/// Why: Linux keeps what a write brings into the page cache in folios no larger than the write and
/// aligned as it is, and only whole aligned 2 MiB folios can be mapped with huge pages. A checkpoint
/// written in 2 MiB pieces at unaligned offsets (the safetensors header shifts every tensor) stays in
/// small pages for as long as it is cached, so the process that next reads it pays a TLB miss every
/// 4 KiB; on the project's VMs decoding from such a file ran more than ten times slower than from the
/// same file read back from disk (docs/benchmarks/page-cache-7b-2026-12-03.md). Written through this
/// stream it is cached in 2 MiB folios where the file system supports them (ext4 on Linux 6.16+, XFS,
/// …); elsewhere nothing changes.
/// Invariant: bytes reach the file in the order written, and all of them by <see cref="Flush"/> or
/// <see cref="Dispose(bool)"/>, unless a write to the file fails; the underlying stream is owned and
/// disposed with this one.
/// </remarks>
public sealed class HugePageAlignedWriter : Stream
{
    /// <summary>Two 2 MiB huge pages: every piece but the first and the last is exactly this long and aligned to it.</summary>
    public const int PieceBytes = 4 << 20;

    private readonly Stream _file;
    private readonly byte[] _piece;
    private long _pieceStart;   // the file offset of _piece[0]
    private int _filled;
    private bool _disposed;

    /// <summary>
    /// Writes to <paramref name="file"/> from its current position (0 for a stream that cannot seek).
    /// Give it an unbuffered <see cref="FileStream"/> (buffer size 0 or 1), so pieces reach the file as they are.
    /// </summary>
    public HugePageAlignedWriter(Stream file)
    {
        if (!file.CanWrite) throw new ArgumentException("the stream cannot be written", nameof(file));
        _file = file;
        _pieceStart = file.CanSeek ? file.Position : 0;
        _piece = ArrayPool<byte>.Shared.Rent(PieceBytes);   // shared: small files (feature caches) are written often
    }

    /// <summary>Bytes the current piece takes before it ends on a multiple of <see cref="PieceBytes"/>.</summary>
    private int PieceLength => PieceBytes - (int)(_pieceStart % PieceBytes);

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (!buffer.IsEmpty)
        {
            int n = Math.Min(buffer.Length, PieceLength - _filled);
            buffer[..n].CopyTo(_piece.AsSpan(_filled));
            _filled += n;
            buffer = buffer[n..];
            if (_filled == PieceLength) WritePiece();
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (!buffer.IsEmpty)
        {
            int n = Math.Min(buffer.Length, PieceLength - _filled);
            buffer[..n].Span.CopyTo(_piece.AsSpan(_filled));
            _filled += n;
            buffer = buffer[n..];
            if (_filled == PieceLength) await WritePieceAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Writes what is gathered (a short piece; the next one ends on the following boundary) and flushes the file.</summary>
    public override void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WritePiece();
        _file.Flush();
    }

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await WritePieceAsync(cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    // A piece whose write fails is dropped, not written again later: part of it may be in the file
    // already, so the file's length is what a caller that resumes (a download) goes by.
    private void WritePiece()
    {
        if (_filled == 0) return;
        try { _file.Write(_piece, 0, _filled); }
        catch { Drop(); throw; }
        _pieceStart += _filled;
        _filled = 0;
    }

    private async ValueTask WritePieceAsync(CancellationToken cancellationToken)
    {
        if (_filled == 0) return;
        try { await _file.WriteAsync(_piece.AsMemory(0, _filled), cancellationToken).ConfigureAwait(false); }
        catch { Drop(); throw; }
        _pieceStart += _filled;
        _filled = 0;
    }

    private void Drop()
    {
        _filled = 0;
        if (_file.CanSeek) _pieceStart = _file.Position;
    }

    /// <summary>Writes what is gathered, then disposes the file (a failed write still disposes it, and throws).</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            try { WritePiece(); }
            finally { _file.Dispose(); ArrayPool<byte>.Shared.Return(_piece); }
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            try { await WritePieceAsync(CancellationToken.None).ConfigureAwait(false); }
            finally { await _file.DisposeAsync().ConfigureAwait(false); ArrayPool<byte>.Shared.Return(_piece); }
        }
        GC.SuppressFinalize(this);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_disposed;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _pieceStart + _filled; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
