namespace ManagedClip.Tokenization;

/// <summary>
/// Unicode normalization form C over code points, from tables generated with Python's <c>unicodedata</c>
/// (so it matches <c>unicodedata.normalize('NFC', …)</c> of the reference, and works under
/// InvariantGlobalization, where <see cref="string.Normalize()"/> leaves non-ASCII text untouched).
/// </summary>
internal static class Nfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    public static List<int> Normalize(List<int> text)
    {
        bool simple = true;
        foreach (var cp in text)
            if (cp >= 0x300) { simple = false; break; }
        if (simple) return text; // nothing below U+0300 decomposes, composes or reorders

        // 1. full canonical decomposition
        var d = new List<int>(text.Count + 8);
        foreach (var cp in text)
        {
            int s = cp - SBase;
            if ((uint)s < SCount)
            {
                d.Add(LBase + s / NCount);
                d.Add(VBase + s % NCount / TCount);
                if (s % TCount != 0) d.Add(TBase + s % TCount);
            }
            else if (UnicodeData.TryGetDecomposition(cp, out var dec))
            {
                foreach (var r in dec.EnumerateRunes()) d.Add(r.Value);
            }
            else d.Add(cp);
        }

        // 2. canonical ordering: stable sort of each run of non-starters by combining class
        var cls = new int[d.Count];
        for (int i = 0; i < d.Count; i++) cls[i] = UnicodeData.CombiningClass(d[i]);
        for (int i = 1; i < d.Count; i++)
        {
            if (cls[i] == 0) continue;
            int j = i;
            while (j > 0 && cls[j - 1] > cls[j])
            {
                (d[j - 1], d[j]) = (d[j], d[j - 1]);
                (cls[j - 1], cls[j]) = (cls[j], cls[j - 1]);
                j--;
            }
        }

        // 3. canonical composition
        var result = new List<int>(d.Count);
        if (d.Count == 0) return result;
        int starterPos = 0, starter = d[0];
        int lastClass = cls[0] == 0 ? 0 : 256; // a leading non-starter blocks composition until a starter appears
        result.Add(starter);
        for (int i = 1; i < d.Count; i++)
        {
            int ch = d[i], chClass = cls[i];
            if ((lastClass < chClass || lastClass == 0) && TryCompose(starter, ch, out var composite) && starterPos >= 0 && lastClass != 256)
            {
                result[starterPos] = composite;
                starter = composite;
                continue;
            }
            if (chClass == 0) { starterPos = result.Count; starter = ch; }
            lastClass = chClass;
            result.Add(ch);
        }
        return result;
    }

    private static bool TryCompose(int a, int b, out int composite)
    {
        int l = a - LBase, v = b - VBase;
        if ((uint)l < LCount && (uint)v < VCount) { composite = SBase + (l * VCount + v) * TCount; return true; }
        int s = a - SBase, t = b - TBase;
        if ((uint)s < SCount && s % TCount == 0 && t > 0 && t < TCount) { composite = a + t; return true; }
        return UnicodeData.TryCompose(a, b, out composite);
    }
}
