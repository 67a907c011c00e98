using SlowFast.Cli.Pull;
using SlowFast.Hub;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast pull</c>: a released checkpoint from the Hugging Face hub into its standard cache.</summary>
public static class PullCommandSpec
{
    public static readonly CommandSpec Spec = new("pull",
        "Download a model from the Hugging Face hub into its standard cache (~/.cache/huggingface/hub); prints the snapshot folder.",
        [
            new("revision", "REV", "branch, tag or commit sha", "main"),
            new("token", "TOKEN", "access token for gated or private repositories", "$HF_TOKEN"),
            new("offline", null, "use the cache only (also HF_HUB_OFFLINE=1)"),
            new("cache-dir", "DIR", "hub cache folder", "$HF_HUB_CACHE or $HF_HOME/hub"),
        ],
        Run,
        Positional: "REPO_ID",
        PositionalDescription: $"hub model id, e.g. {KnownModels.Default}",
        Details: "Environment: HF_ENDPOINT (mirror), HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE. Interrupted downloads resume.");

    private static int Run(ParsedArgs a)
    {
        if (a.Positionals.Count != 1) throw new UsageError("pull: expected exactly one REPO_ID");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        return PullCommand.RunAsync(a.Positionals[0], a.String("revision") is { } r && a.Has("revision") ? r : null,
            a.Has("token") ? a.String("token") : null, a.Flag("offline"), a.Has("cache-dir") ? a.String("cache-dir") : null,
            Console.Out, Console.Error, cts.Token).GetAwaiter().GetResult();
    }
}

/// <summary>Every <c>--model</c> takes a checkpoint directory or a hub id (pulled on first use, from the cache afterwards).</summary>
public static class ModelArgument
{
    public const string Description = "checkpoint directory or Hugging Face hub id";

    public static string Resolve(string idOrDirectory)
    {
        var progress = ProgressBar.ForStandardError();
        return HubClient.ResolveModel(idOrDirectory, new PullOptions(), progress);
    }
}
