using System.Text;
using SlowFast.Model;
using SlowFast.Model.Tokenization;

namespace SlowFast.Fuzz.Targets;

/// <summary>
/// Two things a stranger controls: a checkpoint's tokenizer.json (an input starting with '{' is loaded as
/// one, then encodes and decodes a fixed text), and the text that the real Qwen tokenizer encodes (any
/// other input: UTF-8, or UTF-16 code units after a 0x01 byte so lone surrogates are reached, as JSON's
/// "\ud800" escapes reach them). Encoded ids are decoded back.
/// </summary>
public sealed class TokenizerTarget : FuzzTarget
{
    public override string Name => "tokenizer";
    public override string Description => "tokenizer.json loading; encoding arbitrary text with the real Qwen tokenizer";

    private const string SampleText = "Hello <|im_start|>world 123 \u00fcn\u00efcode \u4e2d\u6587 \U0001F600\n\t  end";

    // Loaded once per process: the real file is 11 MB and takes about a second.
    private static readonly Lazy<QwenTokenizer> Qwen = new(() => QwenTokenizer.FromFile(TokenizerLocator.Find(null)));

    public override void Run(byte[] input)
    {
        if (input.Length > 0 && input[0] == (byte)'{')
        {
            var tokenizer = QwenTokenizer.FromFile(Scratch.Write("tokenizer.json", input));
            tokenizer.Decode(tokenizer.Encode(SampleText));
            return;
        }
        string text = input.Length > 0 && input[0] == 1
            ? new string(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, char>(input.AsSpan(1, (input.Length - 1) & ~1)))
            : Encoding.UTF8.GetString(input);
        var ids = Qwen.Value.Encode(text);
        Qwen.Value.Decode(ids);
    }

    /// <summary>Loads the real tokenizer now, so the fuzzer's first execution does not time out on it.</summary>
    public static void Warm() => _ = Qwen.Value;
}
