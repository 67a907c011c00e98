using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Vision;

/// <summary>
/// The multimodal projector (the reference's build_vision_projector): "linear" (one Linear from the
/// tower width to hidden_size), "mlpNx_gelu" (Linear, then N−1 × (GELU, Linear)), or "identity".
/// Applied token by token, so it can run on any number of rows at a time.
/// </summary>
/// <remarks>The <see cref="ModelDirectory"/> the weights came from must stay open while it is used.</remarks>
public sealed class Projector
{
    private readonly (WeightMatrix Weight, float[] Bias)[] _layers;

    /// <summary>Width of the tower's tokens (mm_hidden_size).</summary>
    public int InputSize { get; }
    /// <summary>Width of the projected tokens (the language model's hidden_size).</summary>
    public int OutputSize { get; }

    /// <summary>
    /// Arithmetic of the matrix products: <see cref="MatMulPrecision.Float32"/> (default, what the
    /// golden tests check) or <see cref="MatMulPrecision.BFloat16"/> (PyTorch's bf16 arithmetic, about
    /// twice as fast where the CPU has AVX512-BF16).
    /// </summary>
    public MatMulPrecision Precision { get; set; }
    /// <summary>Number of Linear layers: 0 for identity.</summary>
    public int Depth => _layers.Length;

    public Projector(ModelDirectory model)
    {
        var c = model.Config;
        InputSize = c.MmHiddenSize ?? c.Vision.HiddenSize;
        OutputSize = c.HiddenSize;
        string prefix = CheckpointLayout.ProjectorPrefix;
        if (c.MmProjectorType == "linear")
        {
            _layers = [(model.Linear(prefix + "weight"), model.Get(prefix + "bias").ToFloatArray())];
        }
        else
        {
            // nn.Sequential(Linear, GELU, Linear, GELU, ...): the Linear layers sit at even indices.
            _layers = new (WeightMatrix, float[])[c.ProjectorDepth];
            for (int i = 0; i < _layers.Length; i++)
                _layers[i] = (model.Linear($"{prefix}{2 * i}.weight"), model.Get($"{prefix}{2 * i}.bias").ToFloatArray());
        }
        if (_layers.Length == 0 && InputSize != OutputSize)
            throw new UserError($"{model.Path}: identity projector needs the tower width {InputSize} to equal hidden_size {OutputSize}");
    }

    /// <summary>y[rows, OutputSize] = projector(x[rows, InputSize]). x and y must not overlap.</summary>
    public void Project(ReadOnlySpan<float> x, int rows, Span<float> y) =>
        Project(x, rows, y, Depth > 1 ? new float[y.Length] : default);

    /// <summary>
    /// Like <see cref="Project(ReadOnlySpan{float}, int, Span{float})"/> with a caller-owned scratch of at
    /// least rows × OutputSize floats (needed only when <see cref="Depth"/> &gt; 1), so repeated calls allocate nothing.
    /// </summary>
    public void Project(ReadOnlySpan<float> x, int rows, Span<float> y, Span<float> scratch)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(nameof(rows), $"row count {rows} must be positive");
        if (x.Length != (long)rows * InputSize) throw new ArgumentException($"x needs {(long)rows * InputSize} floats ([{rows}, {InputSize}]); got {x.Length}", nameof(x));
        if (y.Length != (long)rows * OutputSize) throw new ArgumentException($"y needs {(long)rows * OutputSize} floats ([{rows}, {OutputSize}]); got {y.Length}", nameof(y));
        if (_layers.Length == 0)
        {
            x.CopyTo(y);
            return;
        }
        if (_layers.Length > 1 && scratch.Length < y.Length) throw new ArgumentException($"scratch needs {y.Length} floats; got {scratch.Length}", nameof(scratch));
        scratch = scratch[..Math.Min(scratch.Length, y.Length)];
        // Ping-pong between y and the scratch so that the last layer writes into y.
        Span<float> previous = default;
        for (int i = 0; i < _layers.Length; i++)
        {
            Span<float> output = (_layers.Length - 1 - i) % 2 == 0 ? y : scratch;
            if (i == 0) MatMul.Linear(x, rows, _layers[i].Weight, _layers[i].Bias, output, Precision);
            else
            {
                Activations.Gelu(previous);
                MatMul.Linear(previous, rows, _layers[i].Weight, _layers[i].Bias, output, Precision);
            }
            previous = output;
        }
    }
}
