namespace SlowFast.Hub;

/// <summary>The checkpoints the authors released on the hub.</summary>
public static class KnownModels
{
    // The suffix sNtM names the fast tokens' strides: temporal sampling stride N (every Nth frame is
    // taken, at least min_fast_frames) and temporal pooling stride M (each fast frame averages M of
    // them). The slow tokens always keep every frame.

    /// <summary>64 frames, s1t4: fast tokens average 4 frames each (16 fast frames); slow tokens keep all 64 (the default model of <c>slowfast ask</c>).</summary>
    public const string Frame64 = "shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame64-s1t4";

    /// <summary>96 frames, s1t6: fast tokens average 6 frames each (16 fast frames); slow tokens keep all 96.</summary>
    public const string Frame96 = "shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame96-s1t6";

    /// <summary>128 frames, s2t4: fast tokens take every 2nd frame and average 4 of those (16 fast frames); slow tokens keep all 128.</summary>
    public const string Frame128 = "shi-labs/slowfast-video-mllm-qwen2-7b-convnext-576-frame128-s2t4";

    /// <summary>Every released checkpoint.</summary>
    public static readonly string[] All = [Frame64, Frame96, Frame128];

    public const string Default = Frame64;
}
