using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels.Tests;

/// <summary>
/// Winograd F(2×2, 3×3): against the double-precision definition of the convolution (odd and even sizes, channel tails at
/// every vector width, borders, a 1×1 image), bit-identical across SIMD levels, thread counts and chunk sizes, and its
/// argument errors.
/// </summary>
public class WinogradTests
{
    public static IEnumerable<object[]> Levels => Simd.Supported.Select(l => new object[] { l });

    // (height, width, in channels, out channels)
    public static readonly (int H, int W, int Cin, int Cout)[] Shapes =
    [
        (7, 7, 64, 64),     // RN50 layer4's map size: odd, last tile row and column half outside
        (6, 8, 17, 9),      // even sizes, channel tails at every width
        (5, 9, 33, 40),     // non-square, odd
        (1, 1, 3, 5),       // one pixel: every tap but the centre is padding
        (2, 3, 16, 70),     // one tile row, more than one 64-column panel
        (9, 4, 1, 1),
    ];

    /// <summary>Input [batch, H, W, Cin], OIHW weights, bias and the transformed filter, from seeds seed … seed + 2 (seed advances by 3).</summary>
    static (float[] X, float[] Weights, float[] Bias, WinogradFilter Filter) Operands((int H, int W, int Cin, int Cout) c, int batch, ref int seed, float scale = 0.5f)
    {
        var x = Random(batch * c.H * c.W * c.Cin, seed++);
        var weights = Random(c.Cout * c.Cin * 9, seed++, scale);
        var bias = Random(c.Cout, seed++);
        return (x, weights, bias, WinogradFilter.FromWeights(weights, c.Cout, c.Cin));
    }

    /// <summary>The definition of the convolution Winograd computes: 3×3, stride 1, padding 1, in double.</summary>
    static float[] Definition(float[] x, int batch, int h, int w, int cin, float[] weights, int cout, float[]? bias, bool relu) =>
        ConvolutionTests.DirectConvolution(x, batch, h, w, cin, weights, cout, 3, 1, 1, bias, relu);

    static float[] Random(int length, int seed, float scale = 1f) => ConvolutionTests.Random(length, seed, scale);

    static void Close(float[] expected, float[] actual, double tolerance) => ConvolutionTests.Close(expected, actual, tolerance);

    static float[] Run((int H, int W, int Cin, int Cout) c, int batch, float[] x, WinogradFilter filter, float[] bias, Activation activation,
        SimdLevel level, int threads, int scratchTiles = 1000)
    {
        // NaN-filled: every output element must be written.
        var y = Enumerable.Repeat(float.NaN, batch * c.H * c.W * c.Cout).ToArray();
        var scratch = new float[scratchTiles * Winograd.MinimumScratch(c.Cin, c.Cout)];
        Winograd.Forward(x, new ImageGeometry(batch, c.H, c.W, c.Cin), filter, y, scratch, Epilogue.Of(bias, activation), TestData.At(level, threads));
        return y;
    }

    [Theory, MemberData(nameof(Levels))]
    public void MatchesTheDefinitionAtEveryLevel(SimdLevel level)
    {
        int seed = 1;
        foreach (var c in Shapes)
        {
            var (x, weights, bias, filter) = Operands(c, 2, ref seed);
            foreach (var relu in new[] { false, true })
                Close(Definition(x, 2, c.H, c.W, c.Cin, weights, c.Cout, bias, relu),
                    Run(c, 2, x, filter, bias, relu ? Activation.Relu : Activation.None, level, 1), 1e-5);
            Close(Definition(x, 2, c.H, c.W, c.Cin, weights, c.Cout, null, relu: false), Run(c, 2, x, filter, [], Activation.None, level, 1), 1e-5);
        }
    }

    /// <summary>
    /// The transforms are the same adds in the same order at every width, and every GEMM row is summed alone with fused
    /// multiply-adds: every vector level, thread count and chunk size gives the same bits. (The scalar level's GEMM twin rounds
    /// each product separately, so it is held to the definition above instead.)
    /// </summary>
    [Fact]
    public void VectorLevelsThreadsAndChunkSizesGiveTheSameBits()
    {
        int seed = 50;
        foreach (var c in Shapes)
        {
            var (x, _, bias, filter) = Operands(c, 3, ref seed);
            var best = Run(c, 3, x, filter, bias, Activation.Relu, Simd.Best, 1);
            foreach (var level in Simd.Supported.Where(l => l != SimdLevel.Scalar))
            {
                Assert.Equal(best, Run(c, 3, x, filter, bias, Activation.Relu, level, 1));
                Assert.Equal(best, Run(c, 3, x, filter, bias, Activation.Relu, level, 2));
                Assert.Equal(best, Run(c, 3, x, filter, bias, Activation.Relu, level, 3, scratchTiles: 1));   // one tile per chunk
                Assert.Equal(best, Run(c, 3, x, filter, bias, Activation.Relu, level, 2, scratchTiles: 7));   // chunks across images
            }
            var scalar = Run(c, 3, x, filter, bias, Activation.Relu, SimdLevel.Scalar, 1);
            Assert.Equal(scalar, Run(c, 3, x, filter, bias, Activation.Relu, SimdLevel.Scalar, 2, scratchTiles: 7));
        }
    }

    /// <summary>Enough tiles for several preferred-size chunks (RN50 layer2's first conv2 on 2 images: 1568 tiles).</summary>
    [Fact]
    public void LargeInputInPreferredChunksMatchesTheDefinition()
    {
        var c = (H: 56, W: 56, Cin: 128, Cout: 128);
        int seed = 90;
        var (x, weights, bias, filter) = Operands(c, 2, ref seed, scale: 0.1f);
        int scratch = Winograd.PreferredScratch(c.Cin, c.Cout, Winograd.Tiles(2, c.H, c.W));
        Assert.True(scratch < Winograd.Tiles(2, c.H, c.W) * Winograd.MinimumScratch(c.Cin, c.Cout), "the preferred chunk should not hold every tile");
        var y = new float[2 * c.H * c.W * c.Cout];
        Winograd.Forward(x, new ImageGeometry(2, c.H, c.W, c.Cin), filter, y, new float[scratch], Epilogue.Of(bias, Activation.Relu), TestData.At(Simd.Best, 2));
        Close(Definition(x, 2, c.H, c.W, c.Cin, weights, c.Cout, bias, relu: true), y, 1e-5);
    }

    [Fact]
    public void AppliesToThreeByThreeStrideOneFromSixtyFourChannels()
    {
        Assert.True(Winograd.Applies(3, 1, 1, 64));
        Assert.True(Winograd.Applies(3, 1, 1, 512));
        Assert.False(Winograd.Applies(3, 1, 1, 32));    // the stem: the direct kernel measured faster
        Assert.False(Winograd.Applies(3, 2, 1, 64));    // stride 2
        Assert.False(Winograd.Applies(3, 1, 0, 64));    // no padding
        Assert.False(Winograd.Applies(1, 1, 0, 256));   // 1×1 is a plain GEMM
    }

    [Fact]
    public void RejectsWhatItCannotDo()
    {
        var filter = WinogradFilter.FromWeights(new float[4 * 3 * 9], 4, 3);
        var x = new float[5 * 5 * 3];
        var y = new float[5 * 5 * 4];
        var scratch = new float[Winograd.MinimumScratch(3, 4)];
        var shape = new ImageGeometry(1, 5, 5, 3);
        Assert.Contains("QuickGelu", Assert.Throws<ArgumentException>(() => Winograd.Forward(x, shape, filter, y, scratch, Epilogue.Of([], Activation.QuickGelu))).Message);
        Assert.Contains("residual", Assert.Throws<ArgumentException>(() => Winograd.Forward(x, shape, filter, y, scratch, new Epilogue([], residual: y))).Message);
        Assert.Contains("scratch has 111", Assert.Throws<ArgumentException>(() => Winograd.Forward(x, shape, filter, y, new float[111])).Message);
        Assert.Contains("input has 74", Assert.Throws<ArgumentException>(() => Winograd.Forward(x.AsSpan(1), shape, filter, y, scratch)).Message);
        Assert.Contains("output has 99", Assert.Throws<ArgumentException>(() => Winograd.Forward(x, shape, filter, y.AsSpan(1), scratch)).Message);
        Assert.Contains("bias has 3", Assert.Throws<ArgumentException>(() => Winograd.Forward(x, shape, filter, y, scratch, Epilogue.Of(new float[3]))).Message);
        Assert.Contains("4 channels", Assert.Throws<ArgumentException>(() => Winograd.Forward(x, new ImageGeometry(1, 5, 5, 4), filter, y, scratch)).Message);
        Assert.Contains("expected [4, 3, 3, 3]", Assert.Throws<ArgumentException>(() => WinogradFilter.FromWeights(new float[100], 4, 3)).Message);
    }

    /// <summary>The one-lane ops that finish channel tails agree with the vector ops lane for lane, masks and exp included.</summary>
    [Fact]
    public void ScalarOpsMatchVectorOpsLaneForLane()
    {
        float[] a = [1.5f, -0f, 3e-39f, -7.25f, 88.5f, -103f, float.NaN, 0.3f], b = [0.5f, 0f, -2f, -7.25f, 1e30f, 2f, 1f, -0.3f];
        foreach (var (x, y) in a.Zip(b))
        {
            var vx = Vector128.Create(x);
            var vy = Vector128.Create(y);
            Assert.Equal(Ops128.Add(vx, vy).ToScalar(), OpsScalar.Add(x, y));
            Assert.Equal(Ops128.Sub(vx, vy).ToScalar(), OpsScalar.Sub(x, y));
            Assert.Equal(Ops128.Fma(vx, vy, vx).ToScalar(), OpsScalar.Fma(x, y, x));
            Assert.Equal(BitConverter.SingleToInt32Bits(Ops128.Max(vx, vy).ToScalar()), BitConverter.SingleToInt32Bits(OpsScalar.Max(x, y)));
            Assert.Equal(BitConverter.SingleToInt32Bits(Ops128.Min(vx, vy).ToScalar()), BitConverter.SingleToInt32Bits(OpsScalar.Min(x, y)));
            Assert.Equal(Ops128.Exp(vx).ToScalar(), OpsScalar.Exp(x));
            Assert.Equal(Ops128.Round(vx).ToScalar(), OpsScalar.Round(x));
            Assert.Equal(BitConverter.SingleToInt32Bits(Ops128.LessThan(vx, vy).ToScalar()), BitConverter.SingleToInt32Bits(OpsScalar.LessThan(x, y)));
            Assert.Equal(BitConverter.SingleToInt32Bits(Ops128.GreaterThanOrEqual(vx, vy).ToScalar()), BitConverter.SingleToInt32Bits(OpsScalar.GreaterThanOrEqual(x, y)));
            Assert.Equal(Ops128.Select(Ops128.LessThan(vx, vy), vx, vy).ToScalar(), OpsScalar.Select(OpsScalar.LessThan(x, y), x, y));
        }
    }
}
