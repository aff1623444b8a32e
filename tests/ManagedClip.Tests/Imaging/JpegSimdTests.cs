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
}
