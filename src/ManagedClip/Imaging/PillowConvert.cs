namespace ManagedClip.Imaging;

/// <summary>Pillow 9.4's <c>convert("RGB")</c> (libImaging/Convert.c) from the modes a decoder hands over besides RGB.</summary>
internal static class PillowConvert
{
    /// <summary>
    /// cmyk2rgb: each channel is k' - k' * x / 255 with k' = 255 - K, the product rounded as MULDIV255 does
    /// ((t + (t &gt;&gt; 8)) &gt;&gt; 8 with t = a * b + 128). cmyk: pixels x 4, rgb: pixels x 3.
    /// </summary>
    public static void CmykToRgb(ReadOnlySpan<byte> cmyk, Span<byte> rgb)
    {
        for (int i = 0, n = rgb.Length / 3; i < n; i++)
        {
            int notBlack = 255 - cmyk[4 * i + 3];
            rgb[3 * i] = (byte)(notBlack - MulDiv255(cmyk[4 * i], notBlack));
            rgb[3 * i + 1] = (byte)(notBlack - MulDiv255(cmyk[4 * i + 1], notBlack));
            rgb[3 * i + 2] = (byte)(notBlack - MulDiv255(cmyk[4 * i + 2], notBlack));
        }
    }

    /// <summary>l2rgb: the value in all three channels.</summary>
    public static void GrayToRgb(ReadOnlySpan<byte> gray, Span<byte> rgb)
    {
        for (int i = 0; i < gray.Length; i++)
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
    }

    /// <summary>Pillow's MULDIV255: a * b / 255 rounded, as ((t &gt;&gt; 8) + t) &gt;&gt; 8 with t = a * b + 128.</summary>
    internal static int MulDiv255(int a, int b)
    {
        int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    }
}
