namespace SlowFast.Hub;

/// <summary>A failure worth another attempt: a dropped connection, a stall, a short body, a 5xx/429.</summary>
internal sealed class TransientFailure(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Retries hub requests that fail for passing reasons, with exponential back-off.</summary>
internal static class NetworkRetry
{
    public static bool IsTransient(Exception e, CancellationToken ct) =>
        !ct.IsCancellationRequested && e is TransientFailure or HubError { Transient: true };

    public static TimeSpan Delay(PullOptions options, int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(options.RetryDelay.TotalMilliseconds * Math.Pow(2, attempt - 1), 30_000));

    /// <summary>
    /// Runs a request, turning connection failures into <see cref="TransientFailure"/> and retrying
    /// those; after the last attempt the failure becomes a UserError saying the hub cannot be reached.
    /// </summary>
    public static async Task<T> RunAsync<T>(PullOptions options, string endpoint, string what, Func<Task<T>> request, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                try { return await request().ConfigureAwait(false); }
                catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
                {
                    throw new TransientFailure($"{e.Message}", e);
                }
            }
            catch (Exception e) when (attempt < options.MaxAttempts && IsTransient(e, ct))
            {
                await Task.Delay(Delay(options, attempt), ct).ConfigureAwait(false);
            }
            catch (TransientFailure e)
            {
                throw new HubUnreachable($"cannot reach the hub at {endpoint} for {what} ({e.Message}, {attempt} attempt(s)); check the network connection, or use --offline (HF_HUB_OFFLINE=1) to run from the cache", e);
            }
        }
    }
}

/// <summary>The hub could not be reached at all (as opposed to answering with an error).</summary>
public sealed class HubUnreachable(string message, Exception inner) : UserError(message, inner);
