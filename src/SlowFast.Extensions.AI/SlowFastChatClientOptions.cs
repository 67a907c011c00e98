using SlowFast.Model.Caching;
using SlowFast.Model.Chat;

namespace SlowFast.Extensions.AI;

/// <summary>Settings of a <see cref="SlowFastChatClient"/>.</summary>
public sealed class SlowFastChatClientOptions
{
    /// <summary>
    /// The system message used when the conversation has none (the reference template's
    /// "You are a helpful assistant."); null leaves the system block out.
    /// </summary>
    public string? DefaultSystemPrompt { get; set; } = ChatConversation.DefaultSystemPrompt;

    /// <summary>Frames sampled from a video when a request does not say ("frames"); null: the checkpoint's default.</summary>
    public int? DefaultFrames { get; set; }

    /// <summary>
    /// Where encoded videos are kept between requests. Null: an in-memory cache owned by the client
    /// (<see cref="VideoFeatureCache.DefaultMaxMemoryBytes"/>), no files.
    /// </summary>
    public VideoFeatureCache? FeatureCache { get; set; }

    /// <summary>The model id reported in responses and metadata; null: the checkpoint directory's name.</summary>
    public string? ModelId { get; set; }

    /// <summary>Answer length when <c>ChatOptions.MaxOutputTokens</c> is not given; null: the engine's default (512).</summary>
    public int? DefaultMaxOutputTokens { get; set; }
}
