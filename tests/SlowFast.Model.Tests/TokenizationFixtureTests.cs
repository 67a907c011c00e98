using System.Text.Json;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>Ids and decoded text from the Rust <c>tokenizers</c> library (Fixtures/qwen-tokenizer/encodings.jsonl).</summary>
public class TokenizationFixtureTests
{
    public static TheoryData<int> FixtureLines()
    {
        var data = new TheoryData<int>();
        int count = TokenizationTestSupport.ReadJsonLines("encodings.jsonl").Count();
        for (int i = 0; i < count; i++)
            data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureLines))]
    public void Encodes_and_decodes_like_huggingface(int line)
    {
        var entry = TokenizationTestSupport.ReadJsonLines("encodings.jsonl").ElementAt(line);
        string text = entry.GetProperty("text").GetString()!;
        int[] expectedIds = entry.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        string expectedDecoded = entry.GetProperty("decoded").GetString()!;
        var tokenizer = TokenizationTestSupport.Tokenizer;

        int[] ids = tokenizer.Encode(text);

        Assert.Equal(expectedIds, ids);
        Assert.Equal(expectedDecoded, tokenizer.Decode(expectedIds));
    }

    [Fact]
    public void Fixture_file_is_complete()
    {
        // Guards against a truncated copy: the shared fixture has 20 lines.
        Assert.Equal(20, TokenizationTestSupport.ReadJsonLines("encodings.jsonl").Count());
    }

    [Fact]
    public void Vocabulary_facts_match_qwen()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        Assert.Equal(151_643 + 26, tokenizer.VocabSize);
        Assert.Equal(151_643, tokenizer.EndOfTextId);
        Assert.Equal(151_644, tokenizer.ImStartId);
        Assert.Equal(151_645, tokenizer.ImEndId);
        Assert.Equal(9707, tokenizer.TokenToId("Hello"));
        Assert.Equal("Ġworld", tokenizer.IdToToken(1879));
        Assert.Equal("<|im_end|>", tokenizer.IdToToken(151_645));
        Assert.Null(tokenizer.TokenToId("no such token"));
        Assert.Null(tokenizer.IdToToken(-1));
        Assert.Null(tokenizer.IdToToken(tokenizer.VocabSize));
        Assert.True(tokenizer.IsSpecial(tokenizer.ImEndId));
        Assert.False(tokenizer.IsSpecial(tokenizer.TokenToId("<think>")!.Value));
    }
}
