using System.Diagnostics;
using SlowFast.Model;
using SlowFast.Tensors;

namespace SlowFast.Extensions.AI.Tests;

/// <summary>One tiny random checkpoint (float32) and a few ffmpeg-made media files, made once per test run.</summary>
public sealed class TinyModelFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("slowfast-ai-tests-").FullName;
    public string ModelDir { get; }
    public SlowFastModel Model { get; }
    public string VideoPath { get; }
    public string OtherVideoPath { get; }
    public string ImagePath { get; }

    public TinyModelFixture()
    {
        ModelDir = Path.Combine(Root, "tiny");
        ModelCreator.Create(Presets.Get("tiny"), new ModelCreator.Options(ModelDir, DType.F32, 5, TokenizerJsonPath()));
        Model = SlowFastModel.Load(ModelDir);
        VideoPath = Ffmpeg("clip.mp4", "testsrc2=size=160x128:rate=8:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p");
        OtherVideoPath = Ffmpeg("other.mp4", "testsrc=size=128x128:rate=8:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p");
        ImagePath = Ffmpeg("still.png", "testsrc2=size=150x128:rate=1:duration=1", "-frames:v", "1");
    }

    public void Dispose()
    {
        Model.Dispose();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string Ffmpeg(string name, string source, params string[] args)
    {
        string path = Path.Combine(Root, name);
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", source }.Concat(args).Append(path))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg failed: {err}");
        return path;
    }

    /// <summary>The Qwen tokenizer that scripts/install-deps.sh puts in .cache/qwen-tokenizer (or SLOWFAST_TOKENIZER_JSON).</summary>
    public static string TokenizerJsonPath()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("SLOWFAST_TOKENIZER_JSON");
        if (!string.IsNullOrEmpty(fromEnvironment)) return fromEnvironment;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, ".cache", "qwen-tokenizer", "tokenizer.json");
            if (File.Exists(Path.Combine(dir.FullName, "SlowFast.sln")) && File.Exists(path)) return path;
        }
        throw new InvalidOperationException("no .cache/qwen-tokenizer/tokenizer.json; run scripts/install-deps.sh --tests");
    }
}

[CollectionDefinition(Name)]
public sealed class TinyModelCollection : ICollectionFixture<TinyModelFixture>
{
    public const string Name = "tiny model";
}
