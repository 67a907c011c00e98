using System.Text.Json;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>
/// Finds and loads the real Qwen tokenizer.json once per test run: $SLOWFAST_TOKENIZER_JSON, or
/// .cache/qwen-tokenizer/tokenizer.json under the repository root (the folder with SlowFast.sln).
/// A missing file fails the tests loudly: scripts/install-deps.sh fetches it.
/// </summary>
internal static class TokenizationTestSupport
{
    private static readonly Lazy<QwenTokenizer> SharedTokenizer = new(() => QwenTokenizer.FromFile(TokenizerJsonPath()));

    public static QwenTokenizer Tokenizer => SharedTokenizer.Value;

    public static string TokenizerJsonPath()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("SLOWFAST_TOKENIZER_JSON");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            if (!File.Exists(fromEnvironment))
                throw new InvalidOperationException($"SLOWFAST_TOKENIZER_JSON={fromEnvironment} does not exist; unset it to use .cache/qwen-tokenizer/tokenizer.json (scripts/install-deps.sh installs it).");
            return fromEnvironment;
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "SlowFast.sln")))
                continue;
            string path = Path.Combine(dir.FullName, ".cache", "qwen-tokenizer", "tokenizer.json");
            if (File.Exists(path))
                return path;
            throw new InvalidOperationException(
                $"The Qwen tokenizer is missing ({path}). Run scripts/install-deps.sh from the repository root, " +
                "or set SLOWFAST_TOKENIZER_JSON to a tokenizer.json.");
        }
        throw new InvalidOperationException(
            "Cannot find the repository root (SlowFast.sln) above the test folder to locate .cache/qwen-tokenizer/tokenizer.json; " +
            "run scripts/install-deps.sh or set SLOWFAST_TOKENIZER_JSON.");
    }

    public static string FixturePath(string name) =>
        Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen-tokenizer", name);

    /// <summary>Lines of a JSON-lines fixture, parsed.</summary>
    public static IEnumerable<JsonElement> ReadJsonLines(string name)
    {
        foreach (string line in File.ReadLines(FixturePath(name)))
        {
            if (line.Length == 0)
                continue;
            using var document = JsonDocument.Parse(line);
            yield return document.RootElement.Clone();
        }
    }
}
