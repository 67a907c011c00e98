namespace SlowFast.Fuzz;

/// <summary>
/// One parser under fuzzing. <see cref="Run"/> feeds it one input; the input passes when it parses or the
/// parser refuses it with its user-facing error (<see cref="IsRefusal"/>). Any other exception, a hang or
/// running out of memory is a finding.
/// </summary>
public abstract class FuzzTarget
{
    /// <summary>The name on the command line and of the corpus folder (fuzz/corpus/NAME).</summary>
    public abstract string Name { get; }

    /// <summary>What a stranger controls here, in one line.</summary>
    public abstract string Description { get; }

    /// <summary>Runs the parser on one input; throws what the parser throws.</summary>
    public abstract void Run(byte[] input);

    /// <summary>The parser's documented way of saying no: the project's one-line <see cref="UserError"/> unless a target says otherwise.</summary>
    public virtual bool IsRefusal(Exception e) => e is UserError && IsOneLine(e.Message);

    protected static bool IsOneLine(string message) => message.Length > 0 && UserError.OneLine(message) == message;

    /// <summary>Every target, in the order the scripts run them.</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new Targets.SafetensorsTarget(),
        new Targets.ConfigTarget(),
        new Targets.TokenizerTarget(),
        new Targets.PixelsTarget(),
        new Targets.FfprobeTarget(),
        new Targets.HubTarget(),
        new Targets.ChatTarget(),
    ];

    public static FuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}

/// <summary>
/// A private folder for the files a target writes (parsers that take a path get their input there).
/// One per process; removed at exit. Nothing is written outside it.
/// </summary>
public static class Scratch
{
    private static readonly Lazy<string> Root = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"slowfast-fuzz-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        };
        return dir;
    });

    public static string Dir => Root.Value;

    /// <summary>A folder below the scratch root, created on first use.</summary>
    public static string Folder(string name)
    {
        string dir = Path.Combine(Dir, name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Writes <paramref name="bytes"/> to a file below the scratch root and returns its path.</summary>
    public static string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(Dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
