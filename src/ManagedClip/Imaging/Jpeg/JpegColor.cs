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
    /// Four planes interleaved as Pillow 9.4 holds a CMYK JPEG: its JPEG plugin reads every 4-component file as
    /// "CMYK;I" (Adobe's convention of inverted samples), so each sample is 255 minus libjpeg's.
    /// </summary>
    public static void InterleaveInverted(ReadOnlySpan<byte> c, ReadOnlySpan<byte> m, ReadOnlySpan<byte> y, ReadOnlySpan<byte> k, Span<byte> cmyk)
    {
        for (int i = 0; i < cmyk.Length / 4; i++)
        {
            cmyk[4 * i] = (byte)(255 - c[i]);
            cmyk[4 * i + 1] = (byte)(255 - m[i]);
            cmyk[4 * i + 2] = (byte)(255 - y[i]);
            cmyk[4 * i + 3] = (byte)(255 - k[i]);
        }
    }
}
