using System.Reflection;

namespace SlowFast.Eval.Tasks;

/// <summary>
/// Every benchmark `slowfast eval` knows: each concrete <see cref="EvalTask"/> of this assembly with a public
/// parameterless constructor, so adding a task is adding its file.
/// </summary>
public static class TaskCatalog
{
    private static readonly Lazy<IReadOnlyList<EvalTask>> _all = new(() => typeof(EvalTask).Assembly.GetTypes()
        .Where(t => t.IsSubclassOf(typeof(EvalTask)) && !t.IsAbstract && t.GetConstructor(Type.EmptyTypes) != null)
        .Select(t => (EvalTask)Activator.CreateInstance(t)!)
        .OrderBy(t => t.Name, StringComparer.Ordinal)
        .ToList());

    public static IReadOnlyList<EvalTask> All => _all.Value;

    /// <summary>The task called <paramref name="name"/> (case-insensitive); a <see cref="UserError"/> listing the known ones otherwise.</summary>
    public static EvalTask Get(string name) =>
        All.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new UserError($"unknown task '{name}' (known: {(All.Count == 0 ? "none" : string.Join(", ", All.Select(t => t.Name)))})");
}
