using SlowFast.Eval.Data;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// Where a Hugging Face dataset's files land when it is downloaded as it is published (e.g. with
/// <c>huggingface-cli download --repo-type dataset REPO --local-dir DIR</c>), and the small rules the reference's
/// task utilities share: how a split's annotation shards are named, how a video file is looked up.
/// </summary>
internal static class DatasetLayout
{
    /// <summary>
    /// The annotation rows of one split: the first of <paramref name="folders"/> (relative to <paramref name="dataDir"/>,
    /// "" for the top) holding <c>SPLIT-*.parquet</c> shards (the dataset's own upload), <c>SPLIT/*.parquet</c> (the
    /// hub's converted copy) or one <c>SPLIT.json/.jsonl/.csv/.tsv/.parquet</c> file; all shards are read in name order.
    /// A <see cref="UserError"/> lists the places looked at when none has the split.
    /// </summary>
    public static IReadOnlyList<AnnotationRow> ReadSplit(string dataDir, string split, params string[] folders)
    {
        var (files, tried) = FindSplit(dataDir, split, folders);
        return files != null
            ? files.SelectMany(AnnotationFile.Read).ToList()
            : throw new UserError($"{dataDir}: no annotation file for split '{split}' (looked for {string.Join(", ", tried)})");
    }

    /// <summary>The files <see cref="ReadSplit"/> would read (null when there are none), and the places it looked.</summary>
    public static (IReadOnlyList<string>? Files, IReadOnlyList<string> Tried) FindSplit(string dataDir, string split, params string[] folders)
    {
        if (!Directory.Exists(dataDir))
            throw new UserError($"{dataDir}: data directory not found");
        var tried = new List<string>();
        foreach (var folder in folders)
        {
            var dir = Path.Combine(dataDir, folder);
            var shards = Directory.Exists(dir)
                ? Directory.GetFiles(dir, split + "-*.parquet").Order(StringComparer.Ordinal).ToList()
                : [];
            if (shards.Count == 0 && Directory.Exists(Path.Combine(dir, split)))
                shards = Directory.GetFiles(Path.Combine(dir, split), "*.parquet").Order(StringComparer.Ordinal).ToList();
            tried.Add(Path.Combine(folder, split + "-*.parquet"));
            if (shards.Count == 0)
            {
                var single = AnnotationFile.Extensions.Select(e => Path.Combine(dir, split + e)).FirstOrDefault(File.Exists);
                tried.Add(Path.Combine(folder, split + ".{" + string.Join(",", AnnotationFile.Extensions.Select(e => e.TrimStart('.'))) + "}"));
                if (single != null) shards.Add(single);
            }
            if (shards.Count > 0) return (shards, tried);
        }
        return (null, tried);
    }

    /// <summary>
    /// The video <paramref name="name"/> under <paramref name="folder"/>, relative to the data directory: with
    /// <c>.mp4</c> appended unless it already ends so, and the upper-case <c>.MP4</c> spelling taken where only that
    /// exists (as the reference's utilities try both). A video that does not exist is still returned (the runner
    /// counts and lists missing videos).
    /// </summary>
    public static string Video(string dataDir, string folder, string name)
    {
        var file = name.EndsWith(".mp4", StringComparison.Ordinal) || name.EndsWith(".MP4", StringComparison.Ordinal) ? name : name + ".mp4";
        var relative = folder.Length == 0 ? file : Path.Combine(folder, file);
        if (File.Exists(Path.Combine(dataDir, relative))) return relative;
        var upper = Path.ChangeExtension(relative, Path.GetExtension(relative) == ".mp4" ? ".MP4" : ".mp4");
        return File.Exists(Path.Combine(dataDir, upper)) ? upper : relative;
    }

    /// <summary>Throws a <see cref="UserError"/> naming the first id used twice (ids key the answer log and --resume).</summary>
    public static IReadOnlyList<EvalSample> RequireUniqueIds(IReadOnlyList<EvalSample> samples, string source)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in samples)
            if (!seen.Add(s.Id))
                throw new UserError($"{source}: sample id '{s.Id}' occurs twice");
        return samples;
    }

    /// <summary>The file the rows came from, for messages ("" when there are none).</summary>
    public static string SourceOf(IReadOnlyList<AnnotationRow> rows) => rows.Count > 0 ? rows[0].Source : "";

    /// <summary>"A", "B", ... for 0, 1, ...</summary>
    public static string Letter(int index) => ((char)('A' + index)).ToString();
}
