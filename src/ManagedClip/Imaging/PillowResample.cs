using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ManagedClip.Kernels;

namespace ManagedClip.Imaging;

/// <summary>Pillow's resampling filters, numbered as <c>PIL.Image.Resampling</c> (and HF's <c>resample</c> field).</summary>
public enum PillowFilter
{
    /// <summary>Nearest neighbour (<c>Image.NEAREST</c>).</summary>
    Nearest = 0,
    /// <summary>Lanczos, a = 3 (<c>Image.LANCZOS</c>).</summary>
    Lanczos = 1,
    /// <summary>Bilinear (<c>Image.BILINEAR</c>), with Pillow's antialiasing support when downscaling.</summary>
    Bilinear = 2,
    /// <summary>Bicubic, a = −0.5 (<c>Image.BICUBIC</c>): what CLIP's preprocessing uses.</summary>
    Bicubic = 3,
    /// <summary>Box (<c>Image.BOX</c>).</summary>
    Box = 4,
    /// <summary>Hamming (<c>Image.HAMMING</c>).</summary>
    Hamming = 5,
}

/// <summary>
/// A port of Pillow's <c>src/libImaging/Resample.c</c> (9.x) for 8-bit channels and 32-bit integer ("I") images,
/// and of the NEAREST path of <c>Image.resize</c> (<c>_imaging.c _resize</c> → <c>Geometry.c ImagingScaleAffine</c>).
/// Every routine computes only a window of the output (the crop), which gives the same pixels as resizing the
/// whole image and cropping afterwards because each output sample depends only on its own coefficients.
/// </summary>
internal static partial class PillowResample
{
    private const int PrecisionBits = 22; // Resample.c: PRECISION_BITS = 32 - 8 - 2

    /// <summary>Per-axis coefficients: for output index i, taps start at <see cref="Min"/>[i], <see cref="Count"/>[i] of them, weights at i·KSize.</summary>
    internal sealed class Coefficients
    {
        public required int KSize { get; init; }
        public required int[] Min { get; init; }
        public required int[] Count { get; init; }
        public required double[] Weights { get; init; }
        private int[]? _fixed;

        /// <summary>normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point.</summary>
        public int[] Fixed
        {
            get
            {
                if (_fixed is null)
                {
                    var k = new int[Weights.Length];
                    for (int i = 0; i < k.Length; i++)
                    {
                        double w = Weights[i];
                        k[i] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
                    }
                    _fixed = k;
                }
                return _fixed;
            }
        }
    }

    private static double Support(PillowFilter f) => f switch
    {
        PillowFilter.Box => 0.5,
        PillowFilter.Bilinear => 1.0,
        PillowFilter.Hamming => 1.0,
        PillowFilter.Bicubic => 2.0,
        PillowFilter.Lanczos => 3.0,
        _ => throw new ArgumentOutOfRangeException(nameof(f), f, "no convolution kernel for this filter"),
    };

    private static double Kernel(PillowFilter f, double x)
    {
        switch (f)
        {
            case PillowFilter.Bicubic:
                {
                    const double a = -0.5;
                    if (x < 0.0) x = -x;
                    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
                    return 0.0;
                }
            case PillowFilter.Bilinear:
                if (x < 0.0) x = -x;
                return x < 1.0 ? 1.0 - x : 0.0;
            case PillowFilter.Box:
                return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
            case PillowFilter.Hamming:
                if (x < 0.0) x = -x;
                if (x == 0.0) return 1.0;
                if (x >= 1.0) return 0.0;
                x *= Math.PI;
                return Math.Sin(x) / x * ((double)0.54f + (double)0.46f * Math.Cos(x));
            case PillowFilter.Lanczos:
                return -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;
            default:
                throw new ArgumentOutOfRangeException(nameof(f));
        }
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    /// <summary>precompute_coeffs for box (0, inSize) → outSize.</summary>
    internal static Coefficients Precompute(int inSize, int outSize, PillowFilter filter)
    {
        double scale = (double)inSize / outSize;
        double filterscale = scale < 1.0 ? 1.0 : scale;
        double support = Support(filter) * filterscale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var min = new int[outSize];
        var count = new int[outSize];
        var kk = new double[(long)outSize * ksize];
        double ss = 1.0 / filterscale;
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ww = 0.0;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            int o = xx * ksize;
            for (int x = 0; x < xmax; x++)
            {
                double w = Kernel(filter, (x + xmin - center + 0.5) * ss);
                kk[o + x] = w;
                ww += w;
            }
            if (ww != 0.0)
                for (int x = 0; x < xmax; x++) kk[o + x] /= ww;
            min[xx] = xmin;
            count[xx] = xmax;
        }
        return new Coefficients { KSize = ksize, Min = min, Count = count, Weights = kk };
    }

    private static byte Clip8(int acc)
    {
        int v = acc >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>
    /// Pillow 8-bit convolution resample of an interleaved image (<paramref name="ch"/> channels, each resampled on its own),
    /// w×h → outW×outH, returning only the window [x0, x0+cw) × [y0, y0+chh) of the output (which must lie inside it).
    /// Horizontal pass first into a uint8 intermediate, then vertical; an axis whose size does not change is copied.
    /// <paramref name="level"/> picks the AVX2 passes or their scalar twins (tests force <see cref="SimdLevel.Scalar"/>);
    /// both give the same bytes, as the sums are exact int32 arithmetic in any order.
    /// </summary>
    public static byte[] Resample8(ReadOnlySpan<byte> src, int w, int h, int ch, int outW, int outH, PillowFilter filter,
                                   int x0, int y0, int cw, int chh, SimdLevel? level = null)
    {
        var (hc, vc, r0, r1) = PlanPasses(w, h, outW, outH, filter, x0, y0, cw, chh);
        bool vectors = UsesVectors(level ?? Simd.Best, ch);

        // Horizontal pass: rows r0..r1 of the source, output columns x0..x0+cw.
        int rowLen = cw * ch;
        var temp = new byte[(long)(r1 - r0) * rowLen];
        if (hc is not null)
        {
            if (vectors)
            {
                HorizontalRowsAvx2(src, w, ch, r0, r1, x0, cw, hc, temp);
            }
            else
            {
                int[] k = hc.Fixed;
                int ks = hc.KSize;
                for (int y = r0; y < r1; y++)
                {
                    ReadOnlySpan<byte> srow = src.Slice(y * w * ch, w * ch);
                    Span<byte> trow = temp.AsSpan((y - r0) * rowLen, rowLen);
                    HorizontalRow(srow, trow, ch, x0, cw, hc.Min, hc.Count, k, ks);
                }
            }
        }
        else
        {
            for (int y = r0; y < r1; y++)
                src.Slice((y * w + x0) * ch, rowLen).CopyTo(temp.AsSpan((y - r0) * rowLen, rowLen));
        }
        if (vc is null) return temp;

        // Vertical pass over the intermediate.
        var dst = new byte[(long)chh * rowLen];
        if (vectors)
        {
            VerticalAvx2(temp, rowLen, r0, y0, chh, vc, dst);
            return dst;
        }
        var acc32 = new int[rowLen];
        int[] kv = vc.Fixed;
        for (int yy = 0; yy < chh; yy++)
        {
            int oy = y0 + yy;
            int ymin = vc.Min[oy] - r0, n = vc.Count[oy];
            acc32.AsSpan().Fill(1 << (PrecisionBits - 1));
            ref int a0 = ref MemoryMarshal.GetArrayDataReference(acc32);
            for (int j = 0; j < n; j++)
            {
                int wgt = kv[oy * vc.KSize + j];
                ref byte t0 = ref temp[(ymin + j) * rowLen];
                for (int x = 0; x < rowLen; x++) Unsafe.Add(ref a0, x) += Unsafe.Add(ref t0, x) * wgt;
            }
            Span<byte> drow = dst.AsSpan(yy * rowLen, rowLen);
            for (int x = 0; x < rowLen; x++) drow[x] = Clip8(acc32[x]);
        }
        return dst;
    }

    /// <summary>One row of the horizontal pass; all channels of a pixel in one sweep over the taps, no bounds checks.</summary>
    private static void HorizontalRow(ReadOnlySpan<byte> srow, Span<byte> trow, int ch, int x0, int cw, int[] mins, int[] counts, int[] k, int ks)
    {
        ref byte s0 = ref MemoryMarshal.GetReference(srow);
        ref byte d0 = ref MemoryMarshal.GetReference(trow);
        ref int k0 = ref MemoryMarshal.GetArrayDataReference(k);
        for (int xx = 0; xx < cw; xx++)
        {
            int ox = x0 + xx;
            HorizontalPixel(ref Unsafe.Add(ref s0, mins[ox] * ch), ref Unsafe.Add(ref k0, ox * ks), counts[ox], ch, ref Unsafe.Add(ref d0, xx * ch));
        }
    }

    /// <summary>One output pixel of the horizontal pass: <paramref name="n"/> taps of <paramref name="ch"/> bytes from <paramref name="sp"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void HorizontalPixel(ref byte sp, ref int kp, int n, int ch, ref byte dp)
    {
        const int Half = 1 << (PrecisionBits - 1);
        switch (ch)
        {
            case 1:
                {
                    int a0 = Half;
                    for (int j = 0; j < n; j++) a0 += Unsafe.Add(ref sp, j) * Unsafe.Add(ref kp, j);
                    dp = Clip8(a0);
                    break;
                }
            case 3:
                {
                    int a0 = Half, a1 = Half, a2 = Half;
                    for (int j = 0, p = 0; j < n; j++, p += 3)
                    {
                        int w = Unsafe.Add(ref kp, j);
                        a0 += Unsafe.Add(ref sp, p) * w;
                        a1 += Unsafe.Add(ref sp, p + 1) * w;
                        a2 += Unsafe.Add(ref sp, p + 2) * w;
                    }
                    dp = Clip8(a0); Unsafe.Add(ref dp, 1) = Clip8(a1); Unsafe.Add(ref dp, 2) = Clip8(a2);
                    break;
                }
            case 4:
                {
                    int a0 = Half, a1 = Half, a2 = Half, a3 = Half;
                    for (int j = 0, p = 0; j < n; j++, p += 4)
                    {
                        int w = Unsafe.Add(ref kp, j);
                        a0 += Unsafe.Add(ref sp, p) * w;
                        a1 += Unsafe.Add(ref sp, p + 1) * w;
                        a2 += Unsafe.Add(ref sp, p + 2) * w;
                        a3 += Unsafe.Add(ref sp, p + 3) * w;
                    }
                    dp = Clip8(a0); Unsafe.Add(ref dp, 1) = Clip8(a1); Unsafe.Add(ref dp, 2) = Clip8(a2); Unsafe.Add(ref dp, 3) = Clip8(a3);
                    break;
                }
            default:
                for (int c = 0; c < ch; c++)
                {
                    int acc = Half;
                    for (int j = 0, p = c; j < n; j++, p += ch) acc += Unsafe.Add(ref sp, p) * Unsafe.Add(ref kp, j);
                    Unsafe.Add(ref dp, c) = Clip8(acc);
                }
                break;
        }
    }

    /// <summary>
    /// Pillow's 32-bit integer ("I" mode) resample: double coefficients, double accumulation in tap order,
    /// <c>ROUND_UP</c> to int after each pass (no clamping). Window semantics as <see cref="Resample8"/>.
    /// </summary>
    public static int[] Resample32I(ReadOnlySpan<int> src, int w, int h, int outW, int outH, PillowFilter filter,
                                    int x0, int y0, int cw, int chh)
    {
        var (hc, vc, r0, r1) = PlanPasses(w, h, outW, outH, filter, x0, y0, cw, chh);

        var temp = new int[(long)(r1 - r0) * cw];
        if (hc is not null)
        {
            for (int y = r0; y < r1; y++)
                for (int xx = 0; xx < cw; xx++)
                {
                    int ox = x0 + xx, xmin = hc.Min[ox], n = hc.Count[ox], o = ox * hc.KSize;
                    double ss = 0.0;
                    for (int j = 0; j < n; j++) ss += src[y * w + xmin + j] * hc.Weights[o + j];
                    temp[(y - r0) * cw + xx] = RoundUp(ss);
                }
        }
        else
        {
            for (int y = r0; y < r1; y++) src.Slice(y * w + x0, cw).CopyTo(temp.AsSpan((y - r0) * cw, cw));
        }
        if (vc is null) return temp;

        var dst = new int[(long)chh * cw];
        for (int yy = 0; yy < chh; yy++)
        {
            int oy = y0 + yy, ymin = vc.Min[oy] - r0, n = vc.Count[oy], o = oy * vc.KSize;
            for (int x = 0; x < cw; x++)
            {
                double ss = 0.0;
                for (int j = 0; j < n; j++) ss += temp[(ymin + j) * cw + x] * vc.Weights[o + j];
                dst[yy * cw + x] = RoundUp(ss);
            }
        }
        return dst;
    }

    // Resample.c: #define ROUND_UP(f) ((int)((f) >= 0.0 ? (f) + 0.5F : (f)-0.5F))
    private static int RoundUp(double f) => (int)(f >= 0.0 ? f + 0.5 : f - 0.5);

    /// <summary>
    /// Nearest-neighbour index table for one axis, as Pillow's <c>Image.resize(..., NEAREST)</c> computes it:
    /// <c>_resize</c> builds the affine scale <c>a = in/out</c> (double), and <c>ImagingScaleAffine</c> walks
    /// <c>xo = a·0.5</c>, <c>xo += a</c> per output pixel (accumulated, not recomputed), taking
    /// <c>xin = (int)xo</c> (truncation; −1 if negative). Indices outside [0, in) are −1 (Pillow fills them with 0;
    /// for in/out scales that cannot happen).
    /// </summary>
    public static int[] NearestIndices(int inSize, int outSize)
    {
        double a = (double)inSize / outSize;
        double xo = 0.0 + a * 0.5;
        var idx = new int[outSize];
        for (int x = 0; x < outSize; x++)
        {
            int xin = xo < 0.0 ? -1 : (int)xo;
            idx[x] = xin >= 0 && xin < inSize ? xin : -1;
            xo += a;
        }
        return idx;
    }

    /// <summary>Nearest resize of an interleaved image (any element type), output window as <see cref="Resample8"/>.</summary>
    public static T[] Nearest<T>(ReadOnlySpan<T> src, int w, int h, int ch, int outW, int outH, int x0, int y0, int cw, int chh)
    {
        CheckWindow(outW, outH, x0, y0, cw, chh);
        int[] xi = NearestIndices(w, outW), yi = NearestIndices(h, outH);
        var dst = new T[(long)cw * chh * ch];
        for (int yy = 0; yy < chh; yy++)
        {
            int sy = yi[y0 + yy];
            if (sy < 0) continue;
            for (int xx = 0; xx < cw; xx++)
            {
                int sx = xi[x0 + xx];
                if (sx < 0) continue;
                for (int c = 0; c < ch; c++) dst[(yy * cw + xx) * ch + c] = src[(sy * w + sx) * ch + c];
            }
        }
        return dst;
    }

    /// <summary>
    /// The preamble of <see cref="Resample8"/> and <see cref="Resample32I"/>: checks the window, precomputes the coefficients
    /// of each axis whose size changes (null for an axis that is copied) and finds the source rows [FirstRow, EndRow) the
    /// vertical pass reads for the window's rows (the window's own rows when the height does not change).
    /// </summary>
    private static (Coefficients? Horizontal, Coefficients? Vertical, int FirstRow, int EndRow) PlanPasses(
        int w, int h, int outW, int outH, PillowFilter filter, int x0, int y0, int cw, int chh)
    {
        CheckWindow(outW, outH, x0, y0, cw, chh);
        Coefficients? hc = outW != w ? Precompute(w, outW, filter) : null;
        if (outH == h) return (hc, null, y0, y0 + chh);
        Coefficients vc = Precompute(h, outH, filter);
        int last = y0 + chh - 1;
        return (hc, vc, vc.Min[y0], vc.Min[last] + vc.Count[last]);
    }

    private static void CheckWindow(int outW, int outH, int x0, int y0, int cw, int chh)
    {
        if (outW <= 0 || outH <= 0 || cw <= 0 || chh <= 0 || x0 < 0 || y0 < 0 || x0 + cw > outW || y0 + chh > outH)
            throw new ArgumentOutOfRangeException(nameof(cw), $"window {x0},{y0} {cw}x{chh} outside output {outW}x{outH}");
    }
}
