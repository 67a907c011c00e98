namespace SlowFast.Model.Tokenization;

/// <summary>
/// An entry of tokenizer.json's "added_tokens": a string that is cut out of the text whole,
/// before normalization and BPE, and always becomes <see cref="Id"/>.
/// </summary>
/// <param name="Special">Skipped by decoding with skipSpecialTokens.</param>
/// <param name="SingleWord">Matches only when not inside a word.</param>
/// <param name="LeftStrip">Swallows the whitespace before it.</param>
/// <param name="RightStrip">Swallows the whitespace after it.</param>
/// <param name="Normalized">Matched in the normalized text rather than the raw text.</param>
public sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord = false,
    bool LeftStrip = false, bool RightStrip = false, bool Normalized = false);
