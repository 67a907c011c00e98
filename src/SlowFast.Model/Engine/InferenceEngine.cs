using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using SlowFast.Model.Decoder;
using SlowFast.Model.Generation;
using SlowFast.Model.Tokenization;
using SlowFast.Model.Vision;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Model.Engine;

/// <summary>
/// Serves many requests on one loaded model. One loop thread owns all the work: each step it admits
/// waiting requests, runs the next token of every decoding sequence together with chunks of waiting
/// prompts (at most <see cref="EngineOptions.PrefillChunkTokens"/> positions in all) in one batched
/// forward pass, samples, and then encodes one frame of a waiting video.
/// <code>
/// loop:
///     admit waiting requests, in arrival order, while a slot and the KV-cache budget allow
///         (a prompt that starts like a finished one takes over its cached keys/values)
///     batch = every decoding sequence's next token + prompt chunks, PrefillChunkTokens positions in all
///     decoder.Forward(batch)                  weights read once for every row of the batch
///     sample each sequence that got logits; finished sequences free their slot
///     encode one frame of the oldest video waiting for the vision tower
/// </code>
/// </summary>
/// <remarks>
/// The model (weights, tokenizer) is shared and never written. Everything a request mutates — its KV
/// cache, slow keys/values, sampler, arithmetic — is its own (<see cref="Sequence"/>); the activation
/// buffers and the prefix cache belong to the engine and are touched by its loop thread only. So the
/// public methods are safe to call from any thread at any time.
/// </remarks>
public sealed class InferenceEngine : IDisposable
{
    private readonly Qwen2Decoder _decoder;
    private readonly VisionEncoder? _vision;
    private readonly QwenTokenizer? _tokenizer;
    private readonly IReadOnlyCollection<int> _stopTokens;

    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly ConcurrentQueue<VisionJob> _incomingVision = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _loop;
    private volatile bool _stopping;

    // Loop-thread state.
    private readonly List<Sequence> _waiting = new();
    private readonly List<Sequence> _active = new();
    private readonly Queue<VisionJob> _visionQueue = new();
    private readonly PrefixCache _prefixes;
    private readonly DecoderWorkspace _workspace = new();
    private readonly ConditionalWeakTable<VisualTokens, Dictionary<MatMulPrecision, SlowKeyValues>> _slowKeyValues = new();
    private long _kvBytesInUse;

    public EngineOptions Options { get; }

    /// <summary>
    /// An engine over a decoder alone: requests are token ids (and visual tokens made elsewhere), answers
    /// token ids without text, and no token ends an answer early. For benchmarks and tools; a loaded
    /// <see cref="SlowFastModel"/> has its own full engine.
    /// </summary>
    public InferenceEngine(Qwen2Decoder decoder, EngineOptions? options = null) : this(decoder, null, null, [], options) { }

    internal InferenceEngine(Qwen2Decoder decoder, VisionEncoder? vision, QwenTokenizer? tokenizer,
        IReadOnlyCollection<int> stopTokens, EngineOptions? options = null)
    {
        Options = options ?? new EngineOptions();
        Options.Validate();
        _decoder = decoder;
        _vision = vision;
        _tokenizer = tokenizer;
        _stopTokens = stopTokens;
        _prefixes = new PrefixCache(Options.PrefixCacheBytes);
        _loop = new Thread(Loop) { IsBackground = true, Name = "slowfast-engine" };
        _loop.Start();
    }

    /// <summary>What the engine holds right now (for progress lines, metrics and tests).</summary>
    public EngineStats Stats => Volatile.Read(ref _stats);
    private EngineStats _stats = new(0, 0, 0, 0, 0, 0, 0, 0, 0);
    private long _decodeSteps, _decodedTokens;
    private double _decodeSeconds;

    // ------------------------------------------------------------------ submitting

    /// <summary>
    /// Queues a generation: a tokenized prompt (with the -200 placeholder where <paramref name="visual"/>'s
    /// fast tokens go). <paramref name="onText"/> receives the answer's text as it is produced, on the
    /// engine's thread (keep it short). A bad prompt faults the request's task with a <see cref="UserError"/>.
    /// </summary>
    public GenerationRequest Submit(int[] inputIds, VisualTokens? visual, GenerationOptions? options = null,
        Action<string>? onText = null, Action<TimeSpan>? onPrefillDone = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        options ??= new GenerationOptions();
        options.Validate();
        var handle = new GenerationRequest();
        Enqueue(new Sequence
        {
            InputIds = inputIds, Visual = visual, Options = options,
            Precision = options.Precision ?? Options.DefaultPrecision,
            Cancellation = cancellation, OnText = onText, OnPrefillDone = onPrefillDone, Handle = handle,
        });
        return handle;
    }

    /// <summary>The logits of every prompt position, [Positions, Vocab], run in chunks like any prefill.</summary>
    public Task<ForwardResult> ForwardAsync(int[] inputIds, VisualTokens? visual, MatMulPrecision? precision = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        var completion = new TaskCompletionSource<ForwardResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(new Sequence
        {
            InputIds = inputIds, Visual = visual, Options = new GenerationOptions { MaxNewTokens = 1 },
            Precision = precision ?? Options.DefaultPrecision, Cancellation = cancellation, AllLogits = true,
            Handle = new GenerationRequest(), ForwardCompletion = completion,
        });
        return completion.Task;
    }

    /// <summary>
    /// Encodes a video ([frames, 3, S, S] normalized pixels; one frame = an image) into its fast and slow
    /// tokens. The engine encodes one frame per step, between decoding steps, so running answers keep
    /// streaming. <paramref name="progress"/> receives the number of frames done.
    /// </summary>
    public Task<VisualTokens> EncodeAsync(float[] pixels, int frames, MatMulPrecision? precision = null,
        IProgress<int>? progress = null, bool keepIntermediates = false, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        var vision = _vision ?? throw new InvalidOperationException("this engine has no vision tower");
        if (frames < 1) throw new UserError($"vision: frame count must be at least 1 (got {frames})");
        long frameFloats = vision.Tower.FrameFloats;
        if (pixels.LongLength != frames * frameFloats)
            throw new UserError($"vision: {frames} frame(s) of [3, {vision.ImageSize}, {vision.ImageSize}] need {frames * frameFloats} pixel values; got {pixels.LongLength}");
        return EncodeAsync(frames, (f, chw) => pixels.AsSpan((int)(f * frameFloats), (int)frameFloats).CopyTo(chw),
            precision, progress, keepIntermediates, cancellation);
    }

    /// <summary>
    /// Encodes <paramref name="frames"/> frames that <paramref name="source"/> supplies one at a time, in
    /// order, on the engine's thread (e.g. decoded from a video as they are needed, see
    /// <see cref="Media.FrameStream"/>), so no more than one frame's pixels are held.
    /// </summary>
    public Task<VisualTokens> EncodeAsync(int frames, VisionEncoder.FrameSource source, MatMulPrecision? precision = null,
        IProgress<int>? progress = null, bool keepIntermediates = false, CancellationToken cancellation = default)
    {
        var vision = _vision ?? throw new InvalidOperationException("this engine has no vision tower");
        var encoding = vision.Start(frames, source, precision ?? Options.DefaultPrecision, keepIntermediates);
        var job = new VisionJob(encoding, progress, cancellation);
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (cancellation.CanBeCanceled)
        {
            var wake = cancellation.Register(() => _wake.Release());
            job.Completion.Task.ContinueWith(_ => wake.Dispose(), TaskScheduler.Default);
        }
        _incomingVision.Enqueue(job);
        _wake.Release();
        return job.Completion.Task;
    }

    private void Enqueue(Sequence s)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        // A cancelled request must not wait for the next step to be noticed when the loop is idle.
        if (s.Cancellation.CanBeCanceled) s.WakeOnCancel = s.Cancellation.Register(() => _wake.Release());
        _incoming.Enqueue(s);
        _wake.Release();
    }

    // ------------------------------------------------------------------ the loop

    private void Loop()
    {
        while (!_stopping)
        {
            bool worked;
            try { worked = RunOnce(); }
            catch (Exception e)
            {
                // A fault outside any one request's work (it has its own handling): nothing running can
                // be trusted to go on, but the engine keeps serving new requests.
                foreach (var s in _active.ToList()) { Release(s, keepPrefix: false); Fail(s, e); }
                worked = true;
            }
            PublishStats();
            if (!worked) _wake.Wait();
        }
        FailEverything(new ObjectDisposedException(nameof(InferenceEngine)));
    }

    /// <summary>One step of the loop; false when there was nothing to do.</summary>
    private bool RunOnce()
    {
        TakeIncoming();
        DropCancelled();
        Admit();

        bool worked = false;
        var batch = new List<Sequence>(_active.Count);
        foreach (var s in _active) if (!s.Prefilling) batch.Add(s);
        // Prompt chunks share one budget of positions a step, oldest first.
        int budget = Options.PrefillChunkTokens;
        bool prefilling = false;
        foreach (var s in _active)
        {
            if (!s.Prefilling || budget == 0) continue;
            s.ChunkPositions = Math.Min(budget, s.Prompt.Length - s.Cache.Length);
            budget -= s.ChunkPositions;
            batch.Add(s);
            prefilling = true;
        }
        if (batch.Count > 0)
        {
            // Sequences in different arithmetic cannot share a product.
            var clock = Stopwatch.StartNew();
            foreach (var group in batch.GroupBy(s => MatMul.Effective(s.Precision)).ToList())
                Step(group.ToList(), group.Key);
            if (!prefilling)
            {
                _decodeSteps++;
                _decodedTokens += batch.Count;
                _decodeSeconds += clock.Elapsed.TotalSeconds;
            }
            worked = true;
        }
        if (_visionQueue.Count > 0)
        {
            EncodeVisionStep(_visionQueue.Peek());
            worked = true;
        }
        return worked;
    }

    private void TakeIncoming()
    {
        while (_incoming.TryDequeue(out var s)) _waiting.Add(s);
        while (_incomingVision.TryDequeue(out var job)) _visionQueue.Enqueue(job);
    }

    private void DropCancelled()
    {
        for (int i = _waiting.Count - 1; i >= 0; i--)
            if (_waiting[i].Cancellation.IsCancellationRequested) { Cancel(_waiting[i]); _waiting.RemoveAt(i); }
        for (int i = _active.Count - 1; i >= 0; i--)
            if (_active[i].Cancellation.IsCancellationRequested)
            {
                // The prompt positions it has run are as good as a finished prompt's (each depends only on
                // those before it): the question asked again (a stopped answer, a retried request) reuses them.
                var s = _active[i];
                Release(s, keepPrefix: !s.AllLogits);
                Cancel(s);
            }
        if (_visionQueue.Any(j => j.Cancellation.IsCancellationRequested))
        {
            var jobs = _visionQueue.ToList();
            _visionQueue.Clear();
            foreach (var j in jobs)
                if (j.Cancellation.IsCancellationRequested) j.Completion.TrySetCanceled(j.Cancellation);
                else _visionQueue.Enqueue(j);
        }
    }

    /// <summary>Admits waiting requests in arrival order while a slot and the KV-cache budget allow.</summary>
    private void Admit()
    {
        while (_waiting.Count > 0 && _active.Count < Options.MaxConcurrentSequences)
        {
            var s = _waiting[0];
            try
            {
                if (!s.Prepared) Prepare(s);
                if (s.CacheBytes > Options.KvCacheBudgetBytes)
                    throw new UserError($"the request needs {s.CacheBytes / 1048576.0:F0} MiB of KV cache ({s.Capacity} positions), over the engine's budget of " +
                        $"{Options.KvCacheBudgetBytes / 1048576.0:F0} MiB; use fewer frames, a shorter prompt or fewer new tokens");
            }
            catch (Exception e)
            {
                _waiting.RemoveAt(0);
                Fail(s, e);
                continue;
            }
            if (_kvBytesInUse + s.CacheBytes > Options.KvCacheBudgetBytes) return;   // waits for running ones to finish
            _waiting.RemoveAt(0);
            try { Start(s); }
            catch (Exception e) { Release(s, keepPrefix: false); Fail(s, e); }   // e.g. no memory for its cache
        }
    }

    /// <summary>Builds the request's decoder input (embeddings, token types, cross-attention rows) once.</summary>
    private void Prepare(Sequence s)
    {
        var visual = s.Visual;
        if (visual != null && visual.Hidden != _decoder.Hidden)
            throw new UserError($"the visual tokens are {visual.Hidden} wide but the decoder's hidden size is {_decoder.Hidden}");
        s.Prompt = DecoderPrompt.Build(_decoder, s.InputIds, visual?.Fast, visual?.FastCount ?? 0);
        if (s.AllLogits && (long)s.Prompt.Length * _decoder.VocabSize > Array.MaxLength)
            throw new UserError($"forward: {s.Prompt.Length} positions × {_decoder.VocabSize} vocabulary logits do not fit in one array; use a shorter prompt or fewer frames");
        s.CrossRows = CrossAttentionRows.ForPrompt(_decoder.Config, s.Prompt.TokenTypes);
        s.Positions = PromptPositions.For(s.Prompt, s.CrossRows, visual, s.Precision);
        int limit = DecoderPrompt.ContextLimit(_decoder.Config);
        s.Capacity = s.AllLogits ? s.Prompt.Length : (int)Math.Min(limit, (long)s.Prompt.Length + s.Options.MaxNewTokens);
        s.CacheBytes = KvCache.BytesFor(_decoder.Config, s.Capacity);
    }

    private void Start(Sequence s)
    {
        s.AdmittedAt = s.SinceSubmitted.Elapsed;
        s.Cache = _decoder.CreateCache(s.Capacity);
        _kvBytesInUse += s.CacheBytes;
        _active.Add(s);
        if (!s.AllLogits)
        {
            // Reuse what an earlier prompt computed; at least the last position runs, for its logits.
            var (cached, shared) = _prefixes.Lookup(s.Positions);
            shared = Math.Min(shared, s.Prompt.Length - 1);
            if (cached != null && shared > 0) s.Cache.CopyPrefixFrom(cached, shared);
            s.Reused = s.Cache.Length;
            s.Sampler = new Sampler(s.Options);
            s.Stream = _tokenizer?.CreateStreamingDecoder(skipSpecialTokens: true);
            s.PendingEmbedding = new float[_decoder.Hidden];
        }
        s.Slow = SlowKeyValuesFor(s);
        s.Logits = s.AllLogits ? new float[(long)s.Prompt.Length * _decoder.VocabSize] : new float[_decoder.VocabSize];
    }

    /// <summary>Slow-token keys/values are computed once per video and arithmetic, and shared by its requests.</summary>
    private SlowKeyValues? SlowKeyValuesFor(Sequence s)
    {
        var visual = s.Visual;
        if (visual == null || visual.SlowCount == 0) return null;
        if (s.Options.RecomputeSlowKeyValues)
            return _decoder.CreateSlowKeyValues(visual.Slow, visual.SlowCount, cacheProjections: false);
        var perPrecision = _slowKeyValues.GetOrCreateValue(visual);
        var precision = MatMul.Effective(s.Precision);
        if (!perPrecision.TryGetValue(precision, out var kv))
            perPrecision[precision] = kv = _decoder.CreateSlowKeyValues(visual.Slow, visual.SlowCount);
        return kv;
    }

    /// <summary>One batched forward pass over sequences of one arithmetic, then sampling.</summary>
    private void Step(List<Sequence> group, MatMulPrecision precision)
    {
        var chunks = new List<SequenceChunk>(group.Count);
        foreach (var s in group) chunks.Add(NextChunk(s));
        try
        {
            _decoder.Forward(chunks, _workspace, precision);
        }
        catch (Exception e)
        {
            // A failed pass may have written some layers of some caches: those sequences cannot go on.
            foreach (var s in group) { Release(s, keepPrefix: false); Fail(s, e); }
            return;
        }
        foreach (var s in group)
        {
            try { AfterForward(s); }
            catch (Exception e) { Release(s, keepPrefix: false); Fail(s, e); }
        }
    }

    /// <summary>The sequence's share of the next pass: its pending token, or its next prompt chunk.</summary>
    private SequenceChunk NextChunk(Sequence s)
    {
        int hidden = _decoder.Hidden;
        if (!s.Prefilling)
        {
            _decoder.Embed([s.PendingToken], s.PendingEmbedding);
            // A generated token attends to the slow tokens (as a response token does in training) only with
            // the option on; otherwise the reference multiplies that branch by zero, so it is not run.
            bool attend = s.DecodeReadsSlowTokens;
            return new SequenceChunk
            {
                Cache = s.Cache, Embeddings = s.PendingEmbedding, Count = 1,
                CrossAttentionRows = attend ? new[] { 0 } : Array.Empty<int>(), Slow = s.Slow,
                Logits = LogitRows.Last, LogitsOut = s.Logits,
            };
        }
        int start = s.Cache.Length, count = s.ChunkPositions;
        int end = start + count;
        var rows = s.CrossRows.Where(r => r >= start && r < end).Select(r => r - start).ToArray();
        bool last = end == s.Prompt.Length;
        return new SequenceChunk
        {
            Cache = s.Cache, Embeddings = s.Prompt.Embeddings.AsMemory(start * hidden, count * hidden), Count = count,
            CrossAttentionRows = rows, Slow = s.Slow,
            Logits = s.AllLogits ? LogitRows.All : last ? LogitRows.Last : LogitRows.None,
            LogitsOut = s.AllLogits ? s.Logits.AsMemory(start * _decoder.VocabSize) : s.Logits,
        };
    }

    private void AfterForward(Sequence s)
    {
        if (s.AllLogits)
        {
            if (s.Prefilling) return;
            Release(s, keepPrefix: false);
            s.WakeOnCancel.Dispose();
            s.ForwardCompletion!.TrySetResult(new ForwardResult(s.Logits, s.Prompt.Length, _decoder.VocabSize, s.InputIds, s.Prompt.TokenTypes, s.Visual));
            return;
        }
        if (s.Prefilling) return;   // more prompt chunks to go
        if (s.PendingToken < 0)
        {
            s.FirstTokenAt = s.SinceSubmitted.Elapsed;
            s.OnPrefillDone?.Invoke(s.FirstTokenAt - s.AdmittedAt);
        }

        if (s.Options.KeepStepLogits) (s.StepLogits ??= new()).Add(s.Logits.ToArray());
        int token = s.Sampler.Next(s.Logits);
        FinishReason? reason = null;
        if (s.Options.StopAtEndTokens && _stopTokens.Contains(token)) reason = FinishReason.Stop;
        else
        {
            s.Generated.Add(token);
            if (s.Stream != null) Emit(s, s.Stream.Push(token));
            if (s.Generated.Count >= s.Options.MaxNewTokens) reason = FinishReason.Length;
            else if (s.Cache.Length >= s.Cache.Capacity) reason = FinishReason.Context;
        }
        if (reason is not { } finished)
        {
            s.PendingToken = token;
            return;
        }
        if (s.Stream != null) Emit(s, s.Stream.Flush());
        Release(s, keepPrefix: true);
        s.WakeOnCancel.Dispose();
        var now = s.SinceSubmitted.Elapsed;
        s.Handle.Source.TrySetResult(new GenerationResult(s.Text.ToString(), s.Generated.ToArray(), finished, s.Prompt.Length,
            s.FirstTokenAt - s.AdmittedAt, now - s.FirstTokenAt)
        {
            ReusedPositions = s.Reused,
            StepLogits = s.StepLogits,
            TimeToFirstToken = s.FirstTokenAt,
            Precision = MatMul.Effective(s.Precision),
        });
    }

    private static void Emit(Sequence s, string piece)
    {
        if (piece.Length == 0) return;
        s.Text.Append(piece);
        s.OnText?.Invoke(piece);
    }

    /// <summary>
    /// Frees the sequence's slot and budget; with <paramref name="keepPrefix"/>, its cache goes to the prefix
    /// cache, for the positions it holds (<see cref="Sequence.CachedPositions"/>): the prompt's, or those run
    /// before a cancellation mid-prefill, and the answer's where a follow-up can reuse them.
    /// </summary>
    private void Release(Sequence s, bool keepPrefix)
    {
        if (!_active.Remove(s)) return;
        _kvBytesInUse -= s.CacheBytes;
        if (keepPrefix && Options.PrefixCacheBytes > 0 && !s.Options.RecomputeSlowKeyValues)
            _prefixes.Add(s.CachedPositions(), s.Cache);
    }

    private void EncodeVisionStep(VisionJob job)
    {
        try
        {
            // Alone, the tower takes several frames a step (its last stage and the projector run them
            // together); with sequences decoding, one frame, so their next tokens wait less.
            job.Encoding.EncodeNextFrames(_active.Count == 0 ? int.MaxValue : 1, job.Progress, job.Cancellation);
            if (!job.Encoding.Done) return;
            _visionQueue.Dequeue();
            job.Completion.TrySetResult(job.Encoding.Finish());
        }
        catch (OperationCanceledException) when (job.Cancellation.IsCancellationRequested)
        {
            _visionQueue.Dequeue();
            job.Completion.TrySetCanceled(job.Cancellation);
        }
        catch (Exception e)
        {
            _visionQueue.Dequeue();
            job.Completion.TrySetException(e);
        }
    }

    private static void Cancel(Sequence s)
    {
        s.WakeOnCancel.Dispose();
        if (s.ForwardCompletion != null) s.ForwardCompletion.TrySetCanceled(s.Cancellation);
        else s.Handle.Source.TrySetCanceled(s.Cancellation);
    }

    private static void Fail(Sequence s, Exception e)
    {
        if (e is OperationCanceledException && s.Cancellation.IsCancellationRequested) { Cancel(s); return; }
        s.WakeOnCancel.Dispose();
        if (s.ForwardCompletion != null) s.ForwardCompletion.TrySetException(e);
        else s.Handle.Source.TrySetException(e);
    }

    private void FailEverything(Exception e)
    {
        TakeIncoming();
        foreach (var s in _waiting.Concat(_active).ToList()) Fail(s, e);
        _waiting.Clear();
        _active.Clear();
        foreach (var job in _visionQueue) job.Completion.TrySetException(e);
        _visionQueue.Clear();
    }

    private void PublishStats() => Volatile.Write(ref _stats, new EngineStats(_active.Count, _waiting.Count, _visionQueue.Count,
        _kvBytesInUse, _prefixes.Count, _prefixes.Bytes, _decodeSteps, _decodedTokens, _decodeSeconds));

    /// <summary>Stops the loop after its current step; requests still queued or running fail.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Release();
        if (Thread.CurrentThread != _loop) _loop.Join();
    }

    private sealed record VisionJob(VisionEncoder.Encoding Encoding, IProgress<int>? Progress, CancellationToken Cancellation)
    {
        public TaskCompletionSource<VisualTokens> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>A snapshot of an engine's load.</summary>
/// <param name="Running">Sequences admitted (prefilling or decoding).</param>
/// <param name="Waiting">Requests waiting for a slot or KV-cache budget.</param>
/// <param name="VideosEncoding">Videos waiting for or in the vision tower.</param>
/// <param name="KvCacheBytes">Bytes of KV cache the running sequences hold.</param>
/// <param name="CachedPrefixes">Finished prompts kept for prefix reuse.</param>
/// <param name="CachedPrefixBytes">Their bytes.</param>
/// <param name="DecodeSteps">Steps so far that only decoded (no prompt chunk in the batch).</param>
/// <param name="DecodedTokens">Tokens those steps produced (one per sequence in the batch).</param>
/// <param name="DecodeSeconds">Time those steps took: <c>DecodedTokens / DecodeSeconds</c> is the aggregate decoding speed.</param>
public sealed record EngineStats(int Running, int Waiting, int VideosEncoding, long KvCacheBytes, int CachedPrefixes, long CachedPrefixBytes,
    long DecodeSteps, long DecodedTokens, double DecodeSeconds);
