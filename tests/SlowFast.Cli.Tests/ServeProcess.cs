using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SlowFast.Cli.Tests;

/// <summary>
/// The real <c>slowfast serve</c> as a child process on a free loopback port with <c>--log-format json</c>:
/// started until it says where it listens, then its standard error read a JSON line at a time.
/// </summary>
public sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _process;

    /// <summary>The base URL from the server's "listening on" line.</summary>
    public string Url { get; private set; } = "";

    /// <summary>The messages of the lines before "listening on" (what the server did at start-up).</summary>
    public List<string> StartupMessages { get; } = [];

    private ServeProcess(Process process) => _process = process;

    /// <summary>Starts <c>slowfast serve ARGS --urls http://127.0.0.1:0 --log-format json</c> and waits until it listens.</summary>
    public static async Task<ServeProcess> StartAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[SlowfastProcess.Dll, "serve", .. args, "--urls", "http://127.0.0.1:0", "--log-format", "json"])
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var server = new ServeProcess(Process.Start(psi)!);
        try
        {
            while (true)
            {
                string message = (await server.NextLineAsync())["Message"]!.GetValue<string>();
                if (message.StartsWith("listening on ", StringComparison.Ordinal)) { server.Url = message["listening on ".Length..]; return server; }
                server.StartupMessages.Add(message);
            }
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>The next line of standard error, which must be one JSON object (the JSON console formatter).</summary>
    public async Task<JsonObject> NextLineAsync()
    {
        string line = (await _process.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(2)))
            ?? throw new InvalidOperationException("the server ended: " + await _process.StandardOutput.ReadToEndAsync());
        return JsonNode.Parse(line)!.AsObject();
    }

    public async ValueTask DisposeAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
