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

    /// <summary>
    /// The glibc malloc settings PyTorch runs with: every allocation from the heap, and freed memory kept
    /// for the next. With glibc's defaults, large freed buffers go back to the system and torch's next
    /// call gets fresh pages, each faulted in and zeroed on first touch: its ConvNeXt blocks took 2–4×
    /// as long (docs/benchmarks/vision-2026-12-02-allocator.md). PyTorch's CPU tuning advice is a caching
    /// allocator (jemalloc, tcmalloc) for this reason; these settings give glibc's malloc the same behaviour. A
    /// GLIBC_TUNABLES already set by the user is left as it is.
    /// </summary>
    public const string MallocTunables = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295";

    /// <summary>The script's JSON output, or null (with the reason logged).</summary>
    public static JsonNode? Run(string scriptName, IEnumerable<string> args, TextWriter log)
    {
        string? root = RepoRoot();
        if (root == null) { log.WriteLine("  torch: repository root (SlowFast.sln) not found; skipped"); return null; }
        string script = Path.Combine(root, "tools", "bench", scriptName);
        if (!File.Exists(script)) { log.WriteLine($"  torch: {script} not found; skipped"); return null; }
        if (!File.Exists(Python)) { log.WriteLine($"  torch: {Python} not found; skipped"); return null; }
        var psi = StartInfo(script, args);
        log.WriteLine($"  running GLIBC_TUNABLES={psi.Environment["GLIBC_TUNABLES"]} {Python} {string.Join(' ', psi.ArgumentList)}");
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
            var result = JsonNode.Parse(stdout);
            if (result is JsonObject o) o["glibc_tunables"] = psi.Environment["GLIBC_TUNABLES"];
            return result;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or JsonException)
        {
            log.WriteLine($"  torch: {e.Message}");
            return null;
        }
    }

    /// <summary>How <paramref name="script"/> is started: Debian's python, the arguments, <see cref="MallocTunables"/> unless the user set their own.</summary>
    public static ProcessStartInfo StartInfo(string script, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (!psi.Environment.TryGetValue("GLIBC_TUNABLES", out var own) || string.IsNullOrEmpty(own)) psi.Environment["GLIBC_TUNABLES"] = MallocTunables;
        return psi;
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
