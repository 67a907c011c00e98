using System.Text.Json;

namespace SlowFast.Hub;

/// <summary>
/// Decides which files of a model repository the engine needs, so a pull skips what it would
/// never read (PyTorch .bin duplicates, Flax/TF weights, training logs, images).
/// </summary>
public static class ModelFiles
{
    public const string Config = "config.json";
    public const string SingleWeights = "model.safetensors";
    public const string WeightsIndex = "model.safetensors.index.json";

    /// <summary>Small files used when present: tokenizer, generation and preprocessing settings.</summary>
    public static readonly IReadOnlyList<string> OptionalSmallFiles =
    [
        "generation_config.json",
        "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
        "special_tokens_map.json", "added_tokens.json",
        "preprocessor_config.json", "chat_template.json", "chat_template.jinja",
    ];

    /// <summary>Tokenizer files: a usable model snapshot has at least one of them.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles = ["tokenizer.json", "vocab.json", "tokenizer_config.json"];

    /// <summary>
    /// The files to fetch before the index is known: config, small files, and either the single
    /// weights file or the shard index (whose shards <see cref="ShardsOf"/> then adds), plus
    /// separate vision-tower safetensors when the repository has them.
    /// </summary>
    public static List<string> SelectFirstPass(RepoId repo, IReadOnlyCollection<string> repoFiles)
    {
        var present = new HashSet<string>(repoFiles, StringComparer.Ordinal);
        if (!present.Contains(Config))
            throw new UserError($"hub repository {repo} has no {Config}; it is not a model this program can run");

        var wanted = new List<string> { Config };
        wanted.AddRange(OptionalSmallFiles.Where(present.Contains));
        if (present.Contains(WeightsIndex)) wanted.Add(WeightsIndex);
        else if (present.Contains(SingleWeights)) wanted.Add(SingleWeights);
        else
        {
            bool otherFormats = repoFiles.Any(f => f.EndsWith(".bin") || f.EndsWith(".pt") || f.EndsWith(".pth") || f.EndsWith(".ckpt"));
            throw new UserError(otherFormats
                ? $"hub repository {repo} has only PyTorch pickle weights (.bin/.pt), no {SingleWeights} or {WeightsIndex}; convert it to safetensors first"
                : $"hub repository {repo} has no {SingleWeights} or {WeightsIndex}");
        }
        wanted.AddRange(repoFiles.Where(IsSeparateVisionTowerWeights).Where(f => !wanted.Contains(f)).Order(StringComparer.Ordinal));
        return wanted;
    }

    /// <summary>
    /// A safetensors file outside the language-model shards that holds vision-tower weights,
    /// e.g. "convnext-xxl-clip.safetensors" or "vision_tower/model.safetensors".
    /// </summary>
    public static bool IsSeparateVisionTowerWeights(string file)
    {
        if (!file.EndsWith(".safetensors", StringComparison.Ordinal) || file == SingleWeights) return false;
        string lower = file.ToLowerInvariant();
        return lower.Contains("vision") || lower.Contains("convnext") || lower.Contains("clip") || lower.Contains("siglip");
    }

    /// <summary>
    /// The shard files a safetensors index names in its weight_map (each once, sorted), checked
    /// against the repository's file list.
    /// </summary>
    public static List<string> ShardsOf(RepoId repo, string indexPath, IReadOnlyCollection<string>? repoFiles)
    {
        var shards = ReadIndexShards(indexPath);
        if (repoFiles is not null)
        {
            var present = new HashSet<string>(repoFiles, StringComparer.Ordinal);
            foreach (var s in shards)
                if (!present.Contains(s))
                    throw new UserError($"{WeightsIndex} of hub repository {repo} names shard '{s}', which the repository does not have");
        }
        return shards;
    }

    /// <summary>Reads the distinct shard file names from a model.safetensors.index.json.</summary>
    public static List<string> ReadIndexShards(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new UserError($"{indexPath}: no \"weight_map\" object");
            var shards = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new UserError($"{indexPath}: weight_map entry '{entry.Name}' is not a file name");
                shards.Add(HubCache.CheckRepoFilePath(entry.Value.GetString()!));
            }
            if (shards.Count == 0) throw new UserError($"{indexPath}: weight_map is empty");
            return [.. shards];
        }
        catch (JsonException e)
        {
            throw new UserError($"{indexPath}: not valid JSON ({FirstLine(e.Message)})", e);
        }
        catch (InvalidOperationException e)
        {
            // JsonDocument checks text only when it is read: invalid UTF-8, or an escaped lone surrogate.
            throw new UserError($"{indexPath}: holds text that is not valid Unicode ({FirstLine(e.Message)})", e);
        }
    }

    /// <summary>
    /// What a local model folder lacks to be usable (config, tokenizer, weights, every shard the
    /// index names); empty when it is complete. Used to trust a cached snapshot without the network.
    /// </summary>
    public static List<string> FindMissing(string folder)
    {
        var missing = new List<string>();
        if (!File.Exists(Path.Combine(folder, Config))) missing.Add(Config);
        if (!TokenizerFiles.Any(t => File.Exists(Path.Combine(folder, t)))) missing.Add("tokenizer.json");
        string index = Path.Combine(folder, WeightsIndex);
        if (File.Exists(index))
        {
            List<string> shards;
            try { shards = ReadIndexShards(index); }
            catch (UserError) { missing.Add(WeightsIndex + " (unreadable)"); return missing; }
            missing.AddRange(shards.Where(s => !File.Exists(Path.Combine(folder, s))));
        }
        else if (!File.Exists(Path.Combine(folder, SingleWeights)))
            missing.Add($"{SingleWeights} or {WeightsIndex}");
        return missing;
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
