using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ManagedClip.Kernels;

namespace ManagedClip.Imaging;

/// <summary>
/// The AVX2 passes of <see cref="PillowResample.Resample8"/>. Their sums are Pillow's: the same 22-bit fixed-point
/// products, starting at 1 &lt;&lt; 21, shifted right by 22 and clipped to 0..255; int32 addition is associative and
/// commutative (modulo 2^32, as Pillow's C adds), so summing the taps in vector lanes gives the scalar twins' bytes.
/// </summary>
internal static partial class PillowResample
{
    /// <summary>True when <paramref name="level"/> selects the AVX2 passes, this machine runs them and they handle <paramref name="channels"/>.</summary>
    internal static bool UsesVectors(SimdLevel level, int channels) =>
        level >= SimdLevel.Vector256 && Avx2.IsSupported && channels is >= 1 and <= 4;

    /// <summary>
    /// Where one output pixel's horizontal taps are, for the vector steps. A step reads 8 source bytes (zero-extended to
    /// 8 int32 lanes) and covers <c>TapsPerStep = 8 / ch</c> taps: lane l holds channel l % ch of tap l / ch.
    /// </summary>
    private struct PixelTaps
    {
        /// <summary>The pixel's first source byte in a row (Min·ch).</summary>
        public int FirstByte;
        /// <summary>Vector steps: ceil(Count / TapsPerStep).</summary>
        public int Steps;
        /// <summary>Where its steps' weights start in the laid-out weights (8 ints a step).</summary>
        public int WeightStart;
        /// <summary>The end of the bytes its 8-byte loads touch, from the row start (up to 7 bytes past its last tap).</summary>
        public int ReadEnd;
    }

    /// <summary>
    /// The window's output pixels' taps and their weights laid out for the steps: lane l of a step weighs tap l / ch
    /// (0 for lanes past TapsPerStep·ch, 2 of them for RGB, and for taps past the pixel's count). Built once per call,
    /// so every row reuses it.
    /// </summary>
    private static (PixelTaps[] Pixels, int[] Weights) LayOutHorizontalSteps(Coefficients hc, int ch, int x0, int cw)
    {
        int tapsPerStep = 8 / ch, bytesPerStep = tapsPerStep * ch;
        var pixels = new PixelTaps[cw];
        long total = 0;
        for (int xx = 0; xx < cw; xx++)
        {
            ref PixelTaps p = ref pixels[xx];
            p.Steps = (hc.Count[x0 + xx] + tapsPerStep - 1) / tapsPerStep;
            p.WeightStart = (int)total;
            p.FirstByte = hc.Min[x0 + xx] * ch;
            p.ReadEnd = p.Steps == 0 ? 0 : p.FirstByte + (p.Steps - 1) * bytesPerStep + 8;
            total += 8 * p.Steps;
            // Bicubic RGB lays out about 16 ints per source column (Precompute holds 4 doubles): only an absurdly wide
            // image gets here, which the caller reports as too large to resize.
            if (total > Array.MaxLength) throw new OutOfMemoryException($"the horizontal resize weights of {cw} output columns exceed the largest array");
        }
        var weights = new int[total];
        int[] k = hc.Fixed;
        for (int xx = 0; xx < cw; xx++)
        {
            int ox = x0 + xx, n = hc.Count[ox];
            for (int s = 0; s < pixels[xx].Steps; s++)
                for (int lane = 0; lane < bytesPerStep; lane++)
                {
                    int tap = s * tapsPerStep + lane / ch;
                    if (tap < n) weights[pixels[xx].WeightStart + 8 * s + lane] = k[ox * hc.KSize + tap];
                }
        }
        return (pixels, weights);
    }

    /// <summary>
    /// The horizontal pass over source rows r0..r1 into <paramref name="temp"/> (cw·ch bytes a row), two rows a sweep so
    /// each weight vector loaded serves both. A pixel whose last load would reach past the end of <paramref name="src"/>
    /// (the last pixels of the last row) is done by the scalar twin.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // called once per image: straight to optimized code, not tier-0/OSR
    private static unsafe void HorizontalRowsAvx2(ReadOnlySpan<byte> src, int w, int ch, int r0, int r1, int x0, int cw, Coefficients hc, byte[] temp)
    {
        var (pixels, weights) = LayOutHorizontalSteps(hc, ch, x0, cw);
        int rowLen = cw * ch, stride = w * ch, bytesPerStep = 8 / ch * ch;
        fixed (byte* s0 = src, t0 = temp)
        fixed (int* w0 = weights, k0 = hc.Fixed)
        fixed (PixelTaps* p0 = pixels)
        {
            for (int y = r0; y < r1; y += 2)
            {
                // Rows a and b (b = a for a last odd row, computed twice).
                int yb = Math.Min(y + 1, r1 - 1);
                byte* rowA = s0 + (long)y * stride;
                long offsetB = (long)(yb - y) * stride;
                long availableB = src.Length - (long)yb * stride; // row a has more
                byte* tA = t0 + (long)(y - r0) * rowLen;
                byte* tB = t0 + (long)(yb - r0) * rowLen;
                for (int xx = 0; xx < cw; xx++)
                {
                    PixelTaps* p = p0 + xx;
                    if (p->ReadEnd > availableB)
                    {
                        int ox = x0 + xx;
                        HorizontalPixel(ref rowA[p->FirstByte], ref k0[ox * hc.KSize], hc.Count[ox], ch, ref tA[xx * ch]);
                        HorizontalPixel(ref rowA[offsetB + p->FirstByte], ref k0[ox * hc.KSize], hc.Count[ox], ch, ref tB[xx * ch]);
                        continue;
                    }
                    PixelTwoRows(rowA + p->FirstByte, offsetB, w0 + p->WeightStart, p->Steps, bytesPerStep, ch, tA + xx * ch, tB + xx * ch);
                }
            }
        }
    }

    /// <summary>
    /// One output pixel in two rows (<paramref name="sp"/> and <paramref name="sp"/> + <paramref name="offsetB"/>) with the
    /// same weight vectors. Its own method, not inlined: in the row loop the JIT kept the step's operands on the stack.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe void PixelTwoRows(byte* sp, long offsetB, int* wp, int steps, int bytesPerStep, int ch, byte* dA, byte* dB)
    {
        Vector256<int> accA = Vector256<int>.Zero, accB = Vector256<int>.Zero;
        for (; steps > 0; steps--, sp += bytesPerStep, wp += 8)
        {
            var wgt = Avx.LoadVector256(wp);
            accA = Avx2.Add(accA, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(sp), wgt));
            accB = Avx2.Add(accB, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(sp + offsetB), wgt));
        }
        StorePixel(FoldTaps(accA, ch), ch, dA);
        StorePixel(FoldTaps(accB, ch), ch, dB);
    }

    /// <summary>Sums each channel's lanes (lane c + i·ch for the step's taps i) into lanes 0..ch-1 of the result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> FoldTaps(Vector256<int> acc, int ch)
    {
        switch (ch)
        {
            case 3: // [c0 c1 c2 | c0 c1 c2 | 0 0]: add lanes 3..5
                return Avx2.Add(acc, Avx2.PermuteVar8x32(acc, Vector256.Create(3, 4, 5, 3, 3, 3, 3, 3))).GetLower();
            case 4: // two taps: add the halves
                return Sse2.Add(acc.GetLower(), acc.GetUpper());
            case 2: // four taps: halves, then lanes 2..3
                {
                    var half = Sse2.Add(acc.GetLower(), acc.GetUpper());
                    return Sse2.Add(half, Sse2.Shuffle(half, 0b11_10_11_10));
                }
            default: // one channel, eight taps
                {
                    var half = Sse2.Add(acc.GetLower(), acc.GetUpper());
                    half = Sse2.Add(half, Sse2.Shuffle(half, 0b11_10_11_10));
                    return Sse2.Add(half, Sse2.Shuffle(half, 0b01_01_01_01));
                }
        }
    }

    /// <summary>Lanes 0..ch-1 (sums of the taps in 22-bit fixed point) rounded, shifted and clipped to bytes at <paramref name="dp"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StorePixel(Vector128<int> sums, int ch, byte* dp)
    {
        // >> 22 lies in -512..511: the signed 16-bit pack is exact and the unsigned 8-bit pack clips to 0..255.
        var rounded = Sse2.Add(sums, Vector128.Create(1 << (PrecisionBits - 1)));
        var words = Sse2.PackSignedSaturate(Sse2.ShiftRightArithmetic(rounded, PrecisionBits), Vector128<int>.Zero);
        uint bytes = Sse2.PackUnsignedSaturate(words, words).AsUInt32().ToScalar();
        switch (ch)
        {
            case 4: *(uint*)dp = bytes; break;
            case 3: *(ushort*)dp = (ushort)bytes; dp[2] = (byte)(bytes >> 16); break;
            case 2: *(ushort*)dp = (ushort)bytes; break;
            default: *dp = (byte)bytes; break;
        }
    }

    /// <summary>
    /// The vertical pass: output row yy of the window is the taps of rows vc.Min[y0 + yy] - r0.. of <paramref name="temp"/>
    /// (rowLen bytes each), 32 columns a step in four accumulators held over all taps, then 8 columns a step, then the
    /// scalar formula for the last few columns.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void VerticalAvx2(byte[] temp, int rowLen, int r0, int y0, int chh, Coefficients vc, byte[] dst)
    {
        const int Half = 1 << (PrecisionBits - 1);
        var half = Vector256.Create(Half);
        int[] kv = vc.Fixed;
        fixed (byte* t0 = temp, d0 = dst)
        fixed (int* k0 = kv)
        {
            for (int yy = 0; yy < chh; yy++)
            {
                int oy = y0 + yy, n = vc.Count[oy];
                byte* first = t0 + (long)(vc.Min[oy] - r0) * rowLen;
                int* kp = k0 + oy * vc.KSize;
                byte* drow = d0 + (long)yy * rowLen;
                int x = 0;
                for (; x + 32 <= rowLen; x += 32)
                {
                    Vector256<int> a0 = half, a1 = half, a2 = half, a3 = half;
                    byte* tp = first + x;
                    for (int j = 0; j < n; j++, tp += rowLen)
                    {
                        var wgt = Vector256.Create(kp[j]);
                        a0 = Avx2.Add(a0, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(tp), wgt));
                        a1 = Avx2.Add(a1, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(tp + 8), wgt));
                        a2 = Avx2.Add(a2, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(tp + 16), wgt));
                        a3 = Avx2.Add(a3, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(tp + 24), wgt));
                    }
                    // >> 22 lies in -512..511, so the signed 16-bit pack is exact and the unsigned 8-bit pack clips to 0..255;
                    // the packs interleave 128-bit halves ([a0 0-3, a1 0-3, a2 0-3, a3 0-3 | a0 4-7, ...]), which the dword permute undoes.
                    var words01 = Avx2.PackSignedSaturate(Avx2.ShiftRightArithmetic(a0, PrecisionBits), Avx2.ShiftRightArithmetic(a1, PrecisionBits));
                    var words23 = Avx2.PackSignedSaturate(Avx2.ShiftRightArithmetic(a2, PrecisionBits), Avx2.ShiftRightArithmetic(a3, PrecisionBits));
                    var bytes = Avx2.PackUnsignedSaturate(words01, words23).AsInt32();
                    Avx2.PermuteVar8x32(bytes, Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsByte().Store(drow + x);
                }
                for (; x + 8 <= rowLen; x += 8)
                {
                    var acc = half;
                    byte* tp = first + x;
                    for (int j = 0; j < n; j++, tp += rowLen)
                        acc = Avx2.Add(acc, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(tp), Vector256.Create(kp[j])));
                    var shifted = Avx2.ShiftRightArithmetic(acc, PrecisionBits);
                    var words = Sse2.PackSignedSaturate(shifted.GetLower(), shifted.GetUpper());
                    Sse2.StoreScalar((long*)(drow + x), Sse2.PackUnsignedSaturate(words, words).AsInt64());
                }
                for (; x < rowLen; x++)
                {
                    int acc = Half;
                    byte* tp = first + x;
                    for (int j = 0; j < n; j++, tp += rowLen) acc += *tp * kp[j];
                    drow[x] = Clip8(acc);
                }
            }
        }
    }
}
