using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ManagedClip.Kernels;

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

    /// <summary>Converts one row of Y, Cb, Cr samples to interleaved RGB (rgb.Length / 3 pixels).</summary>
    public static void YccToRgb(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgb, SimdLevel level)
    {
        int pixels = rgb.Length / 3;
        if (y.Length < pixels || cb.Length < pixels || cr.Length < pixels) throw new ArgumentException("a colour row needs a sample per pixel in each plane");
        int done = JpegIdct.UsesVectors(level) ? YccToRgbAvx2(y, cb, cr, rgb, pixels) : 0;
        YccToRgbScalar(y[done..], cb[done..], cr[done..], rgb[(3 * done)..], pixels - done);
    }

    /// <summary>The scalar twin of <see cref="YccToRgbAvx2"/>: jdcolor.c ycc_rgb_convert.</summary>
    private static void YccToRgbScalar(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgb, int pixels)
    {
        for (int i = 0; i < pixels; i++)
        {
            int luma = y[i], blue = cb[i], red = cr[i];
            rgb[3 * i] = Clamp(luma + CrToR[red]);
            rgb[3 * i + 1] = Clamp(luma + ((CbToG[blue] + CrToG[red]) >> ScaleBits));
            rgb[3 * i + 2] = Clamp(luma + CbToB[blue]);
        }
    }

    /// <summary>
    /// 16 pixels a step in 16-bit lanes, with the sums of build_ycc_rgb_table's entries formed exactly: each product of
    /// a centred chroma x = Cb - 128 or z = Cr - 128 with a 16.16 constant above 2^15 is split into a multiple of 2^16,
    /// which passes through the >> 16 whole, and a 16-bit remainder that pmaddwd multiplies and sums in 32 bits with the
    /// rounding half:
    /// R = Y + z + ((26345 z + 2 x 16384) >> 16)             (FIX(1.40200) = 91881 = 2^16 + 26345)
    /// G = Y - z + ((-22554 x + 18734 z + 32768) >> 16)      (-FIX(0.71414) = -46802 = -2^16 + 18734)
    /// B = Y + 2x + ((-14942 x + 2 x 16384) >> 16)           (FIX(1.77200) = 116130 = 2^17 - 14942)
    /// The sums lie in -227..482, clamped to 0..255 by saturating packs, then interleaved to R, G, B by byte shuffles.
    /// Returns the pixels converted (a multiple of 16); the caller converts the rest with the scalar twin.
    /// </summary>
    private static unsafe int YccToRgbAvx2(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgb, int pixels)
    {
        int steps = pixels / 16;
        var center = Vector256.Create((short)128);
        var two = Vector256.Create((short)2);
        // Word pairs for pmaddwd: (chroma, 2) x (remainder constant, 16384) and (x, z) x (-22554, 18734).
        var redPair = Vector256.Create(26345 | (16384 << 16)).AsInt16();
        var bluePair = Vector256.Create((-14942 & 0xFFFF) | (16384 << 16)).AsInt16();
        var greenPair = Vector256.Create((-22554 & 0xFFFF) | (18734 << 16)).AsInt16();
        var half = Vector256.Create(OneHalf);
        fixed (byte* py = y, pcb = cb, pcr = cr, po = rgb)
        {
            for (int s = 0; s < steps; s++)
            {
                int i = 16 * s;
                var luma = Avx2.ConvertToVector256Int16(py + i);
                var x = Avx2.ConvertToVector256Int16(pcb + i) - center;
                var z = Avx2.ConvertToVector256Int16(pcr + i) - center;
                // unpacklo/unpackhi and packssdw both work within 128-bit lanes, so the pack puts the 16 pixels back in order.
                var red = luma + z + HighHalves(Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(z, two), redPair),
                    Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(z, two), redPair));
                var blue = luma + x + x + HighHalves(Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(x, two), bluePair),
                    Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(x, two), bluePair));
                var green = luma - z + HighHalves(Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(x, z), greenPair) + half,
                    Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(x, z), greenPair) + half);
                Interleave(ToBytes(red), ToBytes(green), ToBytes(blue), po + 3 * i);
            }
        }
        return 16 * steps;
    }

    /// <summary>The 32-bit sums >> 16 (arithmetic), packed back to 16 words (they lie within -256..255).</summary>
    private static Vector256<short> HighHalves(Vector256<int> low, Vector256<int> high) =>
        Avx2.PackSignedSaturate(Avx2.ShiftRightArithmetic(low, 16), Avx2.ShiftRightArithmetic(high, 16));

    /// <summary>16 words to bytes clamped to 0..255, in order.</summary>
    private static Vector128<byte> ToBytes(Vector256<short> words) => Sse2.PackUnsignedSaturate(words.GetLower(), words.GetUpper());

    // Byte shuffles that place 16 R, G and B samples into 48 interleaved bytes: output byte k of chunk j takes pixel
    // (16 j + k) / 3 from channel (16 j + k) % 3; an index with the top bit set gives 0, and the three are ORed.
    private static readonly Vector128<byte>[] InterleaveMasks = BuildInterleaveMasks();

    private static Vector128<byte>[] BuildInterleaveMasks()
    {
        var masks = new Vector128<byte>[9];
        Span<byte> m = stackalloc byte[16];
        for (int chunk = 0; chunk < 3; chunk++)
            for (int channel = 0; channel < 3; channel++)
            {
                for (int k = 0; k < 16; k++)
                {
                    int at = 16 * chunk + k;
                    m[k] = at % 3 == channel ? (byte)(at / 3) : (byte)0x80;
                }
                masks[3 * chunk + channel] = Vector128.Create((ReadOnlySpan<byte>)m);
            }
        return masks;
    }

    private static unsafe void Interleave(Vector128<byte> r, Vector128<byte> g, Vector128<byte> b, byte* output)
    {
        var masks = InterleaveMasks;
        for (int chunk = 0; chunk < 3; chunk++)
        {
            var bytes = Sse2.Or(Sse2.Or(Ssse3.Shuffle(r, masks[3 * chunk]), Ssse3.Shuffle(g, masks[3 * chunk + 1])), Ssse3.Shuffle(b, masks[3 * chunk + 2]));
            Sse2.Store(output + 16 * chunk, bytes);
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

    /// <summary>
    /// YCCK as Pillow 9.4 holds it: libjpeg's jdcolor.c ycck_cmyk_convert turns Y, Cb, Cr back into inverted C, M, Y
    /// (255 minus the red, green and blue of <see cref="YccToRgb"/> before its clamp, then clamped) and passes K through;
    /// Pillow reads that as Adobe's inverted CMYK, as <see cref="InterleaveInverted"/> does.
    /// </summary>
    public static void YcckToInvertedCmyk(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, ReadOnlySpan<byte> k, Span<byte> cmyk)
    {
        for (int i = 0; i < cmyk.Length / 4; i++)
        {
            int luma = y[i], blue = cb[i], red = cr[i];
            cmyk[4 * i] = (byte)(255 - Clamp(255 - (luma + CrToR[red])));
            cmyk[4 * i + 1] = (byte)(255 - Clamp(255 - (luma + ((CbToG[blue] + CrToG[red]) >> ScaleBits))));
            cmyk[4 * i + 2] = (byte)(255 - Clamp(255 - (luma + CbToB[blue])));
            cmyk[4 * i + 3] = (byte)(255 - k[i]);
        }
    }
}
