using System.Diagnostics;

namespace SlowFast.Cli.Tests;

/// <summary>Runs the real `slowfast` program (slowfast.dll beside the tests) as a child process.</summary>
public static class SlowfastProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "slowfast.dll");

    /// <summary>
    /// The feature cache of every child process (SLOWFAST_CACHE_DIR), so no test writes into the user's
    /// real cache; removed when the test run ends.
    /// </summary>
    public static readonly string CacheDir = CreateCacheDir();

    private static string CreateCacheDir()
    {
        string dir = Directory.CreateTempSubdirectory("sf-cli-cache-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        };
        return dir;
    }

    public static Result RunWithInput(string? stdin, params string[] args) => RunWithEnvironment(stdin, new Dictionary<string, string>(), args);

    public static Result RunWithEnvironment(string? stdin, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = StartInfo(args);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin != null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"slowfast {string.Join(' ', args)} did not finish in 3 minutes");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static Result Run(params string[] args) => RunWithInput(null, args);

    /// <summary>The program with <paramref name="args"/>, its standard streams redirected, writing into <see cref="CacheDir"/>.</summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["SLOWFAST_CACHE_DIR"] = CacheDir;
        return psi;
    }

    /// <summary>The repo's Qwen tokenizer (scripts/install-deps.sh puts it in .cache/qwen-tokenizer).</summary>
    public static string TokenizerJson()
    {
        string? env = Environment.GetEnvironmentVariable("SLOWFAST_TOKENIZER_JSON");
        if (!string.IsNullOrEmpty(env) && File.Exists(env)) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, ".cache", "qwen-tokenizer", "tokenizer.json");
            if (File.Exists(p)) return p;
        }
        throw new InvalidOperationException("Qwen tokenizer.json not found: run scripts/install-deps.sh first");
    }
}

/// <summary>One tiny checkpoint made by `slowfast create-model`, shared by a test class.</summary>
public sealed class TinyModelFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("sf-cli-").FullName;
    public string ModelDir => Path.Combine(Root, "tiny");

    public TinyModelFixture()
    {
        var r = SlowfastProcess.Run("create-model", "--preset", "tiny", "--out", ModelDir, "--seed", "7", "--tokenizer", SlowfastProcess.TokenizerJson());
        if (r.ExitCode != 0) throw new InvalidOperationException("create-model failed: " + r.Stderr);
    }

    /// <summary>A 2-second 320×180 test clip made with ffmpeg (once per fixture).</summary>
    public string Clip()
    {
        string path = Path.Combine(Root, "clip.mp4");
        lock (this)
        {
            if (File.Exists(path)) return path;
            var psi = new ProcessStartInfo("ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "2",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", path + ".tmp.mp4"]) { RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException("ffmpeg failed: " + p.StandardError.ReadToEnd());
            File.Move(path + ".tmp.mp4", path);
            return path;
        }
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
