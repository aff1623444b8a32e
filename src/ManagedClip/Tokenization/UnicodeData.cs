using System.Collections.Frozen;

namespace ManagedClip.Tokenization;

/// <summary>
/// Look-ups over the generated <see cref="UnicodeTables"/> (Python 3.11 / <c>regex</c> module behaviour, not
/// the .NET runtime's Unicode data, which differs in version and is unavailable for normalization under
/// InvariantGlobalization).
/// </summary>
internal static class UnicodeData
{
    /// <summary>Pre-tokenizer class of a code point.</summary>
    internal enum TokenClass : byte { Skipped = 0, Letter = 1, Number = 2, Other = 3 }

    private static readonly TokenClass[] BmpClass = BuildBmpClass();
    private static readonly FrozenDictionary<int, int> Lower = Zip(UnicodeTables.LowerKeys, UnicodeTables.LowerValues);
    private static readonly FrozenDictionary<int, string> Decompositions = ZipStrings(UnicodeTables.DecompositionKeys, UnicodeTables.DecompositionValues);
    private static readonly FrozenDictionary<int, string> Width = ZipStrings(UnicodeTables.WidthKeys, UnicodeTables.WidthValues);
    private static readonly FrozenDictionary<long, int> Compositions = BuildCompositions();

    internal static TokenClass Classify(int cp)
    {
        if ((uint)cp < 0x10000) return BmpClass[cp];
        if (InRanges(UnicodeTables.Letters, cp)) return TokenClass.Letter;
        if (InRanges(UnicodeTables.Numbers, cp)) return TokenClass.Number;
        if (InRanges(UnicodeTables.Skipped, cp)) return TokenClass.Skipped;
        return TokenClass.Other;
    }

    /// <summary><c>\s</c> of the regex module.</summary>
    internal static bool IsRegexWhitespace(int cp) => InRanges(UnicodeTables.RegexWhitespace, cp);

    /// <summary>Python <c>str.isspace</c>.</summary>
    internal static bool IsPythonWhitespace(int cp) => InRanges(UnicodeTables.PythonWhitespace, cp);

    internal static bool IsCaseIgnorable(int cp) => InRanges(UnicodeTables.CaseIgnorable, cp);

    internal static bool IsCasedNotIgnorable(int cp) => InRanges(UnicodeTables.CasedNotIgnorable, cp);

    /// <summary>Python's one-code-point lower case (U+0130 and U+03A3 are handled by the caller).</summary>
    internal static int SimpleLower(int cp) => cp < 0x80 ? (cp is >= 'A' and <= 'Z' ? cp + 32 : cp) : Lower.TryGetValue(cp, out var v) ? v : cp;

    internal static bool TryGetDecomposition(int cp, out string value) => Decompositions.TryGetValue(cp, out value!);

    internal static bool TryGetWidth(int cp, out string value) => Width.TryGetValue(cp, out value!);

    internal static bool TryCompose(int first, int second, out int composite) => Compositions.TryGetValue(((long)first << 21) | (uint)second, out composite);

    internal static int CombiningClass(int cp)
    {
        if (cp < 0x300) return 0;
        var t = UnicodeTables.CombiningClasses;
        int lo = 0, hi = t.Length / 3 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < t[3 * mid]) hi = mid - 1;
            else if (cp > t[3 * mid + 1]) lo = mid + 1;
            else return t[3 * mid + 2];
        }
        return 0;
    }

    internal static bool InRanges(int[] ranges, int cp)
    {
        int lo = 0, hi = ranges.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < ranges[2 * mid]) hi = mid - 1;
            else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    private static TokenClass[] BuildBmpClass()
    {
        var table = new TokenClass[0x10000];
        Array.Fill(table, TokenClass.Other);
        Mark(UnicodeTables.Letters, TokenClass.Letter);
        Mark(UnicodeTables.Numbers, TokenClass.Number);
        Mark(UnicodeTables.Skipped, TokenClass.Skipped);
        return table;

        void Mark(int[] ranges, TokenClass c)
        {
            for (int i = 0; i < ranges.Length; i += 2)
                for (int cp = ranges[i]; cp <= ranges[i + 1] && cp < 0x10000; cp++)
                    table[cp] = c;
        }
    }

    private static FrozenDictionary<int, int> Zip(int[] keys, int[] values)
    {
        var d = new Dictionary<int, int>(keys.Length);
        for (int i = 0; i < keys.Length; i++) d[keys[i]] = values[i];
        return d.ToFrozenDictionary();
    }

    private static FrozenDictionary<int, string> ZipStrings(int[] keys, string[] values)
    {
        var d = new Dictionary<int, string>(keys.Length);
        for (int i = 0; i < keys.Length; i++) d[keys[i]] = values[i];
        return d.ToFrozenDictionary();
    }

    private static FrozenDictionary<long, int> BuildCompositions()
    {
        var t = UnicodeTables.Compositions;
        var d = new Dictionary<long, int>(t.Length / 3);
        for (int i = 0; i < t.Length; i += 3) d[((long)t[i] << 21) | (uint)t[i + 1]] = t[i + 2];
        return d.ToFrozenDictionary();
    }
}
