using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// A small reusable parallel-for for the compute kernels. One pool of worker threads lives for the
/// whole process; the calling thread takes part in every job. Jobs are a function pointer plus an
/// untyped context pointer (usually the address of a struct on the caller's stack, which stays valid
/// because <see cref="For"/> returns only when every index has run), so starting a job allocates
/// nothing.
/// </summary>
/// <remarks>
/// <para>The thread count is <see cref="Environment.ProcessorCount"/>, or the environment variable
/// <c>SLOWFAST_THREADS</c> when set to a positive integer. Nested calls (a kernel called from
/// inside a job) and calls from a second thread while a job is running run inline on the caller,
/// so the pool can never deadlock.</para>
/// <para>Indices are claimed one at a time from a ticket that holds both the job's generation and
/// the next index, so a worker that wakes late (or was preempted) can never take an index of a
/// later job, and the caller never waits for a worker that has not claimed anything: it claims
/// every index nobody else has, and then waits only for indices already running elsewhere.</para>
/// <para>Waiting is bounded: workers and caller spin for at most ~100 µs (decoding issues short jobs
/// back to back, and waking a sleeping thread costs tens of microseconds), then block on an event,
/// so a machine shared with other programs gets its cycles back. There is no yielding phase between
/// the two: a worker that yields under contention loses its core for whole time slices and takes
/// part in far fewer jobs.</para>
/// </remarks>
public static unsafe class KernelThreads
{
    /// <summary>Number of threads (including the caller) that kernels split their work over.</summary>
    public static int Count { get; } = ReadThreadCount();

    // How long a waiting thread spins (pause instructions) before it blocks.
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;   // 100 µs

    private static readonly State _state = new();
    private static readonly object _jobLock = new();
    private static readonly ManualResetEventSlim _jobDone = new(false, spinCount: 1);
    private static readonly Worker[] _workers = StartWorkers();

    [ThreadStatic] private static bool _insideJob;

    /// <summary>
    /// Job state. The ticket (generation in the high 32 bits, next index in the low 32) and the
    /// completion counter are on separate cache lines so claiming and finishing do not bounce one line.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Shared
    {
        [FieldOffset(0)] public delegate*<void*, int, void> Body;
        [FieldOffset(8)] public void* Context;
        [FieldOffset(16)] public int Count;
        [FieldOffset(64)] public long Ticket;
        [FieldOffset(128)] public int Done;
    }

    private sealed class State { public Shared S; }

    /// <summary>
    /// Runs <paramref name="body"/>(<paramref name="context"/>, i) for every i in [0, count), spread over
    /// the pool; returns when all have finished. Exceptions in a body are not supported (kernels
    /// validate their arguments before starting a job).
    /// </summary>
    public static void For(int count, void* context, delegate*<void*, int, void> body)
    {
        if (count <= 0) return;
        if (count == 1 || _workers.Length == 0 || _insideJob || !Monitor.TryEnter(_jobLock))
        {
            for (int i = 0; i < count; i++) body(context, i);
            return;
        }
        try
        {
            ref Shared s = ref _state.S;
            int generation = (int)(Volatile.Read(ref s.Ticket) >> 32) + 1;
            // Close the previous job's ticket before touching the job fields. A worker may have read
            // that ticket (say index 4 of a 4-index job) and be about to read Count: without this it
            // could read the NEW count, find 4 < count, and win its CAS on the still-valid old ticket,
            // running an index of this job with the old ticket and over-counting Done (a hang).
            Interlocked.Exchange(ref s.Ticket, ((long)(generation - 1) << 32) | int.MaxValue);
            s.Body = body;
            s.Context = context;
            s.Count = count;
            Volatile.Write(ref s.Done, 0);
            // Publishing the ticket (a full fence) makes the fields above visible to whoever reads it.
            Interlocked.Exchange(ref s.Ticket, (long)generation << 32);
            foreach (var worker in _workers)
                if (Volatile.Read(ref worker.Sleeping) != 0) worker.Wake.Set();

            _insideJob = true;
            RunIndices(generation);
            _insideJob = false;
            WaitUntilDone(ref s, count);
        }
        finally
        {
            _insideJob = false;
            Monitor.Exit(_jobLock);
        }
    }

    /// <summary>Claims and runs indices of job <paramref name="generation"/> until none is left.</summary>
    private static void RunIndices(int generation)
    {
        ref Shared s = ref _state.S;
        while (true)
        {
            long ticket = Volatile.Read(ref s.Ticket);
            if ((int)(ticket >> 32) != generation) return;
            // Read before the claim; a successful claim proves they still belong to this generation
            // (the caller rewrites them only after every index of the job has been claimed and run).
            var body = s.Body;
            var context = s.Context;
            int count = s.Count;
            int index = (int)ticket;
            if (index >= count) return;
            if (Interlocked.CompareExchange(ref s.Ticket, ticket + 1, ticket) != ticket) continue;
            body(context, index);
            if (Interlocked.Increment(ref s.Done) == count) _jobDone.Set();
        }
    }

    /// <summary>The caller's wait for indices still running on workers: spin briefly, then block.</summary>
    private static void WaitUntilDone(ref Shared s, int count)
    {
        if (Volatile.Read(ref s.Done) == count) return;
        long start = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref s.Done) != count)
        {
            long elapsed = Stopwatch.GetTimestamp() - start;
            if (elapsed < SpinTicks) Thread.SpinWait(16);
            else
            {
                // Reset, re-check, wait: a Set from the finishing worker can come before the Reset
                // (then the re-check sees the count) or after it (then Wait returns). A stale Set left
                // over from an earlier job only costs one more trip round this loop.
                _jobDone.Reset();
                if (Volatile.Read(ref s.Done) == count) break;
                _jobDone.Wait();
            }
        }
    }

    private sealed class Worker
    {
        public readonly ManualResetEventSlim Wake = new(false, spinCount: 1);
        public int Sleeping;
    }

    private static Worker[] StartWorkers()
    {
        var workers = new Worker[Count - 1];
        for (int w = 0; w < workers.Length; w++)
        {
            var worker = new Worker();
            workers[w] = worker;
            var thread = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"slowfast-kernel-{w + 1}" };
            thread.Start();
        }
        return workers;
    }

    private static void WorkerLoop(Worker worker)
    {
        _insideJob = true;
        ref Shared s = ref _state.S;
        // Generation 0 is "no job yet". Reading the ticket here instead would be a bug: the thread
        // may start after the first job was posted and would then skip it.
        int seen = 0;
        while (true)
        {
            int generation = WaitForJob(worker, ref s, seen);
            seen = generation;
            RunIndices(generation);
        }
    }

    /// <summary>Waits until a job newer than <paramref name="seen"/> is posted: spin briefly, then block.</summary>
    private static int WaitForJob(Worker worker, ref Shared s, int seen)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int generation = (int)(Volatile.Read(ref s.Ticket) >> 32);
            if (generation != seen) return generation;
            long elapsed = Stopwatch.GetTimestamp() - start;
            if (elapsed < SpinTicks) Thread.SpinWait(16);
            else
            {
                // Announce the sleep, then re-check: the caller bumps the ticket before it looks at
                // Sleeping, so either it sees Sleeping = 1 and sets Wake, or this re-check sees the job.
                worker.Wake.Reset();
                Interlocked.Exchange(ref worker.Sleeping, 1);
                if ((int)(Volatile.Read(ref s.Ticket) >> 32) == seen) worker.Wake.Wait();
                Volatile.Write(ref worker.Sleeping, 0);
            }
        }
    }

    private static int ReadThreadCount()
    {
        var text = Environment.GetEnvironmentVariable("SLOWFAST_THREADS");
        if (int.TryParse(text, out int n) && n > 0) return n;
        return Math.Max(1, Environment.ProcessorCount);
    }
}
