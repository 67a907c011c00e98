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
}
