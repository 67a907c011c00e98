using SlowFast.Extensions.AI;
using SlowFast.Model.Chat;
using SlowFast.Model.Generation;
using SlowFast.Model.Vision;

namespace SlowFast.Server;

/// <summary>
/// A chat completion's <c>stop</c> strings over one engine request: the text the engine streams goes through
/// <see cref="StopSequenceFilter"/> (shared with SlowFast.Extensions.AI, linked into this assembly), which
/// holds back what could still start a stop string, so nothing past a stop string is ever released; when one
/// appears the engine request is cancelled (<see cref="Token"/>) and the answer ends just before it, with
/// finish reason "stop". Without stop strings everything passes straight through.
/// <para>
/// Dispose only once the engine request has ended: disposing unlinks <see cref="Token"/> from the client's
/// token, so a cancel that had not reached it yet never would, and the engine would decode on for nobody.
/// A handler that leaves early calls <see cref="Abandon"/> and waits for the engine first.
/// </para>
/// </summary>
internal sealed class StopStrings : IDisposable
{
    private readonly StopSequenceFilter _filter;
    private readonly CancellationTokenSource _cancel;
    private readonly CancellationToken _outer;

    public StopStrings(IReadOnlyList<string>? stops, CancellationToken outer)
    {
        _filter = new StopSequenceFilter(stops);
        _outer = outer;
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);
    }

    /// <summary>The engine request's cancellation: the client's (and the time limit's), or a stop string's.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>True once a stop string has appeared.</summary>
    public bool Stopped => _filter.Stopped;

    /// <summary>The engine's onText: each piece in, what may be released now out to <paramref name="emit"/> (if any).</summary>
    public Action<string> OnText(Action<string>? emit) => piece =>
    {
        if (_filter.Stopped) return;
        string released = _filter.Push(piece);
        if (released.Length > 0) emit?.Invoke(released);
        if (_filter.Stopped) _cancel.Cancel(); // the engine frees the sequence at its next step
    };

    /// <summary>
    /// The engine's answer, cut at the first stop string. When the request was cancelled at a stop string
    /// (no engine result), a result is made up: the prompt's positions are its text tokens and the video's
    /// fast tokens, the completion tokens the generated text re-tokenized (an estimate), no timings.
    /// </summary>
    public async Task<(GenerationResult Result, bool FromEngine)> AwaitAsync(Task<GenerationResult> completion, ChatBackend backend,
        int[] promptIds, VisualTokens? visual)
    {
        GenerationResult? result = null;
        try { result = await completion; }
        catch (OperationCanceledException) when (_filter.Stopped && !_outer.IsCancellationRequested) { }
        if (result != null && !_filter.Stopped) return (result, true);
        if (result != null) return (result with { Text = _filter.Answer, FinishReason = FinishReason.Stop }, true);
        var made = new GenerationResult(_filter.Answer, backend.Model.Tokenizer.Encode(_filter.Generated), FinishReason.Stop,
            promptIds.Count(id => id != MultimodalPrompt.ImageTokenIndex) + (visual?.FastCount ?? 0), TimeSpan.Zero, TimeSpan.Zero);
        return (made, false);
    }

    /// <summary>
    /// Cancels the engine request now, directly rather than through the link to the client's token: for a
    /// handler that leaves without the answer (the client went away, a write failed).
    /// </summary>
    public void Abandon() => _cancel.Cancel();

    /// <summary>What is still held back once generation is over ("" if nothing).</summary>
    public string Flush() => _filter.Flush();

    public void Dispose() => _cancel.Dispose();
}
