using System.Globalization;
using System.Text;

namespace SlowFast.Cli;

/// <summary>One option of a command: <c>--name VALUE</c>, or a flag when <see cref="ValueName"/> is null.</summary>
public sealed record OptionSpec(string Name, string? ValueName, string Description, string? Default = null, bool Repeatable = false, bool Required = false);

/// <summary>
/// A subcommand: its options, its positional arguments, and what it does. The parser is small on
/// purpose: every error is one line, <c>--help</c> works everywhere, and nothing is magic.
/// </summary>
public sealed record CommandSpec(string Name, string Summary, IReadOnlyList<OptionSpec> Options, Func<ParsedArgs, int> Run,
    string? Positional = null, string? PositionalDescription = null, string? Details = null);

/// <summary>A usage mistake (unknown option, missing value): printed with a hint, exit code 2.</summary>
public sealed class UsageError(string message) : Exception(message);

public sealed class ParsedArgs
{
    private readonly Dictionary<string, List<string>> _values = new();
    private readonly HashSet<string> _flags = new();
    public List<string> Positionals { get; } = new();
    public CommandSpec Command { get; }

    public ParsedArgs(CommandSpec command) => Command = command;

    internal void AddValue(string name, string value)
    {
        if (!_values.TryGetValue(name, out var list)) _values[name] = list = new();
        list.Add(value);
    }

    internal void AddFlag(string name) => _flags.Add(name);

    public bool Flag(string name) => _flags.Contains(name);
    public bool Has(string name) => _values.ContainsKey(name);

    public string? String(string name) =>
        _values.TryGetValue(name, out var l) ? l[^1] : Command.Options.First(o => o.Name == name).Default;

    public string Required(string name) => String(name) ?? throw new UsageError($"{Command.Name}: --{name} is required");

    public IReadOnlyList<string> All(string name) => _values.TryGetValue(name, out var l) ? l : [];

    public int Int(string name, int? min = null, int? max = null)
    {
        string s = Required(name);
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new UsageError($"{Command.Name}: --{name} expects an integer, got '{s}'");
        if (v < min || v > max) throw new UsageError($"{Command.Name}: --{name} must be between {min} and {max}, got {v}");
        return v;
    }

    public int? IntOrNull(string name, int? min = null, int? max = null) => String(name) == null ? null : Int(name, min, max);

    public double Double(string name, double? min = null, double? max = null)
    {
        string s = Required(name);
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || double.IsNaN(v))
            throw new UsageError($"{Command.Name}: --{name} expects a number, got '{s}'");
        if (v < min || v > max) throw new UsageError($"{Command.Name}: --{name} must be between {min} and {max}, got {v}");
        return v;
    }

    public double? DoubleOrNull(string name, double? min = null, double? max = null) => String(name) == null ? null : Double(name, min, max);

    public ulong ULong(string name)
    {
        string s = Required(name);
        if (!ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong v))
            throw new UsageError($"{Command.Name}: --{name} expects a non-negative integer, got '{s}'");
        return v;
    }
}

public static class CommandLineParser
{
    public static ParsedArgs Parse(CommandSpec cmd, string[] args)
    {
        var parsed = new ParsedArgs(cmd);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                parsed.Positionals.AddRange(args[(i + 1)..]);
                break;
            }
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                string name = a[2..];
                string? inline = null;
                int eq = name.IndexOf('=');
                if (eq >= 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
                var opt = cmd.Options.FirstOrDefault(o => o.Name == name)
                    ?? throw new UsageError($"{cmd.Name}: unknown option --{name}");
                if (opt.ValueName == null)
                {
                    if (inline != null) throw new UsageError($"{cmd.Name}: --{name} takes no value");
                    parsed.AddFlag(name);
                    continue;
                }
                string value = inline ?? (i + 1 < args.Length ? args[++i] : throw new UsageError($"{cmd.Name}: --{name} needs a value ({opt.ValueName})"));
                if (!opt.Repeatable && parsed.Has(name)) throw new UsageError($"{cmd.Name}: --{name} given twice");
                parsed.AddValue(name, value);
            }
            else if (a.StartsWith('-') && a.Length > 1 && !IsNumber(a))
            {
                throw new UsageError($"{cmd.Name}: unknown option {a}");
            }
            else
            {
                if (cmd.Positional == null) throw new UsageError($"{cmd.Name}: unexpected argument '{a}'");
                parsed.Positionals.Add(a);
            }
        }
        foreach (var o in cmd.Options.Where(o => o.Required))
            if (!parsed.Has(o.Name)) throw new UsageError($"{cmd.Name}: --{o.Name} is required");
        return parsed;
    }

    private static bool IsNumber(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    public static string Help(CommandSpec cmd)
    {
        var sb = new StringBuilder();
        sb.Append($"Usage: slowfast {cmd.Name}");
        foreach (var o in cmd.Options.Where(o => o.Required)) sb.Append($" --{o.Name} {o.ValueName}");
        if (cmd.Options.Any(o => !o.Required)) sb.Append(" [options]");
        if (cmd.Positional != null) sb.Append($" {cmd.Positional}");
        sb.AppendLine().AppendLine().AppendLine(cmd.Summary);
        if (cmd.Details != null) sb.AppendLine().AppendLine(cmd.Details);
        if (cmd.PositionalDescription != null) sb.AppendLine().AppendLine($"  {cmd.Positional,-26} {cmd.PositionalDescription}");
        sb.AppendLine().AppendLine("Options:");
        foreach (var o in cmd.Options)
        {
            string left = o.ValueName == null ? $"--{o.Name}" : $"--{o.Name} {o.ValueName}";
            string right = o.Description + (o.Default != null ? $" (default: {o.Default})" : "") + (o.Repeatable ? " (repeatable)" : "");
            sb.AppendLine($"  {left,-26} {right}");
        }
        sb.AppendLine($"  {"-h, --help",-26} show this help");
        return sb.ToString();
    }
}
