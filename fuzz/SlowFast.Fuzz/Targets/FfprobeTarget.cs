using System.Text;
using SlowFast.Media;

namespace SlowFast.Fuzz.Targets;

/// <summary>
/// ffprobe's JSON report as <see cref="MediaProber"/> reads it. The report is FFmpeg's, but its values (sizes,
/// rotation, tags, packet times) are whatever the stranger's file says.
/// </summary>
public sealed class FfprobeTarget : FuzzTarget
{
    public override string Name => "ffprobe";
    public override string Description => "ffprobe JSON report as MediaProber reads it";

    public override void Run(byte[] input) => MediaProber.ParseReport("input.mp4", Encoding.UTF8.GetString(input), MediaLimits.Default);
}
