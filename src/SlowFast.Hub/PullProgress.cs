namespace SlowFast.Hub;

public enum PullStage
{
    /// <summary>Asking the hub which files and commit to fetch.</summary>
    Resolving,
    /// <summary>Waiting for another pull that is downloading the same file.</summary>
    WaitingForLock,
    /// <summary>Bytes of <see cref="PullProgress.File"/> are arriving.</summary>
    Downloading,
    /// <summary><see cref="PullProgress.File"/> is in place (downloaded or already cached).</summary>
    FileCompleted,
    /// <summary>The whole snapshot is in place.</summary>
    Completed,
}

/// <summary>
/// A progress report of a pull. Totals grow once the shard index is read (the shard list is
/// not known before). <see cref="TransferredBytes"/> counts only bytes that crossed the network
/// in this pull, so a rate computed from it is not inflated by cached or resumed files.
/// </summary>
public readonly record struct PullProgress(
    PullStage Stage,
    string File,
    long FileBytes,
    long FileSize,
    long DoneBytes,
    long TotalBytes,
    long TransferredBytes,
    int FilesDone,
    int FileCount);
