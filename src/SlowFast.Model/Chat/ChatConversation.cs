using System.Text;

namespace SlowFast.Model.Chat;

public enum ChatSpeaker
{
    User,
    Assistant,
}

/// <summary>One turn. A null <see cref="Text"/> is the open assistant turn the model completes.</summary>
public readonly record struct ChatTurn(ChatSpeaker Role, string? Text);

/// <summary>
/// The reference's "qwen_1_5" conversation template (llava/conversation.py, separator style
/// CHATML; "qwen_2" is the same template). The prompt is built as
/// <code>
/// &lt;|im_start|&gt;system\n{system}&lt;|im_end|&gt;\n
/// &lt;|im_start|&gt;user\n{message}&lt;|im_end|&gt;\n            one block per non-empty message
/// &lt;|im_start|&gt;assistant\n                                 an open turn (null or empty message)
/// </code>
/// i.e. each role header is followed by a newline, each finished message by "&lt;|im_end|&gt;\n".
/// For a video question the first user message is "&lt;image&gt;\n" + question
/// (<see cref="MultimodalPrompt.VideoQuestion"/>), and the generation prompt ends with an open
/// assistant turn (<see cref="AddAssistantPrompt"/>), as the reference's demo and evaluation do.
/// </summary>
public sealed class ChatConversation
{
    /// <summary>The reference template's system message.</summary>
    public const string DefaultSystemPrompt = "You are a helpful assistant.";

    private const string MessageEnd = "<|im_end|>";
    private const string UserHeader = "<|im_start|>user";
    private const string AssistantHeader = "<|im_start|>assistant";
    private const string SystemHeader = "<|im_start|>system\n";

    private readonly List<ChatTurn> _messages = new();

    /// <param name="systemPrompt">The system message; null leaves out the system block (the
    /// reference does that for an empty system string).</param>
    public ChatConversation(string? systemPrompt = DefaultSystemPrompt)
    {
        SystemPrompt = systemPrompt;
    }

    public string? SystemPrompt { get; }

    public IReadOnlyList<ChatTurn> Messages => _messages;

    public ChatConversation AddUser(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        _messages.Add(new ChatTurn(ChatSpeaker.User, text));
        return this;
    }

    public ChatConversation AddAssistant(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        _messages.Add(new ChatTurn(ChatSpeaker.Assistant, text));
        return this;
    }

    /// <summary>Opens the assistant turn that generation fills in ("&lt;|im_start|&gt;assistant\n").</summary>
    public ChatConversation AddAssistantPrompt()
    {
        _messages.Add(new ChatTurn(ChatSpeaker.Assistant, null));
        return this;
    }

    /// <summary>
    /// The prompt string. Like the reference, a message that is null or empty renders as an open
    /// turn (header and newline, no "&lt;|im_end|&gt;").
    /// </summary>
    public string BuildPrompt()
    {
        var prompt = new StringBuilder();
        if (SystemPrompt is not null)
            prompt.Append(SystemHeader).Append(SystemPrompt).Append(MessageEnd).Append('\n');
        foreach (var message in _messages)
        {
            prompt.Append(message.Role == ChatSpeaker.User ? UserHeader : AssistantHeader).Append('\n');
            if (!string.IsNullOrEmpty(message.Text))
                prompt.Append(message.Text).Append(MessageEnd).Append('\n');
        }
        return prompt.ToString();
    }

    /// <summary>Token ids of <see cref="BuildPrompt"/>, with <see cref="MultimodalPrompt.ImageTokenIndex"/>
    /// where the prompt says "&lt;image&gt;".</summary>
    public int[] Tokenize(Tokenization.QwenTokenizer tokenizer) =>
        MultimodalPrompt.TokenizeWithImage(tokenizer, BuildPrompt());
}
