using System.Text;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Tests;

/// <summary>decode(encode(x)) == NFC(x): byte-level BPE loses nothing but the normalization.</summary>
public class TokenizationRoundTripTests
{
    public static TheoryData<string> Texts() => new()
    {
        "The quick brown fox jumps over the lazy dog.",
        "   many     spaces\t\ttabs \u00A0nbsp\u3000ideographic space   ",
        "\n\n\r\n \r \n\t\n",
        "0 1 22 333 4444 55555 3.14159e-10 1,000,000 ١٢٣ Ⅻ ½",
        "for (int i = 0; i < n; i++) {\n    sum += a[i] * b[i]; // dot\n}\n",
        "def f(x):\n\treturn {'a': [1, 2], \"b\": None}  # comment\n",
        "Emoji: 😀🎬👍🏽👨‍👩‍👧‍👦🏳️‍🌈 and flags 🇯🇵🇫🇷",
        "中文，日本語のテキスト、한국어 텍스트, Ελληνικά, русский, עברית, العربية, हिन्दी",
        "Decomposed: e\u0301 a\u0308 o\u0302 \u1100\u1161\u11A8 (NFC composes these)",
        "Math 𝐀𝐁𝐂 𝟎𝟏𝟐 and ancient 𠀀𠀁 and symbols ∑∫√∞ ≠ ≤",
        "It's they're we'll I'd you've she's IT'S THEY'RE 'quoted' ''double''",
        "<image>\nWhat is happening in this video?",
        "<|im_start|", "|im_end|>", "<|unknown|>",
        "\u0000\u0001\u007F\u0085\u200B\u200D\uFEFF zero-width and controls",
        "",
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void Round_trips_to_nfc(string text)
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int[] ids = tokenizer.Encode(text);
        Assert.Equal(NfcNormalizer.Normalize(text), tokenizer.Decode(ids));
        Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
    }

    [Fact]
    public void Normalizes_to_nfc_before_bpe()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        Assert.Equal(tokenizer.Encode("caf\u00E9"), tokenizer.Encode("cafe\u0301"));
    }

    [Fact]
    public void Round_trips_random_text()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        string[] alphabet =
        [
            "a", "b", "Q", "s", "'", " ", " ", "  ", "\n", "\r\n", "\t", "1", "42", ".", ",", "!?", "#",
            "é", "e\u0301", "中", "語", "한", "😀", "👍🏽", "𝐀", "\u00A0", "<", "|", ">", "<|im_end|>", "_",
        ];
        var random = new Random(42);
        for (int trial = 0; trial < 500; trial++)
        {
            var builder = new StringBuilder();
            int length = random.Next(0, 30);
            for (int i = 0; i < length; i++)
                builder.Append(alphabet[random.Next(alphabet.Length)]);
            string text = builder.ToString();
            Assert.Equal(NfcNormalizer.Normalize(text), tokenizer.Decode(tokenizer.Encode(text)));
        }
    }

    [Fact]
    public void Common_words_are_single_tokens()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        Assert.Equal(new[] { tokenizer.TokenToId("Ġvideo")!.Value }, tokenizer.Encode(" video"));
        Assert.Single(tokenizer.Encode("assistant"));
    }
}

public class TokenizationConcurrencyTests
{
    [Fact]
    public void Parallel_encoding_gives_the_same_ids()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        string[] texts = Enumerable.Range(0, 200)
            .Select(i => $"Sample {i}: the frame at {i * 0.5}s shows 猫 #{i % 7} 🎬 {new string('x', i % 13)}")
            .ToArray();
        int[][] sequential = texts.Select(tokenizer.Encode).ToArray();
        var parallel = new int[texts.Length][];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = tokenizer.Encode(texts[i]));
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(sequential[i], parallel[i]);
    }
}
