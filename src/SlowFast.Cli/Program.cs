using SlowFast;
using SlowFast.Cli;
using SlowFast.Cli.Commands;

// The `slowfast` program: one line per command here; each command lives in Commands/.
var commands = new List<CommandSpec>
{
    CreateModelCommand.Spec,
    InspectCommand.Spec,
    TokenizeCommand.Spec,
    FramesCommandSpec.Spec,
    PullCommandSpec.Spec,
    AskCommand.Spec,
    ChatCommand.Spec,
    ForwardCommand.Spec,
    EncodeCommand.Spec,
    BenchCommand.Spec,
    ServeCommand.Spec,
    EvalCommand.Spec,
    QuantizeCommand.Spec,
};

return Cli.Run(args, commands);

namespace SlowFast.Cli
{
    public static class Cli
    {
        public static int Run(string[] args, IReadOnlyList<CommandSpec> commands)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
            {
                if (args.Length >= 2 && commands.FirstOrDefault(c => c.Name == args[1]) is { } helpFor)
                {
                    Console.Out.Write(CommandLineParser.Help(helpFor));
                    return 0;
                }
                Console.Out.Write(TopLevelHelp(commands));
                return args.Length == 0 ? 2 : 0;
            }
            if (args[0] == "--version")
            {
                Console.Out.WriteLine("slowfast " + (typeof(Cli).Assembly.GetName().Version?.ToString(3) ?? "0.0.0"));
                return 0;
            }
            var cmd = commands.FirstOrDefault(c => c.Name == args[0]);
            if (cmd == null)
            {
                Console.Error.WriteLine($"slowfast: unknown command '{args[0]}' (see slowfast --help)");
                return 2;
            }
            var rest = args[1..];
            if (rest.Contains("-h") || rest.Contains("--help"))
            {
                Console.Out.Write(CommandLineParser.Help(cmd));
                return 0;
            }
            try
            {
                var parsed = CommandLineParser.Parse(cmd, rest);
                return cmd.Run(parsed);
            }
            catch (UsageError e)
            {
                Console.Error.WriteLine($"slowfast: {e.Message} (see slowfast {cmd.Name} --help)");
                return 2;
            }
            catch (UserError e)
            {
                Console.Error.WriteLine($"slowfast {cmd.Name}: error: {OneLine(e.Message)}");
                return 1;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"slowfast {cmd.Name}: cancelled");
                return 130;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"slowfast {cmd.Name}: error: {OneLine(e.Message)}");
                return 1;
            }
            catch (OutOfMemoryException)
            {
                Console.Error.WriteLine($"slowfast {cmd.Name}: error: out of memory (try fewer frames or a smaller model)");
                return 1;
            }
            catch (Exception e) when (Environment.GetEnvironmentVariable("SLOWFAST_DEBUG") != "1")
            {
                // A bug, not bad input: still one line, with a way to see the whole trace.
                Console.Error.WriteLine($"slowfast {cmd.Name}: internal error: {e.GetType().Name}: {OneLine(e.Message)} (set SLOWFAST_DEBUG=1 for a stack trace)");
                return 70;
            }
        }

        private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();

        private static string TopLevelHelp(IReadOnlyList<CommandSpec> commands)
        {
            var sb = new System.Text.StringBuilder();
            sb.AppendLine("slowfast: run slow-fast video multimodal LLMs on the CPU");
            sb.AppendLine();
            sb.AppendLine("Usage: slowfast <command> [options]    (slowfast <command> --help for its options)");
            sb.AppendLine();
            sb.AppendLine("Commands:");
            foreach (var c in commands) sb.AppendLine($"  {c.Name,-14} {c.Summary}");
            return sb.ToString();
        }
    }
}
