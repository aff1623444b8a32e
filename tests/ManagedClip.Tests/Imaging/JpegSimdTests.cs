using ManagedClip.Imaging.Jpeg;
using ManagedClip.Kernels;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// The JPEG decoder's SIMD routines against their scalar twins on random and extreme inputs, byte for byte (the corpus
/// tests in JpegDecoderTests compare both paths with Pillow on real files).
/// </summary>
public sealed class JpegSimdTests
{
    private static readonly SimdLevel Vector = Simd.Best;

    [Fact]
    public void IdctVectorPathEqualsScalarTwin()
    {
        Assert.True(JpegIdct.UsesVectors(Vector), "this machine has AVX2; the vector IDCT must be the one under test");
        var random = new Random(14);
        var coefficients = new short[64];
        var quant = new ushort[64];
        const int stride = 11; // output rows wider than the block, as in a plane
        var scalar = new byte[7 * stride + 8 + 3];
        var vector = new byte[scalar.Length];
        for (int trial = 0; trial < 20000; trial++)
        {
            // Magnitudes from real files' (a few units) to the full 16-bit range; quantizers 1..255 and 16-bit ones.
            int magnitude = (trial % 5) switch { 0 => 4, 1 => 64, 2 => 1024, 3 => 8192, _ => 32768 };
            int maxQuant = trial % 3 == 0 ? 65536 : 256;
            int density = random.Next(1, 65);
            Array.Clear(coefficients);
            for (int k = 0; k < 64; k++)
            {
                if (random.Next(64) < density || k == 0) coefficients[k] = (short)random.Next(-magnitude, magnitude);
                quant[k] = (ushort)random.Next(trial % 7 == 0 ? 0 : 1, maxQuant);
            }
            if (trial % 4 == 1) Array.Clear(coefficients, 8, 56); // row 0 only: the vector path's shortcut
            if (trial % 9 == 2) for (int k = 0; k < 64; k++) coefficients[k] = random.Next(2) == 0 ? short.MinValue : short.MaxValue;
            int offset = random.Next(3);
            scalar.AsSpan().Fill(0xA5);
            vector.AsSpan().Fill(0xA5);
            JpegIdct.Transform(coefficients, quant, scalar, offset, stride, SimdLevel.Scalar);
            JpegIdct.Transform(coefficients, quant, vector, offset, stride, Vector);
            Assert.True(scalar.AsSpan().SequenceEqual(vector), $"trial {trial}: vector IDCT differs from the scalar twin");
        }
    }

    [Fact]
    public void IdctVectorDcOnlyBlocksEqualScalarTwinForEveryDcValue()
    {
        // The vector path fills a block with no AC coefficient without transforming it; the scalar twin transforms it.
        var coefficients = new short[64];
        var quant = new ushort[64];
        const int stride = 9;
        var scalar = new byte[7 * stride + 8];
        var vector = new byte[scalar.Length];
        foreach (ushort q in new ushort[] { 1, 2, 7, 16, 255, 4097, 65535 })
        {
            quant.AsSpan().Fill(q);
            for (int dc = short.MinValue; dc <= short.MaxValue; dc++)
            {
                coefficients[0] = (short)dc;
                scalar.AsSpan().Fill(0xA5);
                vector.AsSpan().Fill(0xA5);
                JpegIdct.Transform(coefficients, quant, scalar, 0, stride, SimdLevel.Scalar);
                JpegIdct.Transform(coefficients, quant, vector, 0, stride, Vector);
                if (!scalar.AsSpan().SequenceEqual(vector)) Assert.Fail($"DC {dc}, quantizer {q}: vector IDCT differs from the scalar twin");
            }
        }
    }

    [Fact]
    public void YccToRgbVectorPathEqualsScalarTwinOnEveryInput()
    {
        // Every (Y, Cb, Cr): one row per Y of all 65536 (Cb, Cr) pairs, then 17 more pixels so the rows end in a tail.
        const int pixels = 65536 + 17;
        var y = new byte[pixels];
        var cb = new byte[pixels];
        var cr = new byte[pixels];
        var scalar = new byte[3 * pixels];
        var vector = new byte[3 * pixels];
        for (int i = 0; i < pixels; i++) { cb[i] = (byte)i; cr[i] = (byte)(i >> 8); }
        for (int luma = 0; luma < 256; luma++)
        {
            y.AsSpan().Fill((byte)luma);
            JpegColor.YccToRgb(y, cb, cr, scalar, SimdLevel.Scalar);
            JpegColor.YccToRgb(y, cb, cr, vector, Vector);
            Assert.True(scalar.AsSpan().SequenceEqual(vector), $"Y {luma}: vector YCbCr->RGB differs from the scalar twin");
        }
        // Short rows: all tail, and one step plus a tail.
        foreach (int n in new[] { 1, 15, 16, 31 })
        {
            JpegColor.YccToRgb(y, cb, cr, scalar.AsSpan(0, 3 * n), SimdLevel.Scalar);
            JpegColor.YccToRgb(y, cb, cr, vector.AsSpan(0, 3 * n), Vector);
            Assert.True(scalar.AsSpan(0, 3 * n).SequenceEqual(vector.AsSpan(0, 3 * n)), $"{n} pixels");
        }
    }

    [Theory]
    [InlineData(2, 1)] // h2v1 fancy
    [InlineData(2, 2)] // h2v2 fancy
    public void FancyUpsamplingVectorPathEqualsScalarTwin(int maxH, int maxV)
    {
        var random = new Random(maxH * 10 + maxV);
        for (int width = 3; width <= 80; width++)
        {
            const int height = 5;
            int stride = width + random.Next(3);
            var plane = new byte[stride * height];
            random.NextBytes(plane);
            if (width % 4 == 0) for (int k = 0; k < plane.Length; k++) plane[k] = random.Next(2) == 0 ? (byte)0 : (byte)255;
            var scalar = new JpegUpsampler(plane, stride, width, height, 1, 1, maxH, maxV, fancy: true, "twin", SimdLevel.Scalar);
            var vector = new JpegUpsampler(plane, stride, width, height, 1, 1, maxH, maxV, fancy: true, "twin", Vector);
            int outputWidth = maxH * width - width % 2; // the image may be one column short of the doubled width
            var a = new byte[outputWidth];
            var b = new byte[outputWidth];
            for (int y = 0; y < maxV * height; y++)
            {
                scalar.UpsampleRow(y, a);
                vector.UpsampleRow(y, b);
                Assert.True(a.AsSpan().SequenceEqual(b), $"width {width}, row {y}: vector upsampling differs from the scalar twin");
            }
        }
    }
}
