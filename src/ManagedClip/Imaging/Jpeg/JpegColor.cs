namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// libjpeg's fixed-point YCbCr→RGB conversion (jdcolor.c build_ycc_rgb_table and ycc_rgb_convert): 16 fractional
/// bits, FIX(x) = round(x * 2^16), ONE_HALF rounding folded into the tables, then the sample range limit (a clamp to
/// 0..255 over the reachable range -256..511).
/// </summary>
internal static class JpegColor
{
    private const int ScaleBits = 16, OneHalf = 1 << (ScaleBits - 1);
    private const int FixCrR = 91881, FixCbB = 116130, FixCrG = 46802, FixCbG = 22554; // 1.40200, 1.77200, 0.71414, 0.34414

    private static readonly int[] CrToR = new int[256], CbToB = new int[256], CrToG = new int[256], CbToG = new int[256];

    static JpegColor()
    {
        for (int i = 0; i < 256; i++)
        {
            int x = i - 128;
            CrToR[i] = (FixCrR * x + OneHalf) >> ScaleBits;
            CbToB[i] = (FixCbB * x + OneHalf) >> ScaleBits;
            CrToG[i] = -FixCrG * x;
            CbToG[i] = -FixCbG * x + OneHalf;
        }
    }

    private static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);

    /// <summary>Converts one row of Y, Cb, Cr samples to interleaved RGB.</summary>
    public static void YccToRgb(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgb)
    {
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            int luma = y[i], blue = cb[i], red = cr[i];
            rgb[3 * i] = Clamp(luma + CrToR[red]);
            rgb[3 * i + 1] = Clamp(luma + ((CbToG[blue] + CrToG[red]) >> ScaleBits));
            rgb[3 * i + 2] = Clamp(luma + CbToB[blue]);
        }
    }

    /// <summary>Interleaves three planes that are already RGB (Adobe transform 0, or components named 'R', 'G', 'B').</summary>
    public static void Interleave(ReadOnlySpan<byte> r, ReadOnlySpan<byte> g, ReadOnlySpan<byte> b, Span<byte> rgb)
    {
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            rgb[3 * i] = r[i];
            rgb[3 * i + 1] = g[i];
            rgb[3 * i + 2] = b[i];
        }
    }

    /// <summary>
    /// CMYK as Pillow 9.4 returns it: its JPEG plugin reads CMYK files as "CMYK;I" (Adobe's inverted samples, inverted
    /// back on unpacking), then convert("RGB") computes each channel as k' - k' * c / 255 with k' = 255 - K, the product
    /// rounded as its MULDIV255 does ((t + (t &gt;&gt; 8)) &gt;&gt; 8 with t = a * b + 128).
    /// </summary>
    public static void AdobeCmykToRgb(ReadOnlySpan<byte> c, ReadOnlySpan<byte> m, ReadOnlySpan<byte> y, ReadOnlySpan<byte> k, Span<byte> rgb)
    {
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            int notBlack = k[i]; // 255 - (255 - stored K)
            rgb[3 * i] = FromAdobeCmyk(c[i], notBlack);
            rgb[3 * i + 1] = FromAdobeCmyk(m[i], notBlack);
            rgb[3 * i + 2] = FromAdobeCmyk(y[i], notBlack);
        }
    }

    /// <summary>
    /// YCCK as Pillow 9.4 returns it: libjpeg's jdcolor.c ycck_cmyk_convert turns Y, Cb, Cr back into inverted C, M, Y
    /// (255 minus the red, green and blue of <see cref="YccToRgb"/> before its clamp, then clamped) and passes K through;
    /// Pillow reads that as Adobe CMYK (<see cref="AdobeCmykToRgb"/>).
    /// </summary>
    public static void YcckToRgb(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, ReadOnlySpan<byte> k, Span<byte> rgb)
    {
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            int luma = y[i], blue = cb[i], red = cr[i], notBlack = k[i];
            rgb[3 * i] = FromAdobeCmyk(Clamp(255 - (luma + CrToR[red])), notBlack);
            rgb[3 * i + 1] = FromAdobeCmyk(Clamp(255 - (luma + ((CbToG[blue] + CrToG[red]) >> ScaleBits))), notBlack);
            rgb[3 * i + 2] = FromAdobeCmyk(Clamp(255 - (luma + CbToB[blue])), notBlack);
        }
    }

    /// <summary>One channel of <see cref="AdobeCmykToRgb"/>: an inverted ink sample and the inverted K sample.</summary>
    private static byte FromAdobeCmyk(int ink, int notBlack) => (byte)(notBlack - MulDiv255(255 - ink, notBlack));

    private static int MulDiv255(int a, int b)
    {
        int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    }

    /// <summary>Grayscale to RGB as Pillow's convert("RGB") does from mode L: the value in all three channels.</summary>
    public static void GrayToRgb(ReadOnlySpan<byte> gray, Span<byte> rgb)
    {
        for (int i = 0; i < rgb.Length / 3; i++)
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
    }
}
