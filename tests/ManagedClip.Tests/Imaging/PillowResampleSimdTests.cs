using ManagedClip.Imaging;
using ManagedClip.Kernels;
using ManagedClip.Tests.Support;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// PillowResample.Resample8's AVX2 passes against their scalar twins, byte for byte, over random sizes, windows,
/// filters and channel counts (the oracle and JPEG preprocessing tests compare the default path with Pillow's bytes).
/// </summary>
public sealed class PillowResampleSimdTests
{
    private static readonly SimdLevel Vector = Simd.Best;
    private static readonly PillowFilter[] Filters = [PillowFilter.Bicubic, PillowFilter.Bilinear, PillowFilter.Lanczos, PillowFilter.Box, PillowFilter.Hamming];

    /// <summary>Random bytes, or only 0 and 255 (the filters' negative lobes then overshoot, so the clip to 0..255 is exercised).</summary>
    private static byte[] Image(Random random, int length, bool extremes)
    {
        var image = new byte[length];
        random.NextBytes(image);
        if (extremes) for (int i = 0; i < length; i++) image[i] = image[i] < 128 ? (byte)0 : (byte)255;
        return image;
    }

    /// <summary>A size: 1, a few, tens or hundreds, so 1xN and Nx1 images and single-pixel windows come up often.</summary>
    private static int Size(Random random) => random.Next(6) switch { 0 => 1, 1 => random.Next(2, 9), 2 => random.Next(9, 80), _ => random.Next(80, 400) };

    private static void AssertPathsAgree(ReadOnlySpan<byte> src, int w, int h, int ch, int outW, int outH, PillowFilter filter, int x0, int y0, int cw, int chh)
    {
        byte[] scalar = PillowResample.Resample8(src, w, h, ch, outW, outH, filter, x0, y0, cw, chh, SimdLevel.Scalar);
        byte[] vector = PillowResample.Resample8(src, w, h, ch, outW, outH, filter, x0, y0, cw, chh, Vector);
        Assert.True(scalar.AsSpan().SequenceEqual(vector),
            $"{w}x{h}x{ch} -> {outW}x{outH} {filter}, window {x0},{y0} {cw}x{chh}: the AVX2 resample differs from the scalar twin");
    }

    [Fact]
    public void VectorPathEqualsScalarTwinOnRandomResizes()
    {
        for (int ch = 1; ch <= 4; ch++)
            Assert.True(PillowResample.UsesVectors(Vector, ch), "this machine has AVX2; the vector resample must be the one under test");
        var random = new Random(15);
        for (int trial = 0; trial < 1500; trial++)
        {
            int ch = random.Next(1, 6); // 5 stays scalar on both paths
            int w = Size(random), h = Size(random);
            // Down and up on each axis, and now and then the same size (that axis is copied).
            int outW = random.Next(8) == 0 ? w : random.Next(1, 2 * w + 4);
            int outH = random.Next(8) == 0 ? h : random.Next(1, 2 * h + 4);
            // The whole output, a window touching its last column and row, or a random one.
            int x0, y0, cw, chh;
            switch (trial % 3)
            {
                case 0: (x0, y0, cw, chh) = (0, 0, outW, outH); break;
                case 1: cw = random.Next(1, outW + 1); chh = random.Next(1, outH + 1); (x0, y0) = (outW - cw, outH - chh); break;
                default: x0 = random.Next(outW); y0 = random.Next(outH); cw = random.Next(1, outW - x0 + 1); chh = random.Next(1, outH - y0 + 1); break;
            }
            byte[] src = Image(random, w * h * ch, extremes: trial % 4 == 0);
            AssertPathsAgree(src, w, h, ch, outW, outH, Filters[trial % Filters.Length], x0, y0, cw, chh);
        }
    }

    [Fact]
    public void VectorPathEqualsScalarTwinOnAPhotoSizedResize()
    {
        // The CLI's case: a 4000x3000 RGB photo to 299x224 bicubic, centre crop 224x224.
        var random = new Random(4000);
        byte[] src = Image(random, 4000 * 3000 * 3, extremes: false);
        AssertPathsAgree(src, 4000, 3000, 3, 299, 224, PillowFilter.Bicubic, 37, 0, 224, 224);
    }

    [Fact]
    public void VectorPathReadsNothingPastTheSourceSpan()
    {
        // Each image ends at a page that may not be read: the last output pixels' taps end at the last source byte, where
        // an 8-byte load of their last step would run past it. Small and wide images, every channel count, windows that
        // reach the last row and column.
        var random = new Random(8);
        foreach (int ch in new[] { 1, 2, 3, 4 })
            foreach (var (w, h) in new[] { (1, 1), (1, 7), (7, 1), (2, 3), (13, 5), (64, 9), (301, 4), (1000, 3) })
                foreach (var (outW, outH) in new[] { (1, 1), (Math.Max(1, w / 3), Math.Max(1, h / 2)), (w + 5, h + 2), (w, h + 1), (w + 1, h) })
                    foreach (var filter in new[] { PillowFilter.Bicubic, PillowFilter.Box, PillowFilter.Lanczos })
                    {
                        using var memory = new GuardedMemory(w * h * ch);
                        random.NextBytes(memory.Span);
                        AssertPathsAgree(memory.Span, w, h, ch, outW, outH, filter, 0, 0, outW, outH);
                        AssertPathsAgree(memory.Span, w, h, ch, outW, outH, filter, outW - 1, outH - 1, 1, 1);
                    }
    }
}
