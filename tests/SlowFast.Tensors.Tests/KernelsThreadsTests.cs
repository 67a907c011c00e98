using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

public unsafe class KernelsThreadsTests
{
    private static void MarkIndex(void* context, int i) => Interlocked.Increment(ref ((int*)context)[i]);

    [Fact]
    public void For_runs_every_index_exactly_once_many_times_over()
    {
        var counts = new int[1000];
        fixed (int* p = counts)
        {
            for (int round = 0; round < 200; round++) KernelThreads.For(1 + round * 5 % 1000, p, &MarkIndex);
        }
        var expected = new int[1000];
        for (int round = 0; round < 200; round++) for (int i = 0; i < 1 + round * 5 % 1000; i++) expected[i]++;
        Assert.Equal(expected, counts);
    }

    [Fact]
    public void For_from_several_threads_at_once_is_safe()
    {
        var results = new int[4][];
        Parallel.For(0, 4, task =>
        {
            var counts = new int[300];
            fixed (int* p = counts) for (int r = 0; r < 50; r++) KernelThreads.For(300, p, &MarkIndex);
            results[task] = counts;
        });
        foreach (var counts in results) Assert.All(counts, c => Assert.Equal(50, c));
    }

    private static void SlowFirstIndex(void* context, int i)
    {
        if (i == 0) Thread.Sleep(20);
        Volatile.Write(ref ((int*)context)[i], 1);
    }

    [Fact]
    public void For_returns_only_after_a_slow_index_has_finished()
    {
        // Whichever thread takes index 0 sleeps (as a preempted worker would); For must still wait for it.
        for (int round = 0; round < 5; round++)
        {
            var done = new int[4];
            fixed (int* p = done) KernelThreads.For(4, p, &SlowFirstIndex);
            Assert.All(done, d => Assert.Equal(1, d));
        }
    }

    [Fact]
    public void Workers_that_went_to_sleep_between_jobs_are_woken_again()
    {
        // Gaps far longer than the spin-then-yield phase put the workers to sleep before each job.
        var counts = new int[64];
        fixed (int* p = counts)
        {
            for (int round = 0; round < 10; round++)
            {
                Thread.Sleep(3);
                KernelThreads.For(64, p, &MarkIndex);
            }
        }
        Assert.All(counts, c => Assert.Equal(10, c));
    }

    [Fact]
    public void Back_to_back_tiny_jobs_never_run_an_index_against_another_jobs_context()
    {
        // Many short jobs with alternating contexts and counts: a worker arriving late for one job
        // must neither claim an index of the next job nor run it with the old context.
        var a = new int[3];
        var b = new int[2];
        fixed (int* pa = a) fixed (int* pb = b)
        {
            for (int round = 0; round < 20000; round++)
            {
                KernelThreads.For(3, pa, &MarkIndex);
                KernelThreads.For(2, pb, &MarkIndex);
            }
        }
        Assert.All(a, c => Assert.Equal(20000, c));
        Assert.All(b, c => Assert.Equal(20000, c));
    }
}
