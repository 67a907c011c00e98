using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace SlowFast.Model.Tests;

/// <summary>Encoding is close to linear: 100 KB of text takes well under a second (asserted
/// loosely, 5 s, to stay robust on a busy machine), including degenerate single-piece inputs.</summary>
public class TokenizationPerformanceTests(ITestOutputHelper output)
{
    private const int TargetLength = 100_000;

    [Fact]
    public void Encodes_100_kb_of_mixed_text_quickly()
    {
        string paragraph = "The cat jumps onto the table at 00:12.5 and knocks over a cup; 猫がテーブルに飛び乗る。 🐈☕ " +
                           "def f(x):\n    return x**2  # square\n\n";
        var builder = new StringBuilder();
        for (int i = 0; builder.Length < TargetLength; i++)
            builder.Append(paragraph).Append(i).Append(' ');
        AssertFast("mixed text", builder.ToString());
    }

    [Theory]
    [InlineData('a')]     // one 100 K-letter piece: BPE on a single huge word
    [InlineData(' ')]     // one whitespace run
    [InlineData('=')]     // one symbol run
    [InlineData('中')]
    public void Encodes_100_kb_single_piece_quickly(char c) =>
        AssertFast($"{TargetLength} x U+{(int)c:X4}", new string(c, TargetLength));

    private void AssertFast(string label, string text)
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        tokenizer.Encode("warm up");
        var watch = Stopwatch.StartNew();
        int[] ids = tokenizer.Encode(text);
        watch.Stop();
        output.WriteLine($"{label}: {text.Length:N0} chars -> {ids.Length:N0} tokens in {watch.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{label} took {watch.Elapsed}");
        Assert.Equal(text, tokenizer.Decode(ids));
    }
}
