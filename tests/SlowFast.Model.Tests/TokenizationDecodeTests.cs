using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>Decoding bytes that are not valid UTF-8, and streaming decoding during generation.</summary>
public class TokenizationDecodeTests
{
    private static int[] ByteTokens(params byte[] bytes)
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        return bytes.Select(b => tokenizer.TokenToId(ByteLevelAlphabet.ToChar(b).ToString())!.Value).ToArray();
    }

    [Theory]
    [InlineData(new byte[] { 0xF0, 0x9F, 0x8E, 0xAC }, "🎬")]
    [InlineData(new byte[] { 0xF0, 0x9F, 0x8E }, "\uFFFD")]               // truncated: one replacement
    [InlineData(new byte[] { 0x80 }, "\uFFFD")]                          // stray continuation byte
    [InlineData(new byte[] { 0x80, 0x80, 0x41 }, "\uFFFD\uFFFDA")]
    [InlineData(new byte[] { 0xE6, 0x95, 0x41 }, "\uFFFDA")]
    [InlineData(new byte[] { 0xC3, 0x28 }, "\uFFFD(")]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 }, "\uFFFD\uFFFD\uFFFD")]  // encoded surrogate
    public void Invalid_utf8_becomes_replacement_characters(byte[] bytes, string expected) =>
        Assert.Equal(expected, TokenizationTestSupport.Tokenizer.Decode(ByteTokens(bytes)));

    [Fact]
    public void Unknown_ids_are_skipped() =>
        Assert.Equal("Hello world", TokenizationTestSupport.Tokenizer.Decode([9707, -200, 999_999, 1879]));

    [Fact]
    public void Streaming_holds_back_split_characters()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        var decoder = tokenizer.CreateStreamingDecoder();
        var ids = ByteTokens(0x41, 0xF0, 0x9F, 0x8E, 0xAC, 0x42);
        var outputs = ids.Select(decoder.Push).ToArray();
        Assert.Equal(new[] { "A", "", "", "", "🎬", "B" }, outputs);
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void Streaming_flush_releases_an_unfinished_character()
    {
        var decoder = TokenizationTestSupport.Tokenizer.CreateStreamingDecoder();
        foreach (int id in ByteTokens(0x41, 0xE6, 0x95))
            decoder.Push(id);
        Assert.Equal("\uFFFD", decoder.Flush());
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void Streaming_equals_whole_decode_on_real_and_random_ids()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        var random = new Random(7);
        var cases = new List<int[]>
        {
            tokenizer.Encode("emoji 🎬🍣👍🏽 mixed, 日本語のテキスト <|im_end|> done"),
        };
        for (int trial = 0; trial < 300; trial++)
        {
            // Random byte tokens and random vocabulary tokens, valid UTF-8 or not.
            var ids = new int[random.Next(1, 20)];
            for (int i = 0; i < ids.Length; i++)
                ids[i] = random.Next(3) == 0 ? ByteTokens((byte)random.Next(256))[0] : random.Next(tokenizer.VocabSize);
            cases.Add(ids);
        }
        foreach (bool skip in new[] { false, true })
        {
            foreach (int[] ids in cases)
            {
                var decoder = tokenizer.CreateStreamingDecoder(skip);
                string streamed = string.Concat(ids.Select(decoder.Push)) + decoder.Flush();
                Assert.Equal(tokenizer.Decode(ids, skip), streamed);
            }
        }
    }

    [Fact]
    public void Streaming_valid_text_never_shows_a_replacement_character()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int[] ids = tokenizer.Encode("👨‍👩‍👧‍👦 家族 🏳️‍🌈 ñ");
        var decoder = tokenizer.CreateStreamingDecoder();
        foreach (int id in ids)
            Assert.DoesNotContain('\uFFFD', decoder.Push(id));
    }

    [Fact]
    public void Skipping_special_tokens_drops_only_special_ones()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int[] ids = tokenizer.Encode("<|im_start|>assistant\nA cat.<|im_end|><|endoftext|>");
        Assert.Equal("assistant\nA cat.", tokenizer.Decode(ids, skipSpecialTokens: true));
    }
}
