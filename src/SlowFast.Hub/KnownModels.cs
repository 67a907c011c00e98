namespace SlowFast.Hub;

/// <summary>The checkpoints the authors released on the hub.</summary>
public static class KnownModels
{
    /// <summary>64 frames, slow path 1 of every 4 (the default model of <c>slowfast ask</c>).</summary>
    public const string Frame64 = "shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4";

    /// <summary>96 frames, slow path 1 of every 6.</summary>
    public const string Frame96 = "shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame96-s1t6";

    public const string Default = Frame64;
}
