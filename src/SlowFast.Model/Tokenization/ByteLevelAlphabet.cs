namespace SlowFast.Model.Tokenization;

/// <summary>
/// GPT-2's reversible byte-to-character table: byte-level BPE vocabularies spell every byte as one
/// printable character. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
/// themselves; the other 68 bytes (controls, space, soft hyphen...) take U+0100, U+0101, ... in
/// byte order, so a space is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A).
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] CharOfByte = BuildCharOfByte();
    private static readonly short[] ByteOfChar = BuildByteOfChar();

    public static char ToChar(byte b) => CharOfByte[b];

    /// <summary>The byte a character stands for, or -1 when it is not in the alphabet.</summary>
    public static int ToByte(char c) => c < ByteOfChar.Length ? ByteOfChar[c] : -1;

    private static bool StandsForItself(int b) =>
        (b >= '!' && b <= '~') || (b >= '\u00A1' && b <= '\u00AC') || (b >= '\u00AE' && b <= '\u00FF');

    private static char[] BuildCharOfByte()
    {
        var table = new char[256];
        int nextShifted = 256;
        for (int b = 0; b < 256; b++)
            table[b] = StandsForItself(b) ? (char)b : (char)nextShifted++;
        return table;
    }

    private static short[] BuildByteOfChar()
    {
        var table = new short[256 + 68];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++)
            table[CharOfByte[b]] = (short)b;
        return table;
    }
}
