using System.Text.Json;
using SlowFast.Model;
using SlowFast.Model.Tokenization;

namespace SlowFast.Cli.Commands;

/// <summary><c>slowfast tokenize</c>: JSON lines {"text": ...} on stdin to {"ids": [...]} on stdout, in order.</summary>
public static class TokenizeCommand
{
    public static readonly CommandSpec Spec = new("tokenize",
        "Tokenize JSON lines {\"text\": \"...\"} from stdin into {\"ids\": [...]} lines on stdout (no special tokens added).",
        [
            new("model", "DIR|ID", ModelArgument.Description + " (its tokenizer.json is used)", Required: true),
        ],
        Run);

    private static int Run(ParsedArgs a)
    {
        string dir = ModelArgument.Resolve(a.Required("model"));
        var tokenizer = QwenTokenizer.FromFile(Path.Combine(dir, "tokenizer.json"));
        using var stdout = new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false)) { AutoFlush = false };
        using var stdin = new StreamReader(Console.OpenStandardInput(), System.Text.Encoding.UTF8);
        int lineNo = 0;
        string? line;
        while ((line = stdin.ReadLine()) != null)
        {
            lineNo++;
            if (line.Trim().Length == 0) continue;
            string text;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                    throw new UserError($"stdin line {lineNo}: expected an object with a string field \"text\"");
                text = t.GetString()!;
            }
            catch (JsonException e)
            {
                throw new UserError($"stdin line {lineNo}: malformed JSON ({e.Message.Split('\n')[0]})");
            }
            var ids = tokenizer.Encode(text);
            stdout.Write("{\"ids\": [");
            for (int i = 0; i < ids.Length; i++)
            {
                if (i > 0) stdout.Write(", ");
                stdout.Write(ids[i]);
            }
            stdout.Write("]}\n");
            stdout.Flush();
        }
        return 0;
    }
}
