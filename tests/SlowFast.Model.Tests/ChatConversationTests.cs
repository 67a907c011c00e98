using System.Text.Json;
using SlowFast.Model.Chat;

namespace SlowFast.Model.Tests;

/// <summary>
/// The reference's qwen_1_5 template (llava/conversation.py, CHATML): system = "&lt;|im_start|&gt;system\n"
/// + text, roles "&lt;|im_start|&gt;user"/"&lt;|im_start|&gt;assistant", sep "&lt;|im_end|&gt;"; get_prompt
/// writes system + sep + "\n", then role + "\n" + message + sep + "\n" per message, or role + "\n"
/// for the open (None) turn. The expected strings below are written out from those rules.
/// </summary>
public class ChatConversationTests
{
    private const string SingleTurnVideoPrompt =
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
        "<|im_start|>user\n<image>\nPlease describe this video in detail.<|im_end|>\n" +
        "<|im_start|>assistant\n";

    [Fact]
    public void Single_turn_video_prompt_matches_the_reference_demo()
    {
        // simple_inference_demo.py: qs = "<image>\n" + question; append (user, qs), (assistant, None).
        string prompt = new ChatConversation()
            .AddUser(MultimodalPrompt.VideoQuestion("Please describe this video in detail."))
            .AddAssistantPrompt()
            .BuildPrompt();
        Assert.Equal(SingleTurnVideoPrompt, prompt);
    }

    [Fact]
    public void Multi_turn_prompt_closes_every_finished_message()
    {
        string prompt = new ChatConversation()
            .AddUser(MultimodalPrompt.VideoQuestion("What is the man doing?"))
            .AddAssistant("He is cooking.")
            .AddUser("What does he cook?")
            .AddAssistantPrompt()
            .BuildPrompt();
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
            "<|im_start|>user\n<image>\nWhat is the man doing?<|im_end|>\n" +
            "<|im_start|>assistant\nHe is cooking.<|im_end|>\n" +
            "<|im_start|>user\nWhat does he cook?<|im_end|>\n" +
            "<|im_start|>assistant\n",
            prompt);
    }

    [Fact]
    public void System_prompt_can_be_replaced_or_left_out()
    {
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
            new ChatConversation("Be brief.").AddUser("Hi").BuildPrompt());
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            new ChatConversation(systemPrompt: null).AddUser("Hi").AddAssistantPrompt().BuildPrompt());
    }

    [Fact]
    public void Empty_message_renders_as_an_open_turn_like_the_reference()
    {
        // get_prompt tests "if message:", so "" is treated like None.
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
            new ChatConversation().AddUser("").BuildPrompt());
    }

    [Fact]
    public void Video_question_with_image_start_end_markers()
    {
        Assert.Equal("<image>\nQ?", MultimodalPrompt.VideoQuestion("Q?"));
        Assert.Equal("<im_start><image><im_end>\nQ?", MultimodalPrompt.VideoQuestion("Q?", useImageStartEnd: true));
    }

    [Fact]
    public void Prompt_without_the_image_marker_equals_the_fixture_prompt()
    {
        // Fixture line 3 is this template's prompt for "What is the man doing?" with "<image>" removed.
        var line = TokenizationTestSupport.ReadJsonLines("encodings.jsonl").ElementAt(2);
        string prompt = new ChatConversation()
            .AddUser(MultimodalPrompt.VideoQuestion("What is the man doing?"))
            .AddAssistantPrompt()
            .BuildPrompt();
        Assert.Equal(line.GetProperty("text").GetString(), prompt.Replace("<image>", ""));
    }

    [Fact]
    public void Messages_are_recorded_in_order()
    {
        var chat = new ChatConversation().AddUser("q").AddAssistant("a").AddAssistantPrompt();
        Assert.Equal(
            new[] { new ChatTurn(ChatSpeaker.User, "q"), new ChatTurn(ChatSpeaker.Assistant, "a"), new ChatTurn(ChatSpeaker.Assistant, null) },
            chat.Messages);
    }
}
