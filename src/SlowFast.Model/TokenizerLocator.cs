namespace SlowFast.Model;

/// <summary>
/// Finds the Qwen tokenizer.json to copy into a new checkpoint: an explicit path, then
/// $SLOWFAST_TOKENIZER_JSON, then .cache/qwen-tokenizer/tokenizer.json in the current directory or
/// any parent (where scripts/install-deps.sh puts it), then the same beside the program.
/// </summary>
public static class TokenizerLocator
{
    public const string EnvVar = "SLOWFAST_TOKENIZER_JSON";
    private static readonly string RelativePath = Path.Combine(".cache", "qwen-tokenizer", "tokenizer.json");

    public static string Find(string? explicitPath)
    {
        if (explicitPath != null)
        {
            if (Directory.Exists(explicitPath)) explicitPath = Path.Combine(explicitPath, "tokenizer.json");
            if (!File.Exists(explicitPath)) throw new UserError($"{explicitPath}: tokenizer file not found");
            return explicitPath;
        }
        string? env = Environment.GetEnvironmentVariable(EnvVar);
        if (!string.IsNullOrEmpty(env))
        {
            if (!File.Exists(env)) throw new UserError($"{env}: tokenizer file named by ${EnvVar} not found");
            return env;
        }
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, RelativePath);
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw new UserError("no Qwen tokenizer.json found: pass --tokenizer FILE, set $" + EnvVar + ", or run scripts/install-deps.sh");
    }
}
