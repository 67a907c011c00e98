using System.Text.RegularExpressions;

namespace SlowFast.Hub;

/// <summary>A model repository id on the hub, "org/name" (or a legacy bare "name").</summary>
public sealed partial record RepoId
{
    public string Value { get; }

    RepoId(string value) => Value = value;

    /// <summary>The cache folder name: "models--org--name" (slashes become "--").</summary>
    public string CacheFolderName => "models--" + Value.Replace("/", "--");

    public override string ToString() => Value;

    /// <summary>
    /// Parses a repo id with the hub's own rules: letters, digits, '-', '_', '.', at most one '/',
    /// no "--" or "..", no leading/trailing '-' or '.', at most 96 characters.
    /// </summary>
    public static RepoId Parse(string text)
    {
        if (!TryParse(text, out var id))
            throw new UserError($"'{text}' is not a valid hub model id (expected org/name, e.g. shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4)");
        return id;
    }

    public static bool TryParse(string? text, out RepoId id)
    {
        id = null!;
        if (string.IsNullOrEmpty(text) || text.Length > 96) return false;
        if (!Shape().IsMatch(text) || text.Contains("--") || text.Contains("..") || text.EndsWith(".git", StringComparison.Ordinal))
            return false;
        foreach (var part in text.Split('/'))
            if (part[0] is '-' or '.' || part[^1] is '-' or '.') return false;
        id = new RepoId(text);
        return true;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)?$")]
    private static partial Regex Shape();
}
