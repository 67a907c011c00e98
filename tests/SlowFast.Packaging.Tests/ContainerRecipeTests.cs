namespace SlowFast.Packaging.Tests;

/// <summary>
/// The container recipe cannot be built on the project's machines (no Docker engine), so these checks read it: the
/// properties the README promises must stay in it, and the Kubernetes manifest must keep probing what it serves.
/// </summary>
public sealed class ContainerRecipeTests
{
    private static readonly string Root = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SlowFast.sln"))) return dir.FullName;
        throw new InvalidOperationException("no SlowFast.sln above the tests");
    }

    private static List<string> Instructions(string path) => File.ReadAllLines(path)
        .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();

    [Fact]
    public void Dockerfile_is_multi_stage_non_root_with_ffmpeg_volumes_serve_and_a_ready_check()
    {
        var lines = Instructions(Path.Combine(Root, "deploy", "Dockerfile"));
        var froms = lines.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, froms.Count);
        Assert.Contains("sdk:10.0", froms[0]);
        Assert.Contains("aspnet:10.0", froms[1]);
        Assert.Contains(lines, l => l.Contains("apt-get install") && l.Contains("ffmpeg"));
        var user = lines.Last(l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.NotEqual("USER root", user);
        Assert.NotEqual("USER 0", user);
        Assert.Contains(lines, l => l.StartsWith("VOLUME", StringComparison.Ordinal) && l.Contains("/data/huggingface"));
        Assert.Contains(lines, l => l.Contains("HF_HOME=/data/huggingface"));
        Assert.Contains(lines, l => l.StartsWith("HEALTHCHECK", StringComparison.Ordinal) && l.Contains("/ready"));
        Assert.Contains(lines, l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal) && l.Contains("slowfast.dll"));
        Assert.Contains(lines, l => l.StartsWith("CMD", StringComparison.Ordinal) && l.Contains("\"serve\""));
    }

    [Fact]
    public void Kubernetes_deployment_probes_ready_and_mounts_the_feature_cache_where_the_image_keeps_it()
    {
        string yaml = File.ReadAllText(Path.Combine(Root, "deploy", "kubernetes", "slowfast.yaml"));
        Assert.Contains("readinessProbe", yaml);
        Assert.Matches(@"readinessProbe:\s+httpGet:\s+path: /ready", yaml);
        Assert.Contains("mountPath: /data/features", yaml);
        Assert.Contains("- serve", yaml);
    }
}
