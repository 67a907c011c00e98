namespace SlowFast.Eval.Tests.MiniBenchmarks;

/// <summary>
/// A miniature copy of one benchmark, written in its own layout (annotation files with the benchmark's field names
/// and file format, plus small generated videos), for end-to-end tests of `slowfast eval`. The end-to-end tests find
/// every implementation in this assembly by reflection, so a task's miniature only has to exist.
/// </summary>
public interface IMiniBenchmark
{
    /// <summary>The <c>EvalTask.Name</c> this miniature is for.</summary>
    string Task { get; }

    /// <summary>Writes the miniature into <paramref name="dataDir"/> (which exists and is empty) and returns how many samples it has.</summary>
    int Write(string dataDir);
}
