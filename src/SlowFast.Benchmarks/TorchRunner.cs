using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SlowFast.Benchmarks;

/// <summary>
/// Runs the committed PyTorch side of the benchmarks (tools/bench/*.py) with Debian's
/// /usr/bin/python3 and python3-torch in the same run, and reads the one JSON object it prints.
/// A missing interpreter, torch or script is reported and skipped, never fatal.
/// </summary>
public static class TorchRunner
{
    public const string Python = "/usr/bin/python3";

    /// <summary>The script's JSON output, or null (with the reason logged).</summary>
    public static JsonNode? Run(string scriptName, IEnumerable<string> args, TextWriter log)
    {
        string? root = RepoRoot();
        if (root == null) { log.WriteLine("  torch: repository root (SlowFast.sln) not found; skipped"); return null; }
        string script = Path.Combine(root, "tools", "bench", scriptName);
        if (!File.Exists(script)) { log.WriteLine($"  torch: {script} not found; skipped"); return null; }
        if (!File.Exists(Python)) { log.WriteLine($"  torch: {Python} not found; skipped"); return null; }
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        log.WriteLine($"  running {Python} {string.Join(' ', psi.ArgumentList)}");
        try
        {
            using var process = Process.Start(psi)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                log.WriteLine($"  torch: exit {process.ExitCode}: {stderr.Result.Trim().Split('\n').LastOrDefault()}");
                return null;
            }
            return JsonNode.Parse(stdout);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or JsonException)
        {
            log.WriteLine($"  torch: {e.Message}");
            return null;
        }
    }

    /// <summary>The folder holding SlowFast.sln, searched upwards from the current directory and from the program.</summary>
    public static string? RepoRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "SlowFast.sln"))) return dir.FullName;
        }
        return null;
    }
}
