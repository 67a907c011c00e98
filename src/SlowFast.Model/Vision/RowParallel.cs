using System.Runtime.Intrinsics;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Vision;

/// <summary>
/// The tower's cheap per-pixel-row operations (LayerNorm, GELU, layer scale + residual) split over
/// <see cref="KernelThreads"/> in blocks of rows. The matrix products around them are already
/// parallel; without this, these single-threaded passes would be a sizeable share of a frame at the
/// large early stages (e.g. 144×144 pixels × 1536 hidden channels at 576 px).
/// </summary>
internal static unsafe class RowParallel
{
    /// <summary>Rows per parallel task: enough work per task to amortize the hand-off.</summary>
    private const int MinFloatsPerTask = 1 << 15;

    private struct Job
    {
        public float* X, Y, Weight, Bias;
        public int Rows, Width, RowsPerTask;
        public float Eps;
    }

    /// <summary>y = LayerNorm(x) over each row of <paramref name="width"/>; y may be x.</summary>
    public static void LayerNorm(Span<float> x, int width, float[] weight, float[] bias, float eps, Span<float> y)
    {
        fixed (float* px = x) fixed (float* py = y) fixed (float* pw = weight) fixed (float* pb = bias)
        {
            var job = NewJob(px, py, x.Length / width, width);
            job.Weight = pw;
            job.Bias = pb;
            job.Eps = eps;
            Run(ref job, &LayerNormTask);
        }
    }

    /// <summary>Exact GELU in place on [rows, width].</summary>
    public static void Gelu(Span<float> x, int width)
    {
        fixed (float* px = x)
        {
            var job = NewJob(px, px, x.Length / width, width);
            Run(ref job, &GeluTask);
        }
    }

    /// <summary>x[r, c] += scale[c] · t[r, c] (the block's layer scale and residual; multiply, then add, as torch does).</summary>
    public static void ScaleAddResidual(Span<float> x, ReadOnlySpan<float> t, int width, float[] scale)
    {
        if (t.Length != x.Length || scale.Length != width) throw new ArgumentException("residual: shapes differ");
        fixed (float* px = x) fixed (float* pt = t) fixed (float* ps = scale)
        {
            var job = NewJob(pt, px, x.Length / width, width);
            job.Weight = ps;
            Run(ref job, &ScaleAddTask);
        }
    }

    private static Job NewJob(float* x, float* y, int rows, int width) => new()
    {
        X = x, Y = y, Rows = rows, Width = width,
        RowsPerTask = Math.Max(1, MinFloatsPerTask / Math.Max(1, width)),
    };

    private static void Run(ref Job job, delegate*<void*, int, void> body)
    {
        int tasks = (job.Rows + job.RowsPerTask - 1) / job.RowsPerTask;
        fixed (Job* p = &job) KernelThreads.For(tasks, p, body);
    }

    private static (int Start, int Count) Range(Job* job, int task)
    {
        int start = task * job->RowsPerTask;
        return (start, Math.Min(job->RowsPerTask, job->Rows - start));
    }

    private static void LayerNormTask(void* context, int task)
    {
        var job = (Job*)context;
        var (start, count) = Range(job, task);
        int w = job->Width;
        long offset = (long)start * w;
        Norms.LayerNorm(new ReadOnlySpan<float>(job->X + offset, count * w), new ReadOnlySpan<float>(job->Weight, w),
            new ReadOnlySpan<float>(job->Bias, w), job->Eps, new Span<float>(job->Y + offset, count * w));
    }

    private static void GeluTask(void* context, int task)
    {
        var job = (Job*)context;
        var (start, count) = Range(job, task);
        Activations.Gelu(new Span<float>(job->Y + (long)start * job->Width, count * job->Width));
    }

    private static void ScaleAddTask(void* context, int task)
    {
        var job = (Job*)context;
        var (start, count) = Range(job, task);
        int w = job->Width;
        for (int r = start; r < start + count; r++)
        {
            float* t = job->X + (long)r * w, x = job->Y + (long)r * w, s = job->Weight;
            int c = 0;
            for (; c + 16 <= w; c += 16)
                (Vector512.Load(x + c) + Vector512.Load(t + c) * Vector512.Load(s + c)).Store(x + c);
            for (; c < w; c++) x[c] += t[c] * s[c];
        }
    }
}
