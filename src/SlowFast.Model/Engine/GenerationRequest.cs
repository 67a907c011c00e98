using SlowFast.Model.Generation;

namespace SlowFast.Model.Engine;

/// <summary>
/// A request submitted to an <see cref="InferenceEngine"/>: its answer arrives through
/// <see cref="Completion"/> (and, piece by piece, through the submitter's text callback).
/// </summary>
public sealed class GenerationRequest
{
    private readonly TaskCompletionSource<GenerationResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal GenerationRequest() { }

    /// <summary>The finished answer; faults with the request's error, or is cancelled with its token.</summary>
    public Task<GenerationResult> Completion => _completion.Task;

    internal TaskCompletionSource<GenerationResult> Source => _completion;
}
