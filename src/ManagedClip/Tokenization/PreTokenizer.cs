namespace ManagedClip.Tokenization;

/// <summary>
/// <c>regex.findall</c> of OpenAI's pattern, compiled with IGNORECASE, over code points:
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>.
/// Alternatives are tried in order at each position (the first that matches wins); positions where none
/// matches (whitespace, U+0345) are skipped. Character classes come from the regex module itself
/// (<see cref="UnicodeTables"/>), so supplementary-plane letters are letters and emoji are "other".
/// </summary>
internal static class PreTokenizer
{
    private static readonly string[] Literals = ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    public static List<(int Start, int Length)> Split(List<int> text)
    {
        var tokens = new List<(int, int)>();
        int i = 0;
        while (i < text.Count)
        {
            int len = MatchAt(text, i);
            if (len == 0) { i++; continue; }
            tokens.Add((i, len));
            i += len;
        }
        return tokens;
    }

    private static int MatchAt(List<int> text, int i)
    {
        int cp = text[i];
        if (cp is '<' or '\'')
            foreach (var literal in Literals)
                if (MatchesLiteral(text, i, literal)) return literal.Length;
        switch (UnicodeData.Classify(cp))
        {
            case UnicodeData.TokenClass.Letter:
            {
                int j = i + 1;
                while (j < text.Count && UnicodeData.Classify(text[j]) == UnicodeData.TokenClass.Letter) j++;
                return j - i;
            }
            case UnicodeData.TokenClass.Number:
                return 1;
            case UnicodeData.TokenClass.Other:
            {
                int j = i + 1;
                while (j < text.Count && UnicodeData.Classify(text[j]) == UnicodeData.TokenClass.Other) j++;
                return j - i;
            }
            default:
                return 0;
        }
    }

    private static bool MatchesLiteral(List<int> text, int i, string literal)
    {
        if (i + literal.Length > text.Count) return false;
        for (int k = 0; k < literal.Length; k++)
            if (!CaseInsensitiveEquals(text[i + k], literal[k])) return false;
        return true;
    }

    /// <summary>The regex module's IGNORECASE (simple case folding) for the ASCII characters of the literals:
    /// a letter matches its upper case, and 's' also matches U+017F LATIN SMALL LETTER LONG S.</summary>
    private static bool CaseInsensitiveEquals(int cp, char literal)
    {
        if (cp == literal) return true;
        if (literal is >= 'a' and <= 'z')
            return cp == literal - 32 || (literal == 's' && cp == 0x17F);
        return false;
    }
}
