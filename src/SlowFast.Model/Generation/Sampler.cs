namespace SlowFast.Model.Generation;

/// <summary>
/// Picks the next token from a row of logits with HF's processors, in HF's order: repetition penalty,
/// then (when sampling) temperature, top-k, top-p, softmax and a draw. Greedy decoding (temperature 0)
/// applies the repetition penalty and takes the first maximum. Deterministic: the draws come from a
/// seeded SplitMix64 stream, so a seed reproduces an answer on any machine.
/// </summary>
public sealed class Sampler
{
    private readonly GenerationOptions _options;
    private ulong _state;
    private readonly HashSet<int> _seen = new();
    private (int Id, float Logit)[] _candidates = [];
    private double[] _probabilities = [];

    public Sampler(GenerationOptions options)
    {
        options.Validate();
        _options = options;
        _state = options.Seed;
    }

    /// <summary>Chooses a token from <paramref name="logits"/> (modified in place by the penalty) and remembers it for the penalty.</summary>
    public int Next(Span<float> logits)
    {
        ApplyRepetitionPenalty(logits);
        int token = _options.Temperature == 0 ? ArgMax(logits) : Sample(logits);
        _seen.Add(token);
        return token;
    }

    private void ApplyRepetitionPenalty(Span<float> logits)
    {
        float penalty = (float)_options.RepetitionPenalty;
        if (penalty == 1f) return;
        foreach (int id in _seen)
        {
            float s = logits[id];
            logits[id] = s < 0 ? s * penalty : s / penalty;
        }
    }

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float max = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] > max) { max = logits[i]; best = i; }
        return best;
    }

    private int Sample(ReadOnlySpan<float> logits)
    {
        float invT = (float)(1.0 / _options.Temperature);
        if (_candidates.Length < logits.Length) _candidates = new (int, float)[logits.Length];
        int n = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float s = logits[i] * invT;
            if (!float.IsNegativeInfinity(s) && !float.IsNaN(s)) _candidates[n++] = (i, s);
        }
        if (n == 0) return ArgMax(logits);
        var c = _candidates.AsSpan(0, n);
        // Ascending by logit (ties by id, for determinism), as HF's top-p sorts.
        c.Sort(static (a, b) => a.Logit != b.Logit ? a.Logit.CompareTo(b.Logit) : b.Id.CompareTo(a.Id));

        int first = 0;
        if (_options.TopK > 0 && _options.TopK < n)
        {
            // HF keeps every token whose score is not below the k-th largest (ties included).
            float kth = c[n - _options.TopK].Logit;
            while (first < n - 1 && c[first].Logit < kth) first++;
        }
        c = c[first..];

        if (_probabilities.Length < c.Length) _probabilities = new double[c.Length];
        var p = _probabilities.AsSpan(0, c.Length);
        Softmax(c, p);
        if (_options.TopP < 1.0)
        {
            // Drop the least likely tokens while their cumulative probability stays ≤ 1 − top_p; keep at least one.
            double cumulative = 0;
            int drop = 0;
            for (; drop < c.Length - 1; drop++)
            {
                cumulative += p[drop];
                if (cumulative > 1.0 - _options.TopP) break;
            }
            c = c[drop..];
            p = p[..c.Length];
            Softmax(c, p);
        }

        double u = NextDouble();
        double acc = 0;
        for (int i = c.Length - 1; i >= 0; i--) // most likely first
        {
            acc += p[i];
            if (u < acc) return c[i].Id;
        }
        return c[^1].Id; // rounding left u ≥ Σp: the most likely token
    }

    private static void Softmax(ReadOnlySpan<(int Id, float Logit)> c, Span<double> p)
    {
        double max = c[^1].Logit, sum = 0;
        for (int i = 0; i < c.Length; i++) sum += p[i] = Math.Exp(c[i].Logit - max);
        for (int i = 0; i < c.Length; i++) p[i] /= sum;
    }

    /// <summary>SplitMix64: a uniform double in [0, 1).</summary>
    private double NextDouble()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}
