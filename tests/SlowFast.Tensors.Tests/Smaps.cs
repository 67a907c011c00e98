using System.Globalization;

namespace SlowFast.Tensors.Tests;

/// <summary>What Linux's /proc/self/smaps says of the mapping that holds an address.</summary>
internal static class Smaps
{
    /// <summary>The lines of the mapping holding <paramref name="address"/>, each after its "Name:".</summary>
    public static Dictionary<string, string> Of(long address)
    {
        Dictionary<string, string>? fields = null;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-'), space = line.IndexOf(' ');
            if (dash > 0 && space > dash
                && long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, null, out long start)
                && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, null, out long end))
            {
                if (fields != null) return fields;
                if (address >= start && address < end) fields = new();
            }
            else if (fields != null && line.IndexOf(':') is > 0 and var colon)
                fields[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return fields ?? throw new InvalidOperationException($"no mapping holds 0x{address:x}");
    }

    /// <summary>The mapping's VmFlags ("hg": advised for huge pages).</summary>
    public static string[] VmFlags(long address) => Of(address)["VmFlags"].Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>A size field of the mapping ("FilePmdMapped", "AnonHugePages", …) in bytes.</summary>
    public static long Bytes(long address, string field) => long.Parse(Of(address)[field].Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
}
