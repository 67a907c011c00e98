using System.Globalization;
using SlowFast.Model.Tokenization;

namespace SlowFast.Model.Chat;

/// <summary>
/// How the reference marks where the video goes in a prompt: the text "&lt;image&gt;", which
/// tokenization turns into the placeholder id -200 (llava/constants.py IMAGE_TOKEN_INDEX); the
/// model later replaces that id with the visual tokens.
/// </summary>
public static class MultimodalPrompt
{
    public const string ImageToken = "<image>";
    public const int ImageTokenIndex = Decoder.DecoderPrompt.ImagePlaceholder;

    /// <summary>
    /// A user message asking about a video, as the reference demo and lmms-eval write it:
    /// "&lt;image&gt;\n" + question. With <paramref name="useImageStartEnd"/> (a model config's
    /// mm_use_im_start_end, false for the slow-fast checkpoints) the marker is wrapped in
    /// "&lt;im_start&gt;" and "&lt;im_end&gt;".
    /// </summary>
    public static string VideoQuestion(string question, bool useImageStartEnd = false)
    {
        ArgumentNullException.ThrowIfNull(question);
        string marker = useImageStartEnd ? "<im_start>" + ImageToken + "<im_end>" : ImageToken;
        return marker + "\n" + question;
    }

    /// <summary>
    /// Token ids of <paramref name="prompt"/> with <paramref name="imageTokenIndex"/> at each
    /// "&lt;image&gt;". As in the reference's tokenizer_image_token, the text between markers is
    /// tokenized chunk by chunk (so BPE never merges across a marker), and nothing else is added:
    /// that function only keeps a leading BOS once, and Qwen has no BOS.
    /// </summary>
    public static int[] TokenizeWithImage(QwenTokenizer tokenizer, string prompt, int imageTokenIndex = ImageTokenIndex)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        var ids = new List<int>();
        string[] chunks = prompt.Split(ImageToken);
        for (int i = 0; i < chunks.Length; i++)
        {
            if (i > 0)
                ids.Add(imageTokenIndex);
            ids.AddRange(tokenizer.Encode(chunks[i]));
        }
        return ids.ToArray();
    }

    /// <summary>
    /// The video timing string the reference's lmms-eval loader builds (slowfast_videomllm.py,
    /// decord path): fps = round(average fps) (half to even), duration = frames / fps, then
    /// "Time: {round(duration, 2)}s; Time interval between frame {round(duration / sampled, 3)}s; video tokens:"
    /// with Python's float formatting (e.g. "12.5", "10.0", "0.195"). Note that the reference
    /// computes this string but never puts it into the prompt; it is here for experiments and for
    /// parity, not used by default.
    /// </summary>
    public static string VideoTimeInstruction(int totalFrameCount, double averageFps, int sampledFrameCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(totalFrameCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sampledFrameCount);
        double fps = Math.Round(averageFps, MidpointRounding.ToEven);
        if (!(fps >= 1))
            throw new ArgumentOutOfRangeException(nameof(averageFps), averageFps, "rounds to no frames per second");
        double duration = totalFrameCount / fps;
        return $"Time: {PythonRoundedFloat(duration, 2)}s; Time interval between frame " +
               $"{PythonRoundedFloat(duration / sampledFrameCount, 3)}s; video tokens:";
    }

    /// <summary>str(round(value, digits)) in Python: rounded half to even on the exact binary value,
    /// printed as the shortest round-trip decimal with at least one fractional digit.</summary>
    internal static string PythonRoundedFloat(double value, int digits)
    {
        // .NET's fixed-point formatting rounds the exact binary value, ties to even, like Python.
        double rounded = double.Parse(value.ToString("F" + digits, CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        string text = rounded.ToString("R", CultureInfo.InvariantCulture);
        return text.Contains('.') || text.Contains('E') ? text : text + ".0";
    }
}
