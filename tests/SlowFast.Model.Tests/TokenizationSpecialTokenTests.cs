using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>Added tokens are cut out of the raw text whole, before normalization and BPE.</summary>
public class TokenizationSpecialTokenTests
{
    [Fact]
    public void Special_tokens_inside_text_become_their_ids()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int[] ids = tokenizer.Encode("a<|im_end|>b<|im_start|><|im_end|><|endoftext|>");
        int[] expected = [.. tokenizer.Encode("a"), tokenizer.ImEndId, .. tokenizer.Encode("b"),
            tokenizer.ImStartId, tokenizer.ImEndId, tokenizer.EndOfTextId];
        Assert.Equal(expected, ids);
    }

    [Fact]
    public void Text_on_each_side_is_encoded_on_its_own()
    {
        // " world" after a special token keeps its leading-space token, as the Rust tokenizer does.
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int[] ids = tokenizer.Encode("hello<|im_end|> world");
        Assert.Equal([.. tokenizer.Encode("hello"), tokenizer.ImEndId, .. tokenizer.Encode(" world")], ids);
    }

    [Fact]
    public void Incomplete_or_unknown_markers_are_plain_text()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        foreach (string text in new[] { "<|im_start|", "<|im_start", "<|IM_START|>", "<| im_end |>" })
        {
            int[] ids = tokenizer.Encode(text);
            Assert.DoesNotContain(tokenizer.ImStartId, ids);
            Assert.DoesNotContain(tokenizer.ImEndId, ids);
            Assert.Equal(text, tokenizer.Decode(ids));
        }
    }

    [Fact]
    public void Non_special_added_tokens_are_matched_but_kept_when_skipping_specials()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int think = tokenizer.TokenToId("<think>")!.Value;
        int[] ids = tokenizer.Encode("<|im_start|>assistant\n<think>\nok</think><|im_end|>");
        Assert.Equal(tokenizer.ImStartId, ids[0]);
        Assert.Contains(think, ids);
        Assert.Equal("assistant\n<think>\nok</think>", tokenizer.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("<|im_start|>assistant\n<think>\nok</think><|im_end|>", tokenizer.Decode(ids));
    }

    [Fact]
    public void Added_tokens_are_matched_before_normalization()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        // A combining accent after the marker must not be composed into it, and the marker still matches.
        int[] ids = tokenizer.Encode("<|im_end|>\u0301");
        Assert.Equal(tokenizer.ImEndId, ids[0]);
        Assert.Equal("<|im_end|>\u0301", tokenizer.Decode(ids));
    }

    [Fact]
    public void Leftmost_then_longest_token_wins()
    {
        var splitter = new AddedTokenSplitter([new AddedToken(1, "<a>", true), new AddedToken(2, "<a>b", true), new AddedToken(3, "b<c>", true)]);
        Assert.Equal(new[] { "x", "#2", "<c>" }, Split(splitter, "x<a>b<c>"));
        Assert.Equal(new[] { "#3" }, Split(splitter, "b<c>"));
        Assert.Equal(new[] { "#1", "#1" }, Split(splitter, "<a><a>"));
    }

    [Fact]
    public void Strip_and_single_word_flags_follow_huggingface()
    {
        var strip = new AddedTokenSplitter([new AddedToken(7, "<m>", true, LeftStrip: true, RightStrip: true)]);
        Assert.Equal(new[] { "a", "#7", "b" }, Split(strip, "a  <m>\t b"));
        var word = new AddedToken(8, "cat", false, SingleWord: true);
        var single = new AddedTokenSplitter([word]);
        Assert.Equal(new[] { "a ", "#8", " b" }, Split(single, "a cat b"));
        Assert.Equal(new[] { "concat b" }, Split(single, "concat b"));
        Assert.Equal(new[] { "cats" }, Split(single, "cats"));
    }

    private static string[] Split(AddedTokenSplitter splitter, string text)
    {
        var segments = new List<TextSegment>();
        splitter.Split(text, segments);
        return segments.Select(s => s.IsAddedToken ? $"#{s.AddedTokenId}" : text.Substring(s.Start, s.Length)).ToArray();
    }
}
