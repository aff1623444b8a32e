using ManagedClip.Kernels;

namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// libjpeg's reduced-size inverse DCTs (jidctred.c jpeg_idct_4x4, jpeg_idct_2x2 and jpeg_idct_1x1), which decode an
/// 8x8 block of coefficients straight to 4x4, 2x2 or 1x1 samples when the output is scaled by 1/2, 1/4 or 1/8
/// (libjpeg-turbo 2.1 picks them in jddctmgr.c by the component's DCT_scaled_size). Like the islow IDCT they
/// dequantize with the raw quantization table, use CONST_BITS 13 and PASS1_BITS 2 (8-bit samples), and end in the
/// same range-limit table; every multiply, add and shift is the C code's, so the output is bit-identical.
/// Pillow's libjpeg-turbo runs the SSE2 twins of the 4x4 and 2x2 kernels (jidctred-sse2.asm), which follow
/// jidctred.c step for step with 16-bit dequantized coefficients: they agree with the C code whenever a dequantized
/// coefficient fits in 16 bits, i.e. for any file a JPEG encoder writes with 8-bit quantization tables.
/// </summary>
internal static class JpegScaledIdct
{
    private const int ConstBits = 13, Pass1Bits = 2;
    private const int Fix0_211164243 = 1730, Fix0_509795579 = 4176, Fix0_601344887 = 4926, Fix0_720959822 = 5906,
        Fix0_765366865 = 6270, Fix0_850430095 = 6967, Fix0_899976223 = 7373, Fix1_061594337 = 8697,
        Fix1_272758580 = 10426, Fix1_451774981 = 11893, Fix1_847759065 = 15137, Fix2_172734803 = 17799,
        Fix2_562915447 = 20995, Fix3_624509785 = 29692;

    private static int Descale(int x, int n) => (x + (1 << (n - 1))) >> n;

    /// <summary>
    /// The post-IDCT part of libjpeg's sample_range_limit table (jdmaster.c prepare_range_limit_table), indexed by the
    /// descaled value &amp; 1023: [-128, 127] maps to value + 128, 128..511 saturate to 255, 512..895 (i.e. values far
    /// out of range, which only corrupt data produces) wrap to 0 as the table does.
    /// </summary>
    private static readonly byte[] RangeLimit = BuildRangeLimit();

    private static byte[] BuildRangeLimit()
    {
        var t = new byte[1024];
        for (int x = 0; x < 1024; x++)
            t[x] = x < 128 ? (byte)(x + 128) : x < 512 ? (byte)255 : x < 896 ? (byte)0 : (byte)(x - 896);
        return t;
    }

    /// <summary>Transforms one block of 64 coefficients (natural order) to <paramref name="size"/> x
    /// <paramref name="size"/> samples at output[offset + row * stride + column]: 8 is the full islow IDCT
    /// (<see cref="JpegIdct"/>), 4, 2 and 1 the reduced ones.</summary>
    public static void Transform(int size, ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride, SimdLevel level)
    {
        switch (size)
        {
            case 8: JpegIdct.Transform(coefficients, quant, output, offset, stride, level); break;
            case 4: Transform4x4(coefficients, quant, output, offset, stride); break;
            case 2: Transform2x2(coefficients, quant, output, offset, stride); break;
            case 1: output[offset] = RangeLimit[Descale(coefficients[0] * quant[0], 3) & 1023]; break;
            default: throw new ArgumentOutOfRangeException(nameof(size), size, "the DCT scaled size is 1, 2, 4 or 8");
        }
    }

    /// <summary>jpeg_idct_4x4: the column pass skips column 4 and keeps 4 rows; the even part uses coefficients 0, 2 and
    /// 6, the odd part 1, 3, 5 and 7 (4 is not needed for 4 outputs).</summary>
    private static void Transform4x4(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride)
    {
        Span<int> ws = stackalloc int[8 * 4]; // [row 0..3, column 0..7]; column 4 is never written nor read
        for (int c = 0; c < 8; c++)
        {
            if (c == 4) continue;
            if (coefficients[8 + c] == 0 && coefficients[16 + c] == 0 && coefficients[24 + c] == 0 &&
                coefficients[40 + c] == 0 && coefficients[48 + c] == 0 && coefficients[56 + c] == 0)
            {
                int dc = (coefficients[c] * quant[c]) << Pass1Bits;
                for (int r = 0; r < 4; r++) ws[r * 8 + c] = dc;
                continue;
            }
            int tmp0 = (coefficients[c] * quant[c]) << (ConstBits + 1);
            int tmp2 = coefficients[16 + c] * quant[16 + c] * Fix1_847759065 + coefficients[48 + c] * quant[48 + c] * -Fix0_765366865;
            int tmp10 = tmp0 + tmp2, tmp12 = tmp0 - tmp2;
            OddPart4(coefficients[56 + c] * quant[56 + c], coefficients[40 + c] * quant[40 + c],
                coefficients[24 + c] * quant[24 + c], coefficients[8 + c] * quant[8 + c], out tmp0, out tmp2);
            const int n = ConstBits - Pass1Bits + 1;
            ws[0 * 8 + c] = Descale(tmp10 + tmp2, n);
            ws[3 * 8 + c] = Descale(tmp10 - tmp2, n);
            ws[1 * 8 + c] = Descale(tmp12 + tmp0, n);
            ws[2 * 8 + c] = Descale(tmp12 - tmp0, n);
        }
        byte[] limit = RangeLimit;
        for (int r = 0; r < 4; r++)
        {
            var w = ws.Slice(r * 8, 8);
            var o = output.Slice(offset + r * stride, 4);
            if (w[1] == 0 && w[2] == 0 && w[3] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0)
            {
                o.Fill(limit[Descale(w[0], Pass1Bits + 3) & 1023]);
                continue;
            }
            int tmp0 = w[0] << (ConstBits + 1);
            int tmp2 = w[2] * Fix1_847759065 + w[6] * -Fix0_765366865;
            int tmp10 = tmp0 + tmp2, tmp12 = tmp0 - tmp2;
            OddPart4(w[7], w[5], w[3], w[1], out tmp0, out tmp2);
            const int n = ConstBits + Pass1Bits + 3 + 1;
            o[0] = limit[Descale(tmp10 + tmp2, n) & 1023];
            o[3] = limit[Descale(tmp10 - tmp2, n) & 1023];
            o[1] = limit[Descale(tmp12 + tmp0, n) & 1023];
            o[2] = limit[Descale(tmp12 - tmp0, n) & 1023];
        }
    }

    /// <summary>The 4x4 odd part shared by both passes: inputs are the values of frequencies 7, 5, 3 and 1.</summary>
    private static void OddPart4(int z1, int z2, int z3, int z4, out int tmp0, out int tmp2)
    {
        tmp0 = z1 * -Fix0_211164243 + z2 * Fix1_451774981 + z3 * -Fix2_172734803 + z4 * Fix1_061594337;
        tmp2 = z1 * -Fix0_509795579 + z2 * -Fix0_601344887 + z3 * Fix0_899976223 + z4 * Fix2_562915447;
    }

    /// <summary>jpeg_idct_2x2: the column pass processes columns 0, 1, 3, 5 and 7 and keeps 2 rows; only the DC and the
    /// odd frequencies contribute to 2 outputs.</summary>
    private static void Transform2x2(ReadOnlySpan<short> coefficients, ReadOnlySpan<ushort> quant, Span<byte> output, int offset, int stride)
    {
        Span<int> ws = stackalloc int[8 * 2]; // [row 0..1, column 0..7]; columns 2, 4 and 6 are never written nor read
        for (int c = 0; c < 8; c++)
        {
            if (c is 2 or 4 or 6) continue;
            if (coefficients[8 + c] == 0 && coefficients[24 + c] == 0 && coefficients[40 + c] == 0 && coefficients[56 + c] == 0)
            {
                int dc = (coefficients[c] * quant[c]) << Pass1Bits;
                ws[c] = dc;
                ws[8 + c] = dc;
                continue;
            }
            int tmp10 = (coefficients[c] * quant[c]) << (ConstBits + 2);
            int tmp0 = OddPart2(coefficients[56 + c] * quant[56 + c], coefficients[40 + c] * quant[40 + c],
                coefficients[24 + c] * quant[24 + c], coefficients[8 + c] * quant[8 + c]);
            const int n = ConstBits - Pass1Bits + 2;
            ws[c] = Descale(tmp10 + tmp0, n);
            ws[8 + c] = Descale(tmp10 - tmp0, n);
        }
        byte[] limit = RangeLimit;
        for (int r = 0; r < 2; r++)
        {
            var w = ws.Slice(r * 8, 8);
            int at = offset + r * stride;
            if (w[1] == 0 && w[3] == 0 && w[5] == 0 && w[7] == 0)
            {
                output[at] = output[at + 1] = limit[Descale(w[0], Pass1Bits + 3) & 1023];
                continue;
            }
            int tmp10 = w[0] << (ConstBits + 2);
            int tmp0 = OddPart2(w[7], w[5], w[3], w[1]);
            const int n = ConstBits + Pass1Bits + 3 + 2;
            output[at] = limit[Descale(tmp10 + tmp0, n) & 1023];
            output[at + 1] = limit[Descale(tmp10 - tmp0, n) & 1023];
        }
    }

    /// <summary>The 2x2 odd part shared by both passes: inputs are the values of frequencies 7, 5, 3 and 1.</summary>
    private static int OddPart2(int z7, int z5, int z3, int z1) =>
        z7 * -Fix0_720959822 + z5 * Fix0_850430095 + z3 * -Fix1_272758580 + z1 * Fix3_624509785;
}
