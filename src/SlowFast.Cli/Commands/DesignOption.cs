using SlowFast.Model;

namespace SlowFast.Cli.Commands;

/// <summary><c>--design slowfast|baseline</c>, shared by <c>inspect</c>, <c>ask</c>, <c>forward</c> and <c>bench</c>.</summary>
internal static class DesignOption
{
    public static readonly OptionSpec Spec = new("design", "slowfast|baseline",
        "slowfast: the checkpoint's design (fast tokens in the sequence, slow tokens cross-attended); baseline: self-attention only " +
        "on the same weights, every frame's pooled tokens in the sequence and no cross-attention (LLaVA style)", "slowfast");

    public static VisualDesign Parse(ParsedArgs a) => (a.String("design") ?? "slowfast").ToLowerInvariant() switch
    {
        "slowfast" or "slow-fast" => VisualDesign.SlowFast,
        "baseline" => VisualDesign.Baseline,
        var other => throw new UsageError($"{a.Command.Name}: --design must be slowfast or baseline, not '{other}'"),
    };
}
