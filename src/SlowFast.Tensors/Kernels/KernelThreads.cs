using System.Diagnostics;

namespace SlowFast.Tensors.Kernels;

/// <summary>
/// A small reusable parallel-for for the compute kernels. One pool of worker threads lives for the
/// whole process; the calling thread takes part in every job. Jobs are a function pointer plus an
/// untyped context pointer (usually the address of a struct on the caller's stack, which stays valid
/// because <see cref="For"/> returns only when every index has run), so starting a job allocates
/// nothing.
/// </summary>
/// <remarks>
/// The thread count is <see cref="Environment.ProcessorCount"/>, or the environment variable
/// <c>SLOWFAST_THREADS</c> when set to a positive integer. Nested calls (a kernel called from
/// inside a job) and calls from a second thread while a job is running run inline on the caller,
/// so the pool can never deadlock. Indices are handed out dynamically with an atomic counter,
/// so uneven work balances itself.
/// </remarks>
public static unsafe class KernelThreads
{
    /// <summary>Number of threads (including the caller) that kernels split their work over.</summary>
    public static int Count { get; } = ReadThreadCount();

    // Job state: written by the caller before the generation bump, read by workers after it.
    private static delegate*<void*, int, void> _body;
    private static void* _context;
    private static int _count;
    private static int _next;
    private static int _pending;
    private static int _generation;
    private static readonly object _jobLock = new();
    private static readonly Worker[] _workers = StartWorkers();

    [ThreadStatic] private static bool _insideJob;

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
            _body = body;
            _context = context;
            _count = count;
            _next = 0;
            // Every worker takes part in every job (one that finds no index left just reports
            // back), which keeps the generation handshake simple and race-free.
            Volatile.Write(ref _pending, _workers.Length);
            Interlocked.Increment(ref _generation);
            foreach (var worker in _workers) worker.Wake.Set();

            _insideJob = true;
            RunIndices();
            _insideJob = false;

            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
        }
        finally
        {
            _insideJob = false;
            Monitor.Exit(_jobLock);
        }
    }

    private static void RunIndices()
    {
        var body = _body;
        var context = _context;
        int count = _count;
        while (true)
        {
            int i = Interlocked.Increment(ref _next) - 1;
            if (i >= count) return;
            body(context, i);
        }
    }

    private sealed class Worker
    {
        public readonly ManualResetEventSlim Wake = new(false, spinCount: 1);
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
        // Generation 0 is "no job yet". Reading _generation here instead would be a bug: the
        // thread may start after the first job was posted and would then skip it forever.
        int seen = 0;
        long spinTicks = Stopwatch.Frequency / 5000; // spin ~200 µs after a job before sleeping
        while (true)
        {
            // Spin briefly: decoding issues many short jobs back to back, and waking a sleeping
            // thread costs tens of microseconds.
            long spinUntil = Stopwatch.GetTimestamp() + spinTicks;
            while (Volatile.Read(ref _generation) == seen && Stopwatch.GetTimestamp() < spinUntil)
                Thread.SpinWait(20);
            while (Volatile.Read(ref _generation) == seen)
            {
                worker.Wake.Wait();
                worker.Wake.Reset();
            }
            seen = Volatile.Read(ref _generation);
            RunIndices();
            Interlocked.Decrement(ref _pending);
        }
    }

    private static int ReadThreadCount()
    {
        var text = Environment.GetEnvironmentVariable("SLOWFAST_THREADS");
        if (int.TryParse(text, out int n) && n > 0) return n;
        return Math.Max(1, Environment.ProcessorCount);
    }
}
