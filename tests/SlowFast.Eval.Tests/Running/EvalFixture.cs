using System.Reflection;
using System.Text.Json.Nodes;
using SlowFast.Eval.Running;
using SlowFast.Eval.Tests.MiniBenchmarks;
using SlowFast.Model;
using SlowFast.Tensors;
using SlowFast.Tensors.Kernels;

namespace SlowFast.Eval.Tests.Running;

/// <summary>
/// Shared by the end-to-end tests: a tiny random checkpoint, every miniature benchmark of this assembly written once,
/// and one plain run per miniature (the answers every other way of running must reproduce).
/// </summary>
public sealed class EvalFixture : IDisposable
{
    /// <summary>Frames per video and answer length of every test run: small, so the suite stays quick.</summary>
    public const int Frames = 4;
    public const int MaxNewTokens = 8;

    public string Root { get; } = Directory.CreateTempSubdirectory("sf-eval-tests-").FullName;
    public string ModelDir => Path.Combine(Root, "tiny");
    public string DataRoot => Path.Combine(Root, "data");

    private readonly Dictionary<string, (string Dir, int Samples)> _data = new();
    private readonly Dictionary<string, JsonObject> _baseline = new();
    private readonly Lock _lock = new();

    public EvalFixture()
    {
        var config = SlowFastConfig.WithOverrides(Presets.Get("tiny"), [], "test");
        ModelCreator.Create(config, new ModelCreator.Options(ModelDir, DType.F32, 7, Cli.Tests.SlowfastProcess.TokenizerJson()));
    }

    /// <summary>Every <see cref="IMiniBenchmark"/> in this assembly (the other tasks' miniatures join by existing).</summary>
    public static IReadOnlyList<IMiniBenchmark> Miniatures { get; } = typeof(EvalFixture).Assembly.GetTypes()
        .Where(t => typeof(IMiniBenchmark).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface && t.GetConstructor(Type.EmptyTypes) != null)
        .Select(t => (IMiniBenchmark)Activator.CreateInstance(t)!)
        .OrderBy(m => m.Task, StringComparer.Ordinal).ToList();

    public static IEnumerable<object[]> MiniatureTasks => Miniatures.Select(m => new object[] { m.Task });

    /// <summary>The miniature of <paramref name="task"/>, written on first use: its data directory and sample count.</summary>
    public (string Dir, int Samples) Data(string task)
    {
        lock (_lock)
        {
            if (_data.TryGetValue(task, out var known)) return known;
            var mini = Miniatures.Single(m => m.Task == task);
            string dir = Path.Combine(DataRoot, task);
            Directory.CreateDirectory(dir);
            return _data[task] = (dir, mini.Write(dir));
        }
    }

    public EvalRunOptions Options(string task, string outDir) => new()
    {
        Task = task, DataDir = Data(task).Dir, OutDir = outDir, Model = ModelDir, Frames = Frames, MaxNewTokens = MaxNewTokens,
        Precision = MatMulPrecision.Float32, SampleTimeLimit = TimeSpan.FromMinutes(2),
    };

    /// <summary>The plain run of <paramref name="task"/> (in this process, whole, from scratch): its directory holds the log.</summary>
    public (JsonObject Results, string Dir) Baseline(string task)
    {
        string dir = Path.Combine(Root, "runs", task, "single");
        lock (_lock)
        {
            if (_baseline.TryGetValue(task, out var done)) return (done, dir);
            var results = EvalRunner.Run(Options(task, dir), TextWriter.Null);
            _baseline[task] = results;
            return (results, dir);
        }
    }

    public static List<AnswerRecord> Log(string dir) => AnswerLog.Read(Path.Combine(dir, AnswerLog.FileName)).OrderBy(r => r.Index).ToList();

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class EvalCollection : ICollectionFixture<EvalFixture>
{
    public const string Name = "eval end to end";
}
