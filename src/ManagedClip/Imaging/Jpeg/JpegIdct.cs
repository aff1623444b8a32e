using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ManagedClip.Kernels;

namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// libjpeg's accurate integer inverse DCT (jpeg_idct_islow, the default JDCT_ISLOW that Pillow uses) with the exact
/// arithmetic of the routine Pillow runs on an x86-64 machine with AVX2: libjpeg-turbo 2.1's
/// simd/x86_64/jidctint-avx2.asm. It computes the same products and sums as jidctint.c (constants FIX(x) =
/// round(x * 2^13), a column pass keeping PASS1_BITS extra bits, a row pass, descaling), but in 16-bit lanes:
/// <list type="bullet">
/// <item>dequantization keeps the low 16 bits of coefficient x quantizer (pmullw);</item>
/// <item>in0 ± in4 and the odd part's z3 = in7 + in3, z4 = in5 + in1 are 16-bit sums that wrap;</item>
/// <item>each pass's descaled results are saturated to 16 bits (packssdw), the final ones to -128..127 (packsswb)
/// before +128, where the C code wraps through its range-limit table;</item>
/// <item>a block whose rows 1..7 are all zero skips the column pass: every row is the dequantized row 0 shifted left
/// by PASS1_BITS in 16 bits (wrapping), where the C code tests each column on its own.</item>
/// </list>
/// For coefficients of real images (dequantized values within ±2^15 / 4) both give the same bytes; they differ only
/// for extreme ones (the corpus file idct_extreme_64x72.jpg, which Pillow decodes to these semantics and, with
/// JSIMD_FORCENONE=1, to the C ones). <see cref="TransformScalar"/> is the twin of the AVX2 path and its test oracle.
/// </summary>
internal static class JpegIdct
{
    private const int ConstBits = 13, Pass1Bits = 2;
    private const int Pass1Shift = ConstBits - Pass1Bits, Pass2Shift = ConstBits + Pass1Bits + 3;
    private const int Fix0_298631336 = 2446, Fix0_390180644 = 3196, Fix0_541196100 = 4433, Fix0_765366865 = 6270,
        Fix0_899976223 = 7373, Fix1_175875602 = 9633, Fix1_501321110 = 12299, Fix1_847759065 = 15137,
        Fix1_961570560 = 16069, Fix2_053119869 = 16819, Fix2_562915447 = 20995, Fix3_072711026 = 25172;

    /// <summary>True when <paramref name="level"/> selects the vector path and this machine runs it.</summary>
    public static bool UsesVectors(SimdLevel level) => level >= SimdLevel.Vector256 && Avx2.IsSupported;

    /// <summary>Transforms one block of 64 coefficients (natural order) with its quantization table (natural order)
    /// to an 8x8 block of samples at output[offset + row * stride + column].</summary>
    public static void Transform(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride, SimdLevel level)
    {
        if (coefficients.Length < 64 || quant.Length < 64) throw new ArgumentException("an IDCT block needs 64 coefficients and 64 quantizers");
        // The last row written ends at offset + 7 * stride + 8.
        if (offset < 0 || stride < 8 || (long)offset + 7L * stride + 8 > output.Length) throw new ArgumentOutOfRangeException(nameof(offset));
        if (UsesVectors(level)) TransformAvx2(coefficients, quant, output, offset, stride);
        else TransformScalar(coefficients, quant, output, offset, stride);
    }

    private static short Saturate16(int x) => (short)Math.Clamp(x, short.MinValue, short.MaxValue);

    private static int Descale(int x, int n) => (x + (1 << (n - 1))) >> n;

    /// <summary>The scalar twin of <see cref="TransformAvx2"/>, lane for lane.</summary>
    internal static void TransformScalar(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride)
    {
        Span<short> ws = stackalloc short[64]; // [row, column] after the column pass
        Span<short> input = stackalloc short[8];
        Span<int> sums = stackalloc int[8];
        if (AcRowsAreZero(coefficients))
        {
            for (int c = 0; c < 8; c++)
            {
                short dc = (short)((short)(coefficients[c] * quant[c]) << Pass1Bits);
                for (int r = 0; r < 8; r++) ws[r * 8 + c] = dc;
            }
        }
        else
        {
            for (int c = 0; c < 8; c++)
            {
                for (int k = 0; k < 8; k++) input[k] = (short)(coefficients[k * 8 + c] * quant[k * 8 + c]);
                Pass(input, sums);
                for (int r = 0; r < 8; r++) ws[r * 8 + c] = Saturate16(Descale(sums[r], Pass1Shift));
            }
        }
        for (int r = 0; r < 8; r++)
        {
            Pass(ws.Slice(r * 8, 8), sums);
            var o = output.Slice(offset + r * stride, 8);
            for (int c = 0; c < 8; c++)
                o[c] = (byte)(Math.Clamp((int)Saturate16(Descale(sums[c], Pass2Shift)), sbyte.MinValue, sbyte.MaxValue) + 128);
        }
    }

    /// <summary>The AVX2 routine's zero test: rows 1..7 of the raw (not dequantized) coefficients are all zero.</summary>
    private static bool AcRowsAreZero(ReadOnlySpan<short> coefficients) => !coefficients[8..64].ContainsAnyExcept((short)0);

    /// <summary>One 1-D pass over 8 inputs (16-bit values) giving the 8 sums before descaling, in int32 arithmetic that
    /// wraps; the three 16-bit sums the AVX2 code forms wrap at 16 bits.</summary>
    private static void Pass(ReadOnlySpan<short> x, Span<int> sums)
    {
        // Even part
        int z2 = x[2], z3 = x[6];
        int z1 = (z2 + z3) * Fix0_541196100;
        int tmp2 = z1 + z3 * -Fix1_847759065;
        int tmp3 = z1 + z2 * Fix0_765366865;
        int tmp0 = (short)(x[0] + x[4]) << ConstBits;
        int tmp1 = (short)(x[0] - x[4]) << ConstBits;
        int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
        // Odd part: inputs are frequencies 7, 5, 3, 1
        int t0 = x[7], t1 = x[5], t2 = x[3], t3 = x[1];
        int o1 = t0 + t3, o2 = t1 + t2, o3 = (short)(t0 + t2), o4 = (short)(t1 + t3);
        int z5 = (o3 + o4) * Fix1_175875602;
        o3 = o3 * -Fix1_961570560 + z5;
        o4 = o4 * -Fix0_390180644 + z5;
        o1 *= -Fix0_899976223;
        o2 *= -Fix2_562915447;
        t0 = t0 * Fix0_298631336 + o1 + o3;
        t1 = t1 * Fix2_053119869 + o2 + o4;
        t2 = t2 * Fix3_072711026 + o2 + o3;
        t3 = t3 * Fix1_501321110 + o1 + o4;
        sums[0] = tmp10 + t3; sums[7] = tmp10 - t3;
        sums[1] = tmp11 + t2; sums[6] = tmp11 - t2;
        sums[2] = tmp12 + t1; sums[5] = tmp12 - t1;
        sums[3] = tmp13 + t0; sums[4] = tmp13 - t0;
    }

    /// <summary>
    /// The vector path: each pass works on 8 columns (or rows) at once, one per int32 lane of a Vector256, with the
    /// block transposed as 8 Vector128 of shorts between the passes and after the second.
    /// </summary>
    private static unsafe void TransformAvx2(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride)
    {
        fixed (short* c = coefficients)
        fixed (ushort* qu = quant)
        fixed (byte* o = output)
        {
            short* q = (short*)qu;
            Vector128<short> v0, v1, v2, v3, v4, v5, v6, v7; // row r of the block, one column per lane
            v0 = Sse2.MultiplyLow(Sse2.LoadVector128(c), Sse2.LoadVector128(q));
            var acBits = Sse2.Or(Sse2.Or(Sse2.Or(Sse2.LoadVector128(c + 8), Sse2.LoadVector128(c + 16)), Sse2.Or(Sse2.LoadVector128(c + 24), Sse2.LoadVector128(c + 32))),
                Sse2.Or(Sse2.Or(Sse2.LoadVector128(c + 40), Sse2.LoadVector128(c + 48)), Sse2.LoadVector128(c + 56)));
            if (acBits == Vector128<short>.Zero)
            {
                if ((Sse2.LoadVector128(c).AsUInt64() & Vector128.Create(~0xFFFFUL, ~0UL)) == Vector128<ulong>.Zero)
                {
                    FillDcOnly(v0.ToScalar(), o + offset, stride);
                    return;
                }
                v0 = Sse2.ShiftLeftLogical(v0, Pass1Bits);
                v1 = v2 = v3 = v4 = v5 = v6 = v7 = v0;
            }
            else
            {
                v1 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 8), Sse2.LoadVector128(q + 8));
                v2 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 16), Sse2.LoadVector128(q + 16));
                v3 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 24), Sse2.LoadVector128(q + 24));
                v4 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 32), Sse2.LoadVector128(q + 32));
                v5 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 40), Sse2.LoadVector128(q + 40));
                v6 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 48), Sse2.LoadVector128(q + 48));
                v7 = Sse2.MultiplyLow(Sse2.LoadVector128(c + 56), Sse2.LoadVector128(q + 56));
                PassVector(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7, Pass1Shift);
            }
            Transpose(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7); // now column k of the block per vector, one row per lane
            PassVector(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7, Pass2Shift);
            Transpose(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7); // back to rows
            var center = Vector128.Create((byte)128);
            byte* row = o + offset;
            StoreRows(Sse2.Add(Sse2.PackSignedSaturate(v0, v1).AsByte(), center), row, stride);
            StoreRows(Sse2.Add(Sse2.PackSignedSaturate(v2, v3).AsByte(), center), row + 2 * stride, stride);
            StoreRows(Sse2.Add(Sse2.PackSignedSaturate(v4, v5).AsByte(), center), row + 4 * stride, stride);
            StoreRows(Sse2.Add(Sse2.PackSignedSaturate(v6, v7).AsByte(), center), row + 6 * stride, stride);
        }
    }

    /// <summary>
    /// A block whose only nonzero coefficient is the DC term: every sample is what the two passes make of it, worked out
    /// once. The column pass is skipped (rows 1..7 are zero), so every row of the workspace is (d, 0, ..., 0) with
    /// d = <paramref name="dequantizedDc"/> &lt;&lt; PASS1_BITS in 16 bits; the row pass then sees d at input 0 and zeros
    /// elsewhere, so all its outputs are tmp10 = tmp11 = tmp12 = tmp13 = d &lt;&lt; CONST_BITS, descaled (within 16 bits:
    /// |d| &lt;= 2^15) and saturated to -128..127 before +128, as the full routine does. The scalar twin, which has no such
    /// shortcut, is the test oracle.
    /// </summary>
    private static unsafe void FillDcOnly(short dequantizedDc, byte* output, int stride)
    {
        int d = (short)(dequantizedDc << Pass1Bits);
        byte sample = (byte)(Math.Clamp(Descale(d << ConstBits, Pass2Shift), sbyte.MinValue, sbyte.MaxValue) + 128);
        ulong row = sample * 0x0101_0101_0101_0101UL;
        for (int r = 0; r < 8; r++) *(ulong*)(output + r * stride) = row;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreRows(Vector128<byte> twoRows, byte* row, int stride)
    {
        Sse2.StoreScalar((ulong*)row, twoRows.AsUInt64());
        Sse2.StoreScalar((ulong*)(row + stride), Sse2.UnpackHigh(twoRows.AsUInt64(), twoRows.AsUInt64()));
    }

    private static Vector256<int> Widen(Vector128<short> x) => Avx2.ConvertToVector256Int32(x);

    private static Vector128<short> DescaleAndSaturate(Vector256<int> x, int shift)
    {
        var d = (x + Vector256.Create(1 << (shift - 1))) >> shift;
        return Sse2.PackSignedSaturate(d.GetLower(), d.GetUpper());
    }

    /// <summary><see cref="Pass"/> on 8 lanes at once: vK holds input K of every lane and receives output K,
    /// descaled by <paramref name="shift"/> and saturated to 16 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PassVector(ref Vector128<short> v0, ref Vector128<short> v1, ref Vector128<short> v2, ref Vector128<short> v3,
        ref Vector128<short> v4, ref Vector128<short> v5, ref Vector128<short> v6, ref Vector128<short> v7, int shift)
    {
        // Even part
        var z2 = Widen(v2);
        var z3 = Widen(v6);
        var z1 = (z2 + z3) * Vector256.Create(Fix0_541196100);
        var tmp2 = z1 + z3 * Vector256.Create(-Fix1_847759065);
        var tmp3 = z1 + z2 * Vector256.Create(Fix0_765366865);
        var tmp0 = Widen(Sse2.Add(v0, v4)) << ConstBits;
        var tmp1 = Widen(Sse2.Subtract(v0, v4)) << ConstBits;
        var tmp10 = tmp0 + tmp3;
        var tmp13 = tmp0 - tmp3;
        var tmp11 = tmp1 + tmp2;
        var tmp12 = tmp1 - tmp2;
        // Odd part
        var t0 = Widen(v7);
        var t1 = Widen(v5);
        var t2 = Widen(v3);
        var t3 = Widen(v1);
        var o1 = t0 + t3;
        var o2 = t1 + t2;
        var o3 = Widen(Sse2.Add(v7, v3));
        var o4 = Widen(Sse2.Add(v5, v1));
        var z5 = (o3 + o4) * Vector256.Create(Fix1_175875602);
        o3 = o3 * Vector256.Create(-Fix1_961570560) + z5;
        o4 = o4 * Vector256.Create(-Fix0_390180644) + z5;
        o1 *= Vector256.Create(-Fix0_899976223);
        o2 *= Vector256.Create(-Fix2_562915447);
        t0 = t0 * Vector256.Create(Fix0_298631336) + o1 + o3;
        t1 = t1 * Vector256.Create(Fix2_053119869) + o2 + o4;
        t2 = t2 * Vector256.Create(Fix3_072711026) + o2 + o3;
        t3 = t3 * Vector256.Create(Fix1_501321110) + o1 + o4;
        v0 = DescaleAndSaturate(tmp10 + t3, shift);
        v7 = DescaleAndSaturate(tmp10 - t3, shift);
        v1 = DescaleAndSaturate(tmp11 + t2, shift);
        v6 = DescaleAndSaturate(tmp11 - t2, shift);
        v2 = DescaleAndSaturate(tmp12 + t1, shift);
        v5 = DescaleAndSaturate(tmp12 - t1, shift);
        v3 = DescaleAndSaturate(tmp13 + t0, shift);
        v4 = DescaleAndSaturate(tmp13 - t0, shift);
    }

    /// <summary>Transposes the 8x8 block of shorts held as 8 rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(ref Vector128<short> r0, ref Vector128<short> r1, ref Vector128<short> r2, ref Vector128<short> r3,
        ref Vector128<short> r4, ref Vector128<short> r5, ref Vector128<short> r6, ref Vector128<short> r7)
    {
        // a: pairs of rows interleaved by 16 bits; b: quads by 32 bits; then each column is a 64-bit half of two b's.
        var a0 = Sse2.UnpackLow(r0, r1).AsInt32(); var a1 = Sse2.UnpackHigh(r0, r1).AsInt32();
        var a2 = Sse2.UnpackLow(r2, r3).AsInt32(); var a3 = Sse2.UnpackHigh(r2, r3).AsInt32();
        var a4 = Sse2.UnpackLow(r4, r5).AsInt32(); var a5 = Sse2.UnpackHigh(r4, r5).AsInt32();
        var a6 = Sse2.UnpackLow(r6, r7).AsInt32(); var a7 = Sse2.UnpackHigh(r6, r7).AsInt32();
        var b0 = Sse2.UnpackLow(a0, a2).AsInt64(); var b1 = Sse2.UnpackHigh(a0, a2).AsInt64();
        var b2 = Sse2.UnpackLow(a1, a3).AsInt64(); var b3 = Sse2.UnpackHigh(a1, a3).AsInt64();
        var b4 = Sse2.UnpackLow(a4, a6).AsInt64(); var b5 = Sse2.UnpackHigh(a4, a6).AsInt64();
        var b6 = Sse2.UnpackLow(a5, a7).AsInt64(); var b7 = Sse2.UnpackHigh(a5, a7).AsInt64();
        r0 = Sse2.UnpackLow(b0, b4).AsInt16(); r1 = Sse2.UnpackHigh(b0, b4).AsInt16();
        r2 = Sse2.UnpackLow(b1, b5).AsInt16(); r3 = Sse2.UnpackHigh(b1, b5).AsInt16();
        r4 = Sse2.UnpackLow(b2, b6).AsInt16(); r5 = Sse2.UnpackHigh(b2, b6).AsInt16();
        r6 = Sse2.UnpackLow(b3, b7).AsInt16(); r7 = Sse2.UnpackHigh(b3, b7).AsInt16();
    }
}
