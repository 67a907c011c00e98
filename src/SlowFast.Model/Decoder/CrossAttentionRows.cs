namespace SlowFast.Model.Decoder;

/// <summary>
/// Token types as the reference records them for the hybrid layers, and which positions of a forward
/// pass read the slow tokens.
/// </summary>
public static class TokenTypes
{
    /// <summary>System and user text (at inference every text token: there are no labels).</summary>
    public const int UserText = 1;
    /// <summary>Response text (training labels; generated tokens when they attend to the slow tokens).</summary>
    public const int Response = 2;
    /// <summary>A fast visual token placed in the sequence. (The reference's 4, batch padding, never
    /// occurs here: batched sequences are never padded, each runs at its own length.)</summary>
    public const int Visual = 3;
}

public static class CrossAttentionRows
{
    /// <summary>
    /// The rows of a prompt that add the gated cross-attention to the slow tokens, as the reference's
    /// hybrid attention selects them:
    /// <list type="bullet">
    /// <item>no visual token in the sequence (the reference's all_text_mask is false): none — the
    /// branch's output is multiplied by zero, so it is skipped;</item>
    /// <item>"vanilla": every row (visual tokens included);</item>
    /// <item>"text-only-vanilla": text rows (types 1 and 2);</item>
    /// <item>"text-only-vanilla-masksystem": text rows from the first visual token on (the system
    /// prompt and the user turn's prefix before the video are left out).</item>
    /// </list>
    /// </summary>
    public static int[] ForPrompt(SlowFastConfig config, ReadOnlySpan<int> tokenTypes)
    {
        int firstVisual = tokenTypes.IndexOf(TokenTypes.Visual);
        if (firstVisual < 0) return [];
        var rows = new List<int>(tokenTypes.Length);
        int start = config.TextOnlyCrossAttention && config.MaskSystemTokens ? firstVisual : 0;
        for (int i = start; i < tokenTypes.Length; i++)
        {
            // (token_type - 2) <= 0 in the reference: types 1 and 2 (and nothing else we produce).
            if (!config.TextOnlyCrossAttention || tokenTypes[i] <= TokenTypes.Response) rows.Add(i);
        }
        return rows.ToArray();
    }
}
