using System.Globalization;
using System.Numerics;

namespace SlowFast.Media;

/// <summary>
/// Python's <c>round(x, n)</c> and <c>str(float)</c>, so strings the reference builds with f-strings
/// come out character for character. Python rounds the exact binary value half-to-even (so
/// round(2.675, 2) is 2.67), then prints the shortest text that reads back as the same double.
/// </summary>
public static class PythonFloat
{
    public static double Round(double x, int digits)
    {
        if (!double.IsFinite(x) || x == 0 || digits < 0 || digits > 20) return x;
        long bits = BitConverter.DoubleToInt64Bits(x);
        bool negative = bits < 0;
        int exponentBits = (int)((bits >> 52) & 0x7FF);
        long fraction = bits & 0xF_FFFF_FFFF_FFFFL;
        BigInteger mantissa = exponentBits == 0 ? fraction : fraction | (1L << 52);
        int exponent = (exponentBits == 0 ? 1 : exponentBits) - 1075;
        if (exponent >= 0) return x; // an integer already
        // |x| = mantissa / 2^-exponent; scale by 10^digits and round half to even.
        BigInteger denominator = BigInteger.One << -exponent;
        BigInteger scaled = mantissa * BigInteger.Pow(10, digits);
        BigInteger quotient = BigInteger.DivRem(scaled, denominator, out BigInteger remainder);
        int compare = (remainder * 2).CompareTo(denominator);
        if (compare > 0 || (compare == 0 && !quotient.IsEven)) quotient += 1;
        string text = (negative ? "-" : "") + quotient.ToString(CultureInfo.InvariantCulture) + "e-" + digits.ToString(CultureInfo.InvariantCulture);
        return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>Python's repr of a float in everyday ranges: shortest round-trip digits, at least one decimal ("10.0").</summary>
    public static string Repr(double x)
    {
        if (double.IsNaN(x)) return "nan";
        if (double.IsInfinity(x)) return x > 0 ? "inf" : "-inf";
        string s = x.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E'))
        {
            // Python switches to exponent form below 1e-4 and from 1e16; "R" uses it elsewhere too.
            double abs = Math.Abs(x);
            if (abs >= 1e-4 && abs < 1e16) s = x.ToString("0.####################", CultureInfo.InvariantCulture);
            else return s.Replace("E", "e"); // both print two-digit exponents with a sign: 1e-05, 1e+16
        }
        return s.Contains('.') ? s : s + ".0";
    }
}
