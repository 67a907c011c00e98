using System.Diagnostics;
using SharpFuzz;
using SlowFast.Fuzz;

// SlowFast.Fuzz: fuzz targets for the parsers that read what a stranger sends (docs/fuzzing.md).
//   list                                  the targets
//   TARGET                                one target under afl-fuzz (SharpFuzz's fork server; scripts/fuzz.sh)
//   replay TARGET FILE|DIR...             each input once, uninstrumented; non-zero exit on a finding
//   smoke [--root DIR] [--mutations N]    every target: its corpus, its kept findings, and N mutations spread over its seeds
//   make-seeds DIR                        writes the binary seed files into DIR/TARGET/
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: SlowFast.Fuzz list | TARGET | replay TARGET PATH... | smoke [--root DIR] [--mutations N] | make-seeds DIR");
    return args.Length == 0 ? 2 : 0;
}
switch (args[0])
{
    case "list":
        foreach (var t in FuzzTarget.All) Console.WriteLine($"{t.Name,-12} {t.Description}");
        return 0;
    case "make-seeds":
        Seeds.WriteAll(args.Length > 1 ? args[1] : "fuzz/corpus");
        return 0;
    case "replay":
    {
        var target = FuzzTarget.Find(args.ElementAtOrDefault(1) ?? "") ?? throw new ArgumentException("replay: unknown target");
        var files = args.Skip(2).SelectMany(Runner.InputFiles).ToList();
        int findings = 0;
        foreach (var f in files)
        {
            if (Runner.Check(target, File.ReadAllBytes(f), f) != null) findings++;
            // What the parser said, so a replay shows whether an input was read or refused, and why.
            else Console.WriteLine($"{f}: {Runner.Outcome(target, File.ReadAllBytes(f))}");
        }
        Console.WriteLine($"{target.Name}: {files.Count} inputs, {findings} findings");
        return findings == 0 ? 0 : 1;
    }
    case "smoke":
        return Runner.Smoke(
            args.SkipWhile(a => a != "--root").Skip(1).FirstOrDefault() ?? "fuzz",
            int.Parse(args.SkipWhile(a => a != "--mutations").Skip(1).FirstOrDefault() ?? "1000"));
    default:
    {
        var target = FuzzTarget.Find(args[0]);
        if (target == null)
        {
            Console.Error.WriteLine($"unknown target '{args[0]}' (SlowFast.Fuzz list)");
            return 2;
        }
        // Nothing instrumented may run before Fuzzer.OutOfProcess.Run has mapped afl-fuzz's coverage memory (it
        // would write through a null map), so targets load what they need on their first input.
        // Refusals are swallowed; anything else escapes to SharpFuzz, which reports it to afl-fuzz as a crash.
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            Runner.Execute(target, buffer.ToArray());
        });
        return 0;
    }
}

/// <summary>Runs inputs through targets outside afl-fuzz: replay of files, and the smoke run CI does.</summary>
internal static class Runner
{
    /// <summary>An input that takes longer than this is a hang (the slowest seeds take milliseconds).</summary>
    public static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(10);

    public static void Warm(FuzzTarget target)
    {
        if (target is SlowFast.Fuzz.Targets.TokenizerTarget) SlowFast.Fuzz.Targets.TokenizerTarget.Warm();
    }

    /// <summary>"read", or the refusal's type and message.</summary>
    public static string Outcome(FuzzTarget target, byte[] input)
    {
        try
        {
            target.Run(input);
            return "read";
        }
        catch (Exception e) when (target.IsRefusal(e))
        {
            return $"refused: {e.GetType().Name}: {e.Message}";
        }
    }

    /// <summary>Runs one input; a refusal counts as passing, every other exception escapes.</summary>
    public static void Execute(FuzzTarget target, byte[] input)
    {
        try { target.Run(input); }
        catch (Exception e) when (target.IsRefusal(e)) { }
    }

    /// <summary>Runs one input on a thread of its own; returns null when it passes, else what went wrong.</summary>
    public static string? Check(FuzzTarget target, byte[] input, string label)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try { Execute(target, input); }
            catch (Exception e) { failure = e; }
        }, 64 << 20);
        var clock = Stopwatch.StartNew();
        thread.Start();
        string? finding = null;
        if (!thread.Join(HangLimit)) finding = $"hang (over {HangLimit.TotalSeconds:0} s)";
        else if (failure != null) finding = $"{failure.GetType().FullName}: {failure.Message.Split('\n')[0]}";
        if (finding == null) return null;
        Console.WriteLine($"FINDING {target.Name} {label}: {finding}");
        if (failure != null) Console.WriteLine(failure.StackTrace?.Split('\n').FirstOrDefault()?.Trim());
        if (clock.Elapsed >= HangLimit)
        {
            // The hung thread cannot be stopped: report and leave.
            Console.WriteLine($"fuzz smoke: stopped at a hang in {target.Name}");
            Environment.Exit(1);
        }
        return finding;
    }

    public static IEnumerable<string> InputFiles(string path) =>
        Directory.Exists(path)
            ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith("README", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            : File.Exists(path) ? [path] : [];

    /// <summary>
    /// Every target: the committed corpus (fuzz/corpus/TARGET), the kept findings (fuzz/findings/TARGET) and
    /// <paramref name="mutations"/> deterministic mutations spread evenly over the corpus files, uninstrumented. A target that no
    /// longer builds or an old finding that returns fails it.
    /// </summary>
    public static int Smoke(string root, int mutations)
    {
        int total = 0;
        foreach (var target in FuzzTarget.All)
        {
            var clock = Stopwatch.StartNew();
            Warm(target);
            var seeds = InputFiles(Path.Combine(root, "corpus", target.Name)).ToList();
            var kept = InputFiles(Path.Combine(root, "findings", target.Name)).ToList();
            if (seeds.Count == 0)
            {
                Console.WriteLine($"FINDING {target.Name}: no corpus under {Path.Combine(root, "corpus", target.Name)}");
                total++;
                continue;
            }
            int findings = 0, runs = 0;
            foreach (var f in seeds.Concat(kept))
            {
                runs++;
                if (Check(target, File.ReadAllBytes(f), Path.GetRelativePath(root, f)) != null) findings++;
            }
            int perSeed = Math.Max(1, mutations / seeds.Count);
            foreach (var f in seeds)
            {
                byte[] seed = File.ReadAllBytes(f);
                var random = new Random(StableHash(Path.GetFileName(f)));
                for (int i = 0; i < perSeed; i++)
                {
                    byte[] input = Mutator.Mutate(seed, random);
                    runs++;
                    if (Check(target, input, $"{Path.GetRelativePath(root, f)} mutation {i}") != null) findings++;
                }
            }
            Console.WriteLine($"fuzz smoke {target.Name,-12} {seeds.Count} seeds, {kept.Count} kept findings, {runs} runs, {findings} findings ({clock.Elapsed.TotalSeconds:0.0} s)");
            total += findings;
        }
        Console.WriteLine($"fuzz smoke: {FuzzTarget.All.Count} targets, {total} findings");
        return total == 0 ? 0 : 1;
    }

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (char c in s) h = unchecked(h * 31 + c);
        return h;
    }
}

/// <summary>AFL-style havoc on one seed, deterministic for a given <see cref="Random"/>: what the smoke run tries without afl-fuzz.</summary>
internal static class Mutator
{
    private static readonly byte[] Interesting = [0, 1, 0x7F, 0x80, 0xFF, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'-', (byte)'9', (byte)'\\'];

    public static byte[] Mutate(byte[] seed, Random random)
    {
        var data = new List<byte>(seed);
        int steps = 1 + random.Next(4);
        for (int s = 0; s < steps; s++)
        {
            int at = data.Count == 0 ? 0 : random.Next(data.Count);
            switch (random.Next(6))
            {
                case 0 when data.Count > 0: data[at] ^= (byte)(1 << random.Next(8)); break;
                case 1 when data.Count > 0: data[at] = Interesting[random.Next(Interesting.Length)]; break;
                case 2: data.Insert(at, Interesting[random.Next(Interesting.Length)]); break;
                case 3 when data.Count > 0: data.RemoveRange(at, Math.Min(data.Count - at, 1 + random.Next(8))); break;
                case 4 when data.Count > 0:
                    int length = Math.Min(data.Count - at, 1 + random.Next(16));
                    data.InsertRange(random.Next(data.Count), data.GetRange(at, length));
                    break;
                case 5 when data.Count > 0: // a decimal number somewhere becomes an extreme one
                    string[] numbers = ["-1", "0", "1e309", "99999999999999999999", "2147483648", "-9223372036854775808", "NaN", "1.5"];
                    data.InsertRange(at, System.Text.Encoding.ASCII.GetBytes(numbers[random.Next(numbers.Length)]));
                    break;
            }
        }
        return data.ToArray();
    }
}
