using System.Diagnostics;
using System.Text;

namespace SlowFast.Packaging.Tests;

/// <summary>
/// Every package of the repository packed once per test run into a temporary feed, under a version of its own
/// (so nothing cached from an earlier run is used), the `slowfast` tool installed from it into a temporary tool
/// path, and a tiny checkpoint and a video made for the tests that use them.
/// </summary>
public sealed class PackedFeed : IDisposable
{
    public static readonly string[] PackageIds =
        ["SlowFast.Core", "SlowFast.Tensors", "SlowFast.Media", "SlowFast.Hub", "SlowFast.Model",
         "SlowFast.Extensions.AI", "SlowFast.Server", "SlowFast.Cli"];

    public string RepoRoot { get; } = FindRepoRoot();
    public string Root { get; } = Directory.CreateTempSubdirectory("sf-packaging-").FullName;
    public string Version { get; } = $"0.0.1-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
    public string Feed => Path.Combine(Root, "feed");
    public string ToolPath => Path.Combine(Root, "tools");
    public string Slowfast => Path.Combine(ToolPath, "slowfast");
    public string ModelDir => Path.Combine(Root, "tiny");
    public string VideoPath => Path.Combine(Root, "clip.mp4");
    public string TokenizerJson => Path.Combine(RepoRoot, ".cache", "qwen-tokenizer", "tokenizer.json");

    public PackedFeed()
    {
        // Pack what the test run's own configuration built (scripts/test.sh builds Release first); otherwise build.
        var pack = new List<string> { Path.Combine(RepoRoot, "scripts", "pack.sh"), "--out", Feed, "--version", Version };
        if (AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}"))
            pack.Add("--no-build");
        Run.Checked("bash", pack, RepoRoot, TimeSpan.FromMinutes(10));

        Run.Checked("dotnet", ["tool", "install", "SlowFast.Cli", "--version", Version, "--tool-path", ToolPath,
            "--add-source", Feed], Root, TimeSpan.FromMinutes(5));

        if (!File.Exists(TokenizerJson))
            throw new InvalidOperationException($"{TokenizerJson} missing: run scripts/install-deps.sh --tests");
        Run.Checked(Slowfast, ["create-model", "--preset", "tiny", "--out", ModelDir, "--tokenizer", TokenizerJson], Root, TimeSpan.FromMinutes(2));
        Run.Checked("ffmpeg", ["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x128:rate=8:duration=1",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", VideoPath], Root, TimeSpan.FromMinutes(1));
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        // The restore of the test projects put this run's packages into the global package folder: take them out.
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in PackageIds)
        {
            string dir = Path.Combine(packages, id.ToLowerInvariant(), Version);
            try
            {
                if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
                string idDir = Path.GetDirectoryName(dir)!;
                if (Directory.Exists(idDir) && !Directory.EnumerateFileSystemEntries(idDir).Any()) Directory.Delete(idDir);
            }
            catch (IOException) { }
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SlowFast.sln"))) return dir.FullName;
        throw new InvalidOperationException("the tests run from outside the repository (no SlowFast.sln above them)");
    }
}

[CollectionDefinition(Name)]
public sealed class PackedFeedCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}

/// <summary>Runs a program to completion with a time limit, collecting its output.</summary>
public static class Run
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Program(string program, IEnumerable<string> args, string workingDirectory, TimeSpan limit,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in {limit}");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static Result Checked(string program, IEnumerable<string> args, string workingDirectory, TimeSpan limit,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var list = args.ToList();
        var r = Program(program, list, workingDirectory, limit, environment);
        if (r.ExitCode != 0)
        {
            var message = new StringBuilder($"{program} {string.Join(' ', list)} exited with {r.ExitCode}\n");
            message.AppendLine(Tail(r.Stdout)).AppendLine(Tail(r.Stderr));
            throw new InvalidOperationException(message.ToString());
        }
        return r;
    }

    private static string Tail(string s) => s.Length <= 4000 ? s : s[^4000..];
}
