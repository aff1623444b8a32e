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
    /// 16 pixels a step: the table entries computed in int32 lanes with the same products, rounding and arithmetic shifts
    /// as build_ycc_rgb_table (so the sums are those of the tables), clamped by saturating packs (the sums lie in
    /// -227..482, inside 16 bits), then interleaved to R, G, B by byte shuffles. Returns the pixels converted (a
    /// multiple of 16); the caller converts the rest with the scalar twin.
    /// </summary>
    private static unsafe int YccToRgbAvx2(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgb, int pixels)
    {
        int steps = pixels / 16;
        fixed (byte* py = y, pcb = cb, pcr = cr, po = rgb)
        {
            for (int s = 0; s < steps; s++)
            {
                int i = 16 * s;
                var red = Channels(py + i, pcb + i, pcr + i, out var green, out var blue);
                Interleave(red, green, blue, po + 3 * i);
            }
        }
        return 16 * steps;
    }

    private static readonly Vector256<int> Center = Vector256.Create(128), Half = Vector256.Create(OneHalf);

    /// <summary>R, G and B of 16 pixels, each clamped to 0..255.</summary>
    private static unsafe Vector128<byte> Channels(byte* y, byte* cb, byte* cr, out Vector128<byte> green, out Vector128<byte> blue)
    {
        Eight(y, cb, cr, out var r0, out var g0, out var b0);
        Eight(y + 8, cb + 8, cr + 8, out var r1, out var g1, out var b1);
        green = Pack(g0, g1);
        blue = Pack(b0, b1);
        return Pack(r0, r1);
    }

    private static unsafe void Eight(byte* y, byte* cb, byte* cr, out Vector256<int> r, out Vector256<int> g, out Vector256<int> b)
    {
        var luma = Avx2.ConvertToVector256Int32(y);
        var x = Avx2.ConvertToVector256Int32(cb) - Center;
        var z = Avx2.ConvertToVector256Int32(cr) - Center;
        r = luma + ((z * Vector256.Create(FixCrR) + Half) >> ScaleBits);
        g = luma + ((x * Vector256.Create(-FixCbG) + Half + z * Vector256.Create(-FixCrG)) >> ScaleBits);
        b = luma + ((x * Vector256.Create(FixCbB) + Half) >> ScaleBits);
    }

    /// <summary>16 int32 values (in 16-bit range) to bytes clamped to 0..255, in order.</summary>
    private static Vector128<byte> Pack(Vector256<int> low, Vector256<int> high) =>
        Sse2.PackUnsignedSaturate(Sse2.PackSignedSaturate(low.GetLower(), low.GetUpper()), Sse2.PackSignedSaturate(high.GetLower(), high.GetUpper()));

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
