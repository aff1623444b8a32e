namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// libjpeg's accurate integer inverse DCT (jidctint.c jpeg_idct_islow, the default JDCT_ISLOW that Pillow uses):
/// dequantization, a column pass keeping PASS1_BITS extra bits, a row pass, then descaling and the sample range-limit
/// table. The constants are FIX(x) = round(x * 2^13); every multiply, add and shift is the same as in the C code so
/// the output is bit-identical.
/// </summary>
internal static class JpegIdct
{
    private const int ConstBits = 13, Pass1Bits = 2;
    private const int Fix0_298631336 = 2446, Fix0_390180644 = 3196, Fix0_541196100 = 4433, Fix0_765366865 = 6270,
        Fix0_899976223 = 7373, Fix1_175875602 = 9633, Fix1_501321110 = 12299, Fix1_847759065 = 15137,
        Fix1_961570560 = 16069, Fix2_053119869 = 16819, Fix2_562915447 = 20995, Fix3_072711026 = 25172;

    /// <summary>
    /// The post-IDCT part of libjpeg's sample_range_limit table (jdmaster.c prepare_range_limit_table), indexed by the
    /// descaled value &amp; 1023: [-128, 127] maps to value + 128, 128..511 saturate to 255, 512..895 (i.e. values far
    /// out of range, which only corrupt data produces) wrap to 0 as the table does.
    /// </summary>
    internal static readonly byte[] RangeLimit = BuildRangeLimit();

    private static byte[] BuildRangeLimit()
    {
        var t = new byte[1024];
        for (int x = 0; x < 1024; x++)
            t[x] = x < 128 ? (byte)(x + 128) : x < 512 ? (byte)255 : x < 896 ? (byte)0 : (byte)(x - 896);
        return t;
    }

    private static int Descale(int x, int n) => (x + (1 << (n - 1))) >> n;

    /// <summary>Transforms one block of 64 coefficients (natural order) to an 8x8 block of samples at
    /// output[offset + row * stride + column].</summary>
    public static void Transform(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride)
    {
        Span<int> ws = stackalloc int[64];
        for (int c = 0; c < 8; c++)
        {
            if (coefficients[8 + c] == 0 && coefficients[16 + c] == 0 && coefficients[24 + c] == 0 && coefficients[32 + c] == 0 &&
                coefficients[40 + c] == 0 && coefficients[48 + c] == 0 && coefficients[56 + c] == 0)
            {
                int dc = (coefficients[c] * quant[c]) << Pass1Bits;
                for (int r = 0; r < 8; r++) ws[r * 8 + c] = dc;
                continue;
            }
            // Even part
            int z2 = coefficients[16 + c] * quant[16 + c], z3 = coefficients[48 + c] * quant[48 + c];
            int z1 = (z2 + z3) * Fix0_541196100;
            int tmp2 = z1 + z3 * -Fix1_847759065;
            int tmp3 = z1 + z2 * Fix0_765366865;
            z2 = coefficients[c] * quant[c];
            z3 = coefficients[32 + c] * quant[32 + c];
            int tmp0 = (z2 + z3) << ConstBits;
            int tmp1 = (z2 - z3) << ConstBits;
            int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
            // Odd part
            tmp0 = coefficients[56 + c] * quant[56 + c];
            tmp1 = coefficients[40 + c] * quant[40 + c];
            tmp2 = coefficients[24 + c] * quant[24 + c];
            tmp3 = coefficients[8 + c] * quant[8 + c];
            Odd(ref tmp0, ref tmp1, ref tmp2, ref tmp3);
            const int n = ConstBits - Pass1Bits;
            ws[0 * 8 + c] = Descale(tmp10 + tmp3, n);
            ws[7 * 8 + c] = Descale(tmp10 - tmp3, n);
            ws[1 * 8 + c] = Descale(tmp11 + tmp2, n);
            ws[6 * 8 + c] = Descale(tmp11 - tmp2, n);
            ws[2 * 8 + c] = Descale(tmp12 + tmp1, n);
            ws[5 * 8 + c] = Descale(tmp12 - tmp1, n);
            ws[3 * 8 + c] = Descale(tmp13 + tmp0, n);
            ws[4 * 8 + c] = Descale(tmp13 - tmp0, n);
        }
        byte[] limit = RangeLimit;
        for (int r = 0; r < 8; r++)
        {
            var w = ws.Slice(r * 8, 8);
            var o = output.Slice(offset + r * stride, 8);
            if (w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0)
            {
                o.Fill(limit[Descale(w[0], Pass1Bits + 3) & 1023]);
                continue;
            }
            int z2 = w[2], z3 = w[6];
            int z1 = (z2 + z3) * Fix0_541196100;
            int tmp2 = z1 + z3 * -Fix1_847759065;
            int tmp3 = z1 + z2 * Fix0_765366865;
            int tmp0 = (w[0] + w[4]) << ConstBits;
            int tmp1 = (w[0] - w[4]) << ConstBits;
            int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
            tmp0 = w[7]; tmp1 = w[5]; tmp2 = w[3]; tmp3 = w[1];
            Odd(ref tmp0, ref tmp1, ref tmp2, ref tmp3);
            const int n = ConstBits + Pass1Bits + 3;
            o[0] = limit[Descale(tmp10 + tmp3, n) & 1023];
            o[7] = limit[Descale(tmp10 - tmp3, n) & 1023];
            o[1] = limit[Descale(tmp11 + tmp2, n) & 1023];
            o[6] = limit[Descale(tmp11 - tmp2, n) & 1023];
            o[2] = limit[Descale(tmp12 + tmp1, n) & 1023];
            o[5] = limit[Descale(tmp12 - tmp1, n) & 1023];
            o[3] = limit[Descale(tmp13 + tmp0, n) & 1023];
            o[4] = limit[Descale(tmp13 - tmp0, n) & 1023];
        }
    }

    /// <summary>The odd part shared by both passes: inputs are the coefficients of frequencies 7, 5, 3, 1.</summary>
    private static void Odd(ref int tmp0, ref int tmp1, ref int tmp2, ref int tmp3)
    {
        int z1 = tmp0 + tmp3, z2 = tmp1 + tmp2, z3 = tmp0 + tmp2, z4 = tmp1 + tmp3;
        int z5 = (z3 + z4) * Fix1_175875602;
        tmp0 *= Fix0_298631336;
        tmp1 *= Fix2_053119869;
        tmp2 *= Fix3_072711026;
        tmp3 *= Fix1_501321110;
        z1 *= -Fix0_899976223;
        z2 *= -Fix2_562915447;
        z3 *= -Fix1_961570560;
        z4 *= -Fix0_390180644;
        z3 += z5;
        z4 += z5;
        tmp0 += z1 + z3;
        tmp1 += z2 + z4;
        tmp2 += z2 + z3;
        tmp3 += z1 + z4;
    }
}
