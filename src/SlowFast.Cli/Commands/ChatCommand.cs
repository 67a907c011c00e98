using System.Text.Json.Nodes;
using SlowFast.Media;
using SlowFast.Model;
using SlowFast.Model.Generation;

namespace SlowFast.Cli.Commands;

/// <summary>
/// <c>slowfast chat</c>: a conversation about one video or image. The video is encoded once; questions
/// come from stdin, one a line, and each answer streams to stdout. Every turn is the whole conversation
/// so far, as the reference would run it (<see cref="Conversation"/>); the engine takes the positions it
/// shares with the previous turn from its prefix cache, so a follow-up computes only the last answer and
/// the new question.
/// </summary>
public static class ChatCommand
{
    /// <summary>The commands a line can give (those starting with '/'), and how a question spans lines.</summary>
    private const string CommandsHelp =
        "/reset  forget the conversation (the video stays encoded)\n" +
        "/bye    end the chat (so do /exit, /quit and end of input)\n" +
        "/help   this list\n" +
        "\"\"\"     starts and ends a question of several lines";

    public static readonly CommandSpec Spec = new("chat",
        "Talk about a video or image: questions from stdin, one a line; follow-ups reuse the conversation so far.",
        [
            .. QuestionModel.Options,
            PackedDecoderOption.OptOutSpec,
            .. VisualInputOptions.Options,
            DesignOption.Spec,
            .. CacheOptions.Options,
            .. AnswerOptions.Options,
            new("json", null, "print one JSON object a turn {turn, question, answer, precision, tokens, timings} instead of streaming"),
        ],
        Run,
        Details: "At a terminal it prompts with '>>> ' on stderr, and Ctrl-C stops the answer being written (the turn is then dropped " +
            "from the conversation). Lines starting with '/' are commands:\n" + CommandsHelp + "\n" +
            "From a pipe, the first error (such as a conversation grown past the model's context) ends the chat with exit code 1.");

    private static int Run(ParsedArgs a)
    {
        var options = AnswerOptions.Parse(a);
        bool json = a.Flag("json");
        bool interactive = !Console.IsInputRedirected;
        string? system = a.String("system");
        var err = Console.Error;

        VisualInputOptions.CheckExclusive(a);
        var design = DesignOption.Parse(a);
        var cache = CacheOptions.Create(a, err);
        using var model = QuestionModel.Load(a, PackedDecoderOption.ParseOptOut(a), err);

        var processor = new SlowFastProcessor(model.Config);
        var input = VisualInputOptions.Parse(a, processor);
        // The video is encoded before the first question: refuse now what could not fit even with a short one.
        var shortest = model.QuestionPrompt("", VisualInputOptions.HasVisual(a), system);
        int frames = VisualInputOptions.Frames(a, input);
        model.CheckPromptFits(shortest, frames, "chat", design);
        model.CheckMemory(shortest, frames, "chat", design);

        CancellationTokenSource? answering = null;
        bool encoded = false;
        using var encoding = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            // Ctrl-C while an answer is written stops it and returns to the prompt; while the video is
            // decoded and encoded it stops that (exit 130); at the prompt it ends the process as usual.
            var current = Volatile.Read(ref answering);
            if (current != null)
            {
                e.Cancel = true;
                try { current.Cancel(); }
                catch (ObjectDisposedException) { }   // the answer ended (and its source was disposed) meanwhile
            }
            else if (!Volatile.Read(ref encoded)) { e.Cancel = true; encoding.Cancel(); }
        };
        var video = VisualInputOptions.EncodeOrLoad(a, model, processor, input, cache, err, encoding.Token).Video?.ForDesign(design);
        Volatile.Write(ref encoded, true);
        var conversation = model.StartConversation(video, system);
        if (interactive) err.WriteLine("chat      " + (video == null ? "no video or image: a text-only conversation" : $"ask about the {(video.IsVideo ? "video" : "image")}") +
            "; /help lists the commands, /bye ends");

        int turn = 0;
        while (true)
        {
            if (interactive) err.Write(">>> ");
            string? line = ReadQuestion(Console.In, interactive ? err : null);
            if (line == null) break;
            if (line.Length == 0) continue;
            if (line.StartsWith('/'))
            {
                switch (line.ToLowerInvariant())
                {
                    case "/bye" or "/exit" or "/quit":
                        return 0;
                    case "/reset":
                        conversation = model.StartConversation(video, system);
                        err.WriteLine("chat      conversation forgotten; the next question starts a new one");
                        continue;
                    case "/help" or "/?":
                        err.WriteLine(CommandsHelp);
                        continue;
                    default:
                        if (!interactive) throw new UsageError($"chat: unknown command '{line}' (/help lists them)");
                        err.WriteLine($"chat      unknown command '{line}'; /help lists them");
                        continue;
                }
            }

            using var cancel = new CancellationTokenSource();
            Volatile.Write(ref answering, cancel);
            GenerationResult result;
            try
            {
                result = conversation.Ask(line, options,
                    onText: json ? null : piece => { Console.Out.Write(piece); Console.Out.Flush(); },
                    cancellation: cancel.Token);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                if (!json) Console.Out.WriteLine();
                err.WriteLine("chat      answer stopped; this turn is not kept");
                continue;
            }
            catch (UserError e) when (interactive)
            {
                err.WriteLine($"slowfast chat: error: {e.Message.ReplaceLineEndings(" ")} (/reset starts a new conversation)");
                continue;
            }
            finally { Volatile.Write(ref answering, null); }

            turn++;
            int computed = result.PromptPositions - result.ReusedPositions;
            if (json) Console.Out.WriteLine(TurnJson(turn, line, result).ToJsonString());
            else Console.Out.WriteLine();
            err.WriteLine($"turn {turn,-4} prefill {computed} position(s) ({result.ReusedPositions} reused) in {result.PrefillTime.TotalSeconds:F2} s; " +
                $"{result.TokenIds.Length} tokens in {result.DecodeTime.TotalSeconds:F2} s ({result.TokensPerSecond:F1} tokens/s), " +
                $"stopped by {result.FinishReason.ToString().ToLowerInvariant()}");
        }
        return 0;
    }

    /// <summary>
    /// The next question, trimmed: one line, or the lines between a line that starts with <c>"""</c> and
    /// one that ends with it (a pasted question of several lines), joined with newlines. Null at the end
    /// of the input; an unfinished block is a question as far as it goes. <paramref name="prompt"/> gets
    /// the continuation prompt at a terminal.
    /// </summary>
    private static string? ReadQuestion(TextReader input, TextWriter? prompt)
    {
        const string Quotes = "\"\"\"";
        string? line = input.ReadLine();
        if (line == null) return null;
        line = line.Trim();
        if (!line.StartsWith(Quotes, StringComparison.Ordinal)) return line;
        var text = new System.Text.StringBuilder();
        string rest = line[Quotes.Length..];
        while (true)
        {
            if (rest.EndsWith(Quotes, StringComparison.Ordinal))
            {
                text.Append(rest[..^Quotes.Length]);
                break;
            }
            text.Append(rest).Append('\n');
            prompt?.Write("... ");
            if (input.ReadLine() is not { } next) break;
            rest = next;
        }
        return text.ToString().Trim();
    }

    private static JsonObject TurnJson(int turn, string question, GenerationResult result) => new()
    {
        ["turn"] = turn,
        ["question"] = question,
        ["answer"] = result.Text,
        ["finish_reason"] = result.FinishReason.ToString().ToLowerInvariant(),
        ["precision"] = SlowFast.Tensors.Kernels.MatMul.EffectiveName(result.Precision),
        ["tokens"] = new JsonObject
        {
            ["prompt"] = result.PromptPositions,
            ["reused"] = result.ReusedPositions,
            ["generated"] = result.TokenIds.Length,
        },
        ["timings"] = new JsonObject
        {
            ["prefill_s"] = Math.Round(result.PrefillTime.TotalSeconds, 4),
            ["generate_s"] = Math.Round(result.DecodeTime.TotalSeconds, 4),
            ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 3),
        },
    };
}
