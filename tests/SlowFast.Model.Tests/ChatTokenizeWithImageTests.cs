using SlowFast.Model.Chat;

namespace SlowFast.Model.Tests;

/// <summary>
/// tokenizer_image_token (llava/mm_utils.py): the prompt is split at "&lt;image&gt;", each chunk
/// tokenized alone, and -200 put between chunks; Qwen has no BOS, so nothing else changes.
/// </summary>
public class ChatTokenizeWithImageTests
{
    [Fact]
    public void Video_prompt_ids_follow_from_the_fixture_ids()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        var line = TokenizationTestSupport.ReadJsonLines("encodings.jsonl").ElementAt(2);
        int[] fixtureIds = line.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        // In the fixture "user\n\nWhat" has "\n\n" as one token (271). With the marker in between,
        // the chunks end with "\n" (198) and start with "\n" (198), with -200 in the middle.
        int doubleNewline = Array.IndexOf(fixtureIds, 271);
        int[] expected = [.. fixtureIds[..doubleNewline], 198, -200, 198, .. fixtureIds[(doubleNewline + 1)..]];

        string prompt = new ChatConversation()
            .AddUser(MultimodalPrompt.VideoQuestion("What is the man doing?"))
            .AddAssistantPrompt()
            .BuildPrompt();

        Assert.Equal(expected, MultimodalPrompt.TokenizeWithImage(tokenizer, prompt));
        Assert.Equal(expected, new ChatConversation()
            .AddUser(MultimodalPrompt.VideoQuestion("What is the man doing?"))
            .AddAssistantPrompt()
            .Tokenize(tokenizer));
    }

    [Fact]
    public void Image_index_goes_at_every_marker()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        int[] a = tokenizer.Encode("a"), b = tokenizer.Encode(" b");
        Assert.Equal([.. a, -200, .. b, -200], MultimodalPrompt.TokenizeWithImage(tokenizer, "a<image> b<image>"));
        Assert.Equal(new[] { -200 }, MultimodalPrompt.TokenizeWithImage(tokenizer, "<image>"));
        Assert.Equal(new[] { -200, -200 }, MultimodalPrompt.TokenizeWithImage(tokenizer, "<image><image>"));
        Assert.Empty(MultimodalPrompt.TokenizeWithImage(tokenizer, ""));
        Assert.Equal([.. a, -7, .. b], MultimodalPrompt.TokenizeWithImage(tokenizer, "a<image> b", imageTokenIndex: -7));
    }

    [Fact]
    public void Text_without_a_marker_tokenizes_as_usual()
    {
        var tokenizer = TokenizationTestSupport.Tokenizer;
        string text = "<|im_start|>user\nHello<|im_end|>\n";
        Assert.Equal(tokenizer.Encode(text), MultimodalPrompt.TokenizeWithImage(tokenizer, text));
        Assert.DoesNotContain(MultimodalPrompt.ImageTokenIndex, MultimodalPrompt.TokenizeWithImage(tokenizer, "<imag e>"));
    }

    [Theory]
    // Expected strings printed by Python 3.11 for the reference's f-string (decord path).
    [InlineData(375, 30.0, 64, "Time: 12.5s; Time interval between frame 0.195s; video tokens:")]
    [InlineData(300, 29.97, 64, "Time: 10.0s; Time interval between frame 0.156s; video tokens:")]
    public void Video_time_instruction_matches_python_formatting(int frames, double fps, int sampled, string expected) =>
        Assert.Equal(expected, MultimodalPrompt.VideoTimeInstruction(frames, fps, sampled));

    [Theory]
    // str(round(value, digits)) from Python 3.11.
    [InlineData(2.675, 2, "2.67")]
    [InlineData(0.125, 2, "0.12")]
    [InlineData(0.375, 2, "0.38")]
    [InlineData(1.005, 2, "1.0")]
    [InlineData(10.0, 2, "10.0")]
    [InlineData(0.0625, 3, "0.062")]
    [InlineData(0.3125, 3, "0.312")]
    [InlineData(123.456789, 2, "123.46")]
    [InlineData(7.0 / 3, 3, "2.333")]
    [InlineData(1e-5, 3, "0.0")]
    public void Python_round_formatting(double value, int digits, string expected) =>
        Assert.Equal(expected, MultimodalPrompt.PythonRoundedFloat(value, digits));

    [Fact]
    public void Video_time_instruction_rounds_fps_half_to_even()
    {
        // round(24.5) == 24 and round(25.5) == 26 in Python: 48 frames last 2.0 s at 24 fps.
        Assert.StartsWith("Time: 2.0s;", MultimodalPrompt.VideoTimeInstruction(48, 24.5, 8));
        Assert.StartsWith("Time: 2.0s;", MultimodalPrompt.VideoTimeInstruction(52, 25.5, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => MultimodalPrompt.VideoTimeInstruction(10, 0.2, 8));
    }
}
