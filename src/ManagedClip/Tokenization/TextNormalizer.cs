using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace ManagedClip.Tokenization;

/// <summary>
/// OpenAI's text clean-up before BPE: <c>whitespace_clean(basic_clean(text)).lower()</c> of
/// <c>clip/simple_tokenizer.py</c>, worked on code points (Python strings are code-point sequences).
/// <list type="number">
/// <item><c>ftfy.fix_text</c> with ftfy 6 defaults, as far as it is deterministic (<see cref="FixText"/>):
/// the text is split after each line feed (and every 1,000,000 code points); <c>unescape_html='auto'</c> is
/// switched off for that segment and every later one once a segment contains '&lt;'; each segment is fixed
/// repeatedly until it stops changing with, in ftfy's order: unescape_html, [fix_encoding — NOT
/// implemented], fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks,
/// fix_surrogates, remove_terminal_escapes, remove_control_chars, NFC.
/// Left out: ftfy's mojibake repair (<c>fix_encoding</c> with restore_byte_a0, replace_lossy_sequences and
/// decode_inconsistent_utf8). It re-decodes text that looks like UTF-8 read as Latin-1 / Windows-125x /
/// MacRoman / cp437, decided by heuristic "badness" scores; ordinary text is left as it is by it, but
/// mojibake such as "cafÃ©" is repaired by OpenAI's tokenizer and not by this one.</item>
/// <item>Python <c>html.unescape</c> twice (full HTML5 entity table, entities without ';' as Python
/// accepts them, numeric references with Python's replacements), then <c>str.strip()</c>.</item>
/// <item><c>regex.sub(r'\s+', ' ', …)</c> with the regex module's <c>\s</c>, then <c>str.strip()</c>.</item>
/// <item>Python <c>str.lower()</c>: full lower-case mapping (U+0130 → "i̇"), Final_Sigma for U+03A3.</item>
/// </list>
/// </summary>
internal static class TextNormalizer
{
    private const int MaxDecodeLength = 1_000_000;

    private static readonly FrozenDictionary<string, string> Html5 = BuildHtml5();
    private static readonly FrozenDictionary<string, string> FtfyEntities = BuildFtfyEntities();
    private static readonly FrozenDictionary<int, string> InvalidCharrefs = BuildInvalidCharrefs();
    private static readonly FrozenSet<int> InvalidCodepoints = HtmlEntities.InvalidCodepoints.ToFrozenSet();

    /// <summary>Windows-1252 for bytes 0x80..0x9F; the five unassigned bytes stay as they are ("sloppy" codec).</summary>
    private static readonly int[] Cp1252C1 =
    [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
        0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];

    /// <summary>ftfy chardata.LIGATURES.</summary>
    private static readonly FrozenDictionary<int, string> Ligatures = new Dictionary<int, string>
    {
        [0x0132] = "IJ", [0x0133] = "ij", [0x0149] = "\u02BCn", [0x01F1] = "DZ", [0x01F2] = "Dz", [0x01F3] = "dz",
        [0x01C4] = "D\u017D", [0x01C5] = "D\u017E", [0x01C6] = "d\u017E", [0x01C7] = "LJ", [0x01C8] = "Lj", [0x01C9] = "lj",
        [0x01CA] = "NJ", [0x01CB] = "Nj", [0x01CC] = "nj", [0xFB00] = "ff", [0xFB01] = "fi", [0xFB02] = "fl",
        [0xFB03] = "ffi", [0xFB04] = "ffl", [0xFB05] = "\u017Ft", [0xFB06] = "st",
    }.ToFrozenDictionary();

    public static string Normalize(string text) => ToString(NormalizeToCodePoints(text));

    public static List<int> NormalizeToCodePoints(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var cps = ToCodePoints(text);
        cps = FixText(cps);
        cps = HtmlUnescape(HtmlUnescape(cps));
        cps = Strip(cps);
        cps = CollapseWhitespace(cps);
        return Lower(cps);
    }

    // ------------------------------------------------------------------ ftfy subset

    internal static List<int> FixText(List<int> text)
    {
        var output = new List<int>(text.Count);
        bool unescape = true;
        int pos = 0;
        while (pos < text.Count)
        {
            int lf = text.IndexOf('\n', pos);
            int end = lf < 0 ? text.Count : lf + 1;
            if (end - pos > MaxDecodeLength) end = pos + MaxDecodeLength;
            var segment = text.GetRange(pos, end - pos);
            if (unescape && segment.Contains('<')) unescape = false;
            output.AddRange(FixSegment(segment, unescape));
            pos = end;
        }
        return output;
    }

    private static List<int> FixSegment(List<int> text, bool unescape)
    {
        while (true)
        {
            var original = text;
            if (unescape) text = FtfyUnescapeHtml(text);
            // fix_encoding (mojibake repair) deliberately not implemented: heuristic, see the class summary.
            text = FixC1Controls(text);
            text = MapEach(text, static cp => Ligatures.TryGetValue(cp, out var s) ? s : null);
            text = MapEach(text, static cp => UnicodeData.TryGetWidth(cp, out var s) ? s : null);
            text = UncurlQuotes(text);
            text = FixLineBreaks(text);
            text = FixSurrogates(text);
            text = RemoveTerminalEscapes(text);
            text = RemoveControlChars(text);
            text = Nfc.Normalize(text);
            if (text.SequenceEqual(original)) return text;
        }
    }

    /// <summary>ftfy fixes.unescape_html: <c>&amp;#?[0-9A-Za-z]{1,24};</c> replaced when it names an entity.</summary>
    private static List<int> FtfyUnescapeHtml(List<int> text)
    {
        if (!text.Contains('&')) return text;
        var output = new List<int>(text.Count);
        int i = 0;
        while (i < text.Count)
        {
            if (text[i] == '&')
            {
                int j = i + 1;
                if (j < text.Count && text[j] == '#') j++;
                int k = j;
                while (k < text.Count && k - j < 25 && IsAsciiAlnum(text[k])) k++;
                int run = k - j;
                if (run is >= 1 and <= 24 && k < text.Count && text[k] == ';')
                {
                    var entity = ToString(text.GetRange(i, k + 1 - i));
                    string replacement = entity;
                    if (FtfyEntities.TryGetValue(entity, out var named)) replacement = named;
                    else if (entity.StartsWith("&#", StringComparison.Ordinal))
                    {
                        var decoded = ToString(HtmlUnescape(ToCodePoints(entity)));
                        if (!decoded.Contains(';')) replacement = decoded;
                    }
                    AppendString(output, replacement);
                    i = k + 1;
                    continue;
                }
            }
            output.Add(text[i]);
            i++;
        }
        return output;
    }

    private static List<int> FixC1Controls(List<int> text)
    {
        if (!text.Exists(static cp => cp is >= 0x80 and <= 0x9F)) return text;
        var output = new List<int>(text.Count);
        foreach (var cp in text) output.Add(cp is >= 0x80 and <= 0x9F ? Cp1252C1[cp - 0x80] : cp);
        return output;
    }

    private static List<int> UncurlQuotes(List<int> text)
    {
        var output = new List<int>(text.Count);
        foreach (var cp in text)
            output.Add(cp is 0x02BC or (>= 0x2018 and <= 0x201B) ? '\'' : cp is >= 0x201C and <= 0x201F ? '"' : cp);
        return output;
    }

    private static List<int> FixLineBreaks(List<int> text)
    {
        var output = new List<int>(text.Count);
        for (int i = 0; i < text.Count; i++)
        {
            int cp = text[i];
            if (cp == '\r')
            {
                if (i + 1 < text.Count && text[i + 1] == '\n') i++;
                output.Add('\n');
            }
            else output.Add(cp is 0x2028 or 0x2029 or 0x85 ? '\n' : cp);
        }
        return output;
    }

    /// <summary>Paired surrogates were already joined when the string was read; lone ones become U+FFFD.</summary>
    private static List<int> FixSurrogates(List<int> text)
    {
        var output = new List<int>(text.Count);
        foreach (var cp in text) output.Add(cp is >= 0xD800 and <= 0xDFFF ? 0xFFFD : cp);
        return output;
    }

    /// <summary>ftfy ANSI_RE <c>\033\[((?:\d|;)*)([a-zA-Z])</c>; <c>\d</c> is Unicode Nd as in Python's re.</summary>
    private static List<int> RemoveTerminalEscapes(List<int> text)
    {
        if (!text.Contains(0x1B)) return text;
        var output = new List<int>(text.Count);
        int i = 0;
        while (i < text.Count)
        {
            if (text[i] == 0x1B && i + 1 < text.Count && text[i + 1] == '[')
            {
                int j = i + 2;
                while (j < text.Count && (text[j] == ';' || IsDecimalDigit(text[j]))) j++;
                if (j < text.Count && text[j] is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z'))
                {
                    i = j + 1;
                    continue;
                }
            }
            output.Add(text[i]);
            i++;
        }
        return output;
    }

    /// <summary>ftfy CONTROL_CHARS: U+0000..U+0008, U+000B, U+000E..U+001F, U+007F, U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC.</summary>
    private static List<int> RemoveControlChars(List<int> text)
    {
        var output = new List<int>(text.Count);
        foreach (var cp in text)
            if (!(cp is <= 0x08 or 0x0B or (>= 0x0E and <= 0x1F) or 0x7F or (>= 0x206A and <= 0x206F) or 0xFEFF or (>= 0xFFF9 and <= 0xFFFC)))
                output.Add(cp);
        return output;
    }

    // ------------------------------------------------------------------ Python html.unescape

    /// <summary>Python's <c>html.unescape</c>: <c>&amp;(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f &lt;&amp;#;]{1,32};?)</c>.</summary>
    internal static List<int> HtmlUnescape(List<int> text)
    {
        if (!text.Contains('&')) return text;
        var output = new List<int>(text.Count);
        int i = 0;
        while (i < text.Count)
        {
            if (text[i] != '&') { output.Add(text[i]); i++; continue; }
            int j = i + 1;
            if (j < text.Count && text[j] == '#')
            {
                bool hex = false;
                int k = j + 1;
                int start = k;
                while (k < text.Count && text[k] is >= '0' and <= '9') k++;
                if (k == start && k < text.Count && text[k] is 'x' or 'X')
                {
                    hex = true;
                    start = ++k;
                    while (k < text.Count && IsAsciiHex(text[k])) k++;
                }
                if (k == start) { output.Add('&'); i++; continue; } // no digits: not a reference
                long num = 0;
                for (int m = start; m < k; m++)
                {
                    int digit = text[m] <= '9' ? text[m] - '0' : (text[m] | 0x20) - 'a' + 10;
                    num = Math.Min(num * (hex ? 16 : 10) + digit, 0x7FFF_FFFFL); // saturate: anything above U+10FFFF is U+FFFD
                }
                if (k < text.Count && text[k] == ';') k++;
                AppendString(output, NumericReference(num));
                i = k;
            }
            else
            {
                int k = j;
                while (k < text.Count && k - j < 32 && text[k] is not ('\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';')) k++;
                if (k == j) { output.Add('&'); i++; continue; }
                if (k < text.Count && text[k] == ';') k++;
                var name = ToString(text.GetRange(j, k - j));
                AppendString(output, NamedReference(name));
                i = k;
            }
        }
        return output;
    }

    private static string NumericReference(long num)
    {
        if (num <= int.MaxValue && InvalidCharrefs.TryGetValue((int)num, out var replaced)) return replaced;
        if (num is >= 0xD800 and <= 0xDFFF || num > 0x10FFFF) return "\uFFFD";
        if (InvalidCodepoints.Contains((int)num)) return "";
        return char.ConvertFromUtf32((int)num);
    }

    private static string NamedReference(string name)
    {
        if (Html5.TryGetValue(name, out var value)) return value;
        // the longest prefix that is an entity, counted in code points as Python slices
        var runes = name.EnumerateRunes().ToArray();
        for (int x = runes.Length - 1; x > 1; x--)
        {
            var prefix = string.Concat(runes.Take(x).Select(static r => r.ToString()));
            if (Html5.TryGetValue(prefix, out value))
                return value + string.Concat(runes.Skip(x).Select(static r => r.ToString()));
        }
        return "&" + name;
    }

    // ------------------------------------------------------------------ whitespace and case

    private static List<int> Strip(List<int> text)
    {
        int start = 0, end = text.Count;
        while (start < end && UnicodeData.IsPythonWhitespace(text[start])) start++;
        while (end > start && UnicodeData.IsPythonWhitespace(text[end - 1])) end--;
        return start == 0 && end == text.Count ? text : text.GetRange(start, end - start);
    }

    private static List<int> CollapseWhitespace(List<int> text)
    {
        var output = new List<int>(text.Count);
        for (int i = 0; i < text.Count; i++)
        {
            if (UnicodeData.IsRegexWhitespace(text[i]))
            {
                while (i + 1 < text.Count && UnicodeData.IsRegexWhitespace(text[i + 1])) i++;
                output.Add(' ');
            }
            else output.Add(text[i]);
        }
        return Strip(output);
    }

    /// <summary>Python <c>str.lower()</c>, including the Final_Sigma context for U+03A3.</summary>
    internal static List<int> Lower(List<int> text)
    {
        var output = new List<int>(text.Count + 2);
        for (int i = 0; i < text.Count; i++)
        {
            int cp = text[i];
            if (cp == 0x130) { output.Add('i'); output.Add(0x307); }
            else if (cp == 0x3A3) output.Add(IsFinalSigma(text, i) ? 0x3C2 : 0x3C3);
            else output.Add(UnicodeData.SimpleLower(cp));
        }
        return output;
    }

    /// <summary>\p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased}), as CPython's handle_capital_sigma.</summary>
    private static bool IsFinalSigma(List<int> text, int i)
    {
        int j = i - 1;
        while (j >= 0 && UnicodeData.IsCaseIgnorable(text[j])) j--;
        if (j < 0 || !UnicodeData.IsCasedNotIgnorable(text[j])) return false;
        j = i + 1;
        while (j < text.Count && UnicodeData.IsCaseIgnorable(text[j])) j++;
        return j == text.Count || !UnicodeData.IsCasedNotIgnorable(text[j]);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Code points of a .NET string; a lone surrogate stays a code point of its own, as in Python.</summary>
    internal static List<int> ToCodePoints(string text)
    {
        var cps = new List<int>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cps.Add(char.ConvertToUtf32(c, text[i + 1]));
                i++;
            }
            else cps.Add(c);
        }
        return cps;
    }

    internal static string ToString(List<int> cps)
    {
        var sb = new StringBuilder(cps.Count);
        foreach (var cp in cps)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    private static void AppendString(List<int> output, string s)
    {
        foreach (var cp in ToCodePoints(s)) output.Add(cp);
    }

    private static List<int> MapEach(List<int> text, Func<int, string?> map)
    {
        List<int>? output = null;
        for (int i = 0; i < text.Count; i++)
        {
            var replacement = map(text[i]);
            if (replacement is null) { output?.Add(text[i]); continue; }
            if (output is null) { output = new List<int>(text.Count + 8); output.AddRange(text.GetRange(0, i)); }
            AppendString(output, replacement);
        }
        return output ?? text;
    }

    private static bool IsAsciiAlnum(int cp) => cp is (>= '0' and <= '9') or (>= 'a' and <= 'z') or (>= 'A' and <= 'Z');

    private static bool IsAsciiHex(int cp) => cp is (>= '0' and <= '9') or (>= 'a' and <= 'f') or (>= 'A' and <= 'F');

    private static bool IsDecimalDigit(int cp) =>
        cp is >= '0' and <= '9' || (cp > 0x7F && Rune.IsValid(cp) && Rune.GetUnicodeCategory(new Rune(cp)) == UnicodeCategory.DecimalDigitNumber);

    private static FrozenDictionary<string, string> BuildHtml5()
    {
        var d = new Dictionary<string, string>(HtmlEntities.Names.Length, StringComparer.Ordinal);
        for (int i = 0; i < HtmlEntities.Names.Length; i++) d[HtmlEntities.Names[i]] = HtmlEntities.Values[i];
        return d.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static FrozenDictionary<string, string> BuildFtfyEntities()
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < HtmlEntities.Names.Length; i++)
            if (HtmlEntities.Names[i].EndsWith(';')) d["&" + HtmlEntities.Names[i]] = HtmlEntities.Values[i];
        for (int i = 0; i < HtmlEntities.FtfyUpperNames.Length; i++) d["&" + HtmlEntities.FtfyUpperNames[i]] = HtmlEntities.FtfyUpperValues[i];
        return d.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static FrozenDictionary<int, string> BuildInvalidCharrefs()
    {
        var d = new Dictionary<int, string>();
        for (int i = 0; i < HtmlEntities.InvalidCharrefKeys.Length; i++) d[HtmlEntities.InvalidCharrefKeys[i]] = HtmlEntities.InvalidCharrefValues[i];
        return d.ToFrozenDictionary();
    }
}
