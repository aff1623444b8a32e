namespace ManagedClip.Kernels.Tests;

/// <summary>
/// Convolution and pooling kernels (NHWC): against a direct, double-precision oracle written from the definition,
/// every SIMD level against the scalar twin, odd spatial sizes and channel tails, chunked scratch, threads 1 vs 2.
/// </summary>
public class ConvolutionTests
{
    public static IEnumerable<object[]> Levels => Simd.Supported.Select(l => new object[] { l });

    // (height, width, in channels, out channels, kernel, stride, padding)
    public static readonly (int H, int W, int Cin, int Cout, int K, int S, int P)[] Shapes =
    [
        (7, 7, 3, 5, 3, 1, 1),     // stem-like, 3 input channels
        (5, 9, 6, 4, 3, 2, 1),     // odd, non-square, stride 2
        (7, 7, 17, 9, 3, 2, 1),    // channel tails at every width
        (9, 5, 33, 40, 3, 1, 1),
        (5, 9, 8, 12, 1, 1, 0),    // 1×1: straight GEMM
        (7, 7, 19, 21, 1, 1, 0),
        (6, 6, 4, 6, 3, 1, 0),     // no padding
        (4, 7, 5, 3, 5, 2, 2),     // 5×5 kernel
    ];

    internal static float[] Random(int length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return values;
    }

    /// <summary>Input [batch, H, W, Cin], OIHW weights and bias for one shape, from seeds seed, seed + 1, seed + 2 (seed advances by 3).</summary>
    static (float[] X, float[] Weights, float[] Bias) Operands((int H, int W, int Cin, int Cout, int K, int S, int P) c, int batch, ref int seed) =>
        (Random(batch * c.H * c.W * c.Cin, seed++), Random(c.Cout * c.Cin * c.K * c.K, seed++, 0.5f), Random(c.Cout, seed++));

    /// <summary>The definition, term by term, in double: x NHWC, w OIHW.</summary>
    internal static float[] DirectConvolution(float[] x, int batch, int h, int w, int cin, float[] weights, int cout, int k, int s, int p, float[]? bias, bool relu)
    {
        int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
        var y = new float[batch * ho * wo * cout];
        for (int b = 0; b < batch; b++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int co = 0; co < cout; co++)
                    {
                        double sum = bias?[co] ?? 0;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                            {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                for (int ci = 0; ci < cin; ci++)
                                    sum += (double)x[((b * h + iy) * w + ix) * cin + ci] * weights[((co * cin + ci) * k + ky) * k + kx];
                            }
                        y[((b * ho + oy) * wo + ox) * cout + co] = (float)(relu ? Math.Max(0, sum) : sum);
                    }
        return y;
    }

    static float[] Run((int H, int W, int Cin, int Cout, int K, int S, int P) c, int batch, float[] x, float[] weights, float[] bias,
        Activation activation, SimdLevel level, int threads, int scratchRows = 1000, float[]? initial = null)
    {
        var y = initial?.ToArray() ?? new float[OutputLength(c, batch)];
        var scratch = new float[scratchRows * c.K * c.K * c.Cin];
        // With an initial output, that output is the residual: y ← act(conv(x) + bias + y).
        Convolution.Forward(x, new ImageGeometry(batch, c.H, c.W, c.Cin), Filter(c, weights), y, scratch,
            new Epilogue(bias, activation, initial is null ? default : y), TestData.At(level, threads));
        return y;
    }

    static ConvolutionFilter Filter((int H, int W, int Cin, int Cout, int K, int S, int P) c, float[] weights) =>
        ConvolutionFilter.FromWeights(weights, c.Cout, c.Cin, new ConvolutionGeometry(c.K, c.S, c.P));

    static int OutputLength((int H, int W, int Cin, int Cout, int K, int S, int P) c, int batch) =>
        (int)new ConvolutionGeometry(c.K, c.S, c.P).Output(new ImageGeometry(batch, c.H, c.W, c.Cin), c.Cout).Length;

    internal static void Close(float[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(1e-6, expected.Max(v => Math.Abs((double)v)));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - (double)actual[i]) <= tolerance * scale, $"[{i}] expected {expected[i]}, got {actual[i]}");
    }

    [Theory, MemberData(nameof(Levels))]
    public void ConvolutionMatchesDirectDefinitionAtEveryLevel(SimdLevel level)
    {
        int seed = 1;
        foreach (var c in Shapes)
        {
            var (x, weights, bias) = Operands(c, 2, ref seed);
            foreach (var relu in new[] { false, true })
            {
                var expected = DirectConvolution(x, 2, c.H, c.W, c.Cin, weights, c.Cout, c.K, c.S, c.P, bias, relu);
                Close(expected, Run(c, 2, x, weights, bias, relu ? Activation.Relu : Activation.None, level, 1), 1e-5);
            }
        }
    }

    [Theory, MemberData(nameof(Levels))]
    public void ConvolutionAtEachLevelMatchesScalarTwin(SimdLevel level)
    {
        int seed = 100;
        foreach (var c in Shapes)
        {
            var (x, weights, bias) = Operands(c, 3, ref seed);
            Close(Run(c, 3, x, weights, bias, Activation.Relu, SimdLevel.Scalar, 1), Run(c, 3, x, weights, bias, Activation.Relu, level, 1), 1e-5);
        }
    }

    [Fact]
    public void ConvolutionAccumulatesIntoOutput()
    {
        var c = Shapes[2];
        var x = Random(c.H * c.W * c.Cin, 7);
        var weights = Random(c.Cout * c.Cin * 9, 8, 0.5f);
        var bias = Random(c.Cout, 9);
        var direct = DirectConvolution(x, 1, c.H, c.W, c.Cin, weights, c.Cout, c.K, c.S, c.P, bias, relu: false);
        var residual = Random(direct.Length, 10);
        var got = Run(c, 1, x, weights, bias, Activation.None, Simd.Best, 1, initial: residual);
        Close(direct.Select((v, i) => v + residual[i]).ToArray(), got, 1e-5);
    }

    [Fact]
    public void ThreadCountAndScratchSizeDoNotChangeResults()
    {
        foreach (var c in Shapes)
        {
            var x = Random(2 * c.H * c.W * c.Cin, c.H * 31 + c.Cin);
            var weights = Random(c.Cout * c.Cin * c.K * c.K, 3, 0.5f);
            var bias = Random(c.Cout, 4);
            var one = Run(c, 2, x, weights, bias, Activation.Relu, Simd.Best, threads: 1);
            Assert.Equal(one, Run(c, 2, x, weights, bias, Activation.Relu, Simd.Best, threads: 2));
            // Chunks of 1 and of 7 output rows (a chunk boundary inside an image row) give the same GEMM rows.
            Close(one, Run(c, 2, x, weights, bias, Activation.Relu, Simd.Best, threads: 2, scratchRows: 1), 1e-6);
            Close(one, Run(c, 2, x, weights, bias, Activation.Relu, Simd.Best, threads: 1, scratchRows: 7), 1e-6);
        }
    }

    /// <summary>
    /// Enough output rows of a wide enough k·k·Cin that the im2col rows come in several ~1 MiB chunks, which two threads then
    /// share (each its own chunks, im2col and GEMM on one thread): bit-identical to one thread, and right against the definition.
    /// </summary>
    [Fact]
    public void ChunksSharedByThreadsGiveIdenticalResults()
    {
        var c = (H: 12, W: 12, Cin: 112, Cout: 40, K: 3, S: 1, P: 1);   // 2·144 = 288 rows of K = 1008: chunks of at most 260 rows
        var x = Random(2 * c.H * c.W * c.Cin, 21);
        var weights = Random(c.Cout * c.Cin * 9, 22, 0.1f);
        var bias = Random(c.Cout, 23);
        var one = Run(c, 2, x, weights, bias, Activation.Relu, Simd.Best, threads: 1);
        Assert.Equal(one, Run(c, 2, x, weights, bias, Activation.Relu, Simd.Best, threads: 2));
        Close(DirectConvolution(x, 2, c.H, c.W, c.Cin, weights, c.Cout, c.K, c.S, c.P, bias, relu: true), one, 1e-5);
        var residual = Random(one.Length, 24);
        Assert.Equal(Run(c, 2, x, weights, bias, Activation.None, Simd.Best, threads: 1, initial: residual),
            Run(c, 2, x, weights, bias, Activation.None, Simd.Best, threads: 2, initial: residual));
    }

    [Theory, MemberData(nameof(Levels))]
    public void Im2ColIsBitIdenticalToScalarTwin(SimdLevel level)
    {
        foreach (var c in Shapes)
        {
            var x = Random(2 * c.H * c.W * c.Cin, c.W + 5);
            int rows = OutputLength(c, 2) / c.Cout, length = c.K * c.K * c.Cin;
            var scalar = Enumerable.Repeat(float.NaN, rows * length).ToArray();   // stale scratch must be overwritten, padding included
            var vector = Enumerable.Repeat(float.NaN, rows * length).ToArray();
            var shape = new ImageGeometry(2, c.H, c.W, c.Cin);
            Convolution.Im2Col(x, shape, new ConvolutionGeometry(c.K, c.S, c.P), 0, rows, scalar, TestData.At(SimdLevel.Scalar, 1));
            Convolution.Im2Col(x, shape, new ConvolutionGeometry(c.K, c.S, c.P), 0, rows, vector, TestData.At(level, 2));
            Assert.Equal(scalar, vector);
            Assert.DoesNotContain(scalar, float.IsNaN);
        }
    }

    [Fact]
    public void ScratchTooSmallForOneRowIsRejected()
    {
        var c = Shapes[0];
        var filter = ConvolutionFilter.FromWeights(new float[c.Cout * c.Cin * 9], c.Cout, c.Cin, new ConvolutionGeometry(3, 1, 1));
        var error = Assert.Throws<ArgumentException>(() => Convolution.Forward(new float[c.H * c.W * c.Cin], new ImageGeometry(1, c.H, c.W, c.Cin), filter,
            new float[c.H * c.W * c.Cout], new float[9 * c.Cin - 1]));
        Assert.Contains("scratch", error.Message);
    }

    // ---- direct convolution (k×k, Cout = 32 or 64) -----------------------------------------------------

    public static readonly (int H, int W, int Cin, int Cout, int K, int S, int P)[] DirectShapes =
    [
        (7, 9, 3, 32, 3, 2, 1),      // the stem's first convolution: 3 channels, stride 2, odd sizes
        (9, 13, 17, 64, 3, 1, 1),    // two column blocks at 512 bits; 11 interior pixels: one 6-pixel tile and 5 left over
        (11, 8, 5, 32, 3, 1, 0),     // no padding: every pixel interior
        (6, 15, 4, 32, 5, 2, 2),     // 5×5, stride 2
        (2, 2, 3, 32, 3, 1, 1),      // smaller than the kernel's reach: edge pixels only
        (16, 16, 32, 32, 3, 1, 1),   // the stem's second convolution, shrunk
        (13, 20, 1, 64, 3, 1, 1),    // one input channel
    ];

    static float[] RunDirect((int H, int W, int Cin, int Cout, int K, int S, int P) c, int batch, float[] x, float[] weights, float[] bias,
        Activation activation, SimdLevel level, int threads)
    {
        var y = Enumerable.Repeat(float.NaN, OutputLength(c, batch)).ToArray();
        Convolution.ForwardDirect(x, new ImageGeometry(batch, c.H, c.W, c.Cin), Filter(c, weights), y, Epilogue.Of(bias, activation), TestData.At(level, threads));
        return y;
    }

    [Theory, MemberData(nameof(Levels))]
    public void DirectConvolutionMatchesDefinitionAndScalarTwinAtEveryLevel(SimdLevel level)
    {
        int seed = 300;
        foreach (var c in DirectShapes)
        {
            var (x, weights, bias) = Operands(c, 2, ref seed);
            foreach (var activation in new[] { Activation.None, Activation.Relu })
            {
                var scalar = RunDirect(c, 2, x, weights, bias, activation, SimdLevel.Scalar, 1);
                Close(DirectConvolution(x, 2, c.H, c.W, c.Cin, weights, c.Cout, c.K, c.S, c.P, bias, activation == Activation.Relu), scalar, 1e-5);
                // Same taps in the same order with fused multiply-adds at every width and tile position: bit-identical.
                Assert.Equal(scalar, RunDirect(c, 2, x, weights, bias, activation, level, 1));
                Assert.Equal(scalar, RunDirect(c, 2, x, weights, bias, activation, level, 2));
            }
            Close(DirectConvolution(x, 2, c.H, c.W, c.Cin, weights, c.Cout, c.K, c.S, c.P, null, relu: false),
                RunDirect(c, 2, x, weights, [], Activation.None, level, 1), 1e-5);
        }
    }

    /// <summary>
    /// Forward takes the direct path for these shapes; forcing im2col + GEMM instead (adding a residual of zeros, which only the
    /// GEMM path does) gives the same numbers: both sum k·k·Cin products in (ky, kx, ci) order from zero, then add the bias.
    /// </summary>
    [Fact]
    public void ForwardUsesDirectPathAndAgreesWithIm2ColGemm()
    {
        int seed = 400;
        foreach (var c in DirectShapes)
        {
            Assert.True(Convolution.UsesDirect(Filter(c, new float[c.Cout * c.Cin * c.K * c.K]), Epilogue.Of([], Activation.Relu)));
            var (x, weights, bias) = Operands(c, 2, ref seed);
            int outputs = OutputLength(c, 2);
            var direct = Run(c, 2, x, weights, bias, Activation.None, Simd.Best, 1);
            Close(direct, Run(c, 2, x, weights, bias, Activation.None, Simd.Best, 1, initial: new float[outputs]), 1e-6);
            Assert.Equal(direct, RunDirect(c, 2, x, weights, bias, Activation.None, Simd.Best, 1));
        }
        static ConvolutionFilter Of(int cout, int k) => ConvolutionFilter.FromWeights(new float[cout * 4 * k * k], cout, 4, new ConvolutionGeometry(k, 1, k / 2));
        var relu = Epilogue.Of([], Activation.Relu);
        Assert.False(Convolution.UsesDirect(Of(40, 3), relu));     // not a multiple of two Vector512
        Assert.False(Convolution.UsesDirect(Of(128, 3), relu));    // more than one panel: the GEMM
        Assert.False(Convolution.UsesDirect(Of(32, 1), relu));     // 1×1 is a plain GEMM already
        Assert.False(Convolution.UsesDirect(Of(32, 3), new Epilogue([], Activation.Relu, new float[1])));   // a residual: the GEMM's epilogue
        Assert.False(Convolution.UsesDirect(Of(32, 3), Epilogue.Of([], Activation.QuickGelu)));
    }

    [Fact]
    public void DirectConvolutionRejectsWhatItCannotDo()
    {
        var c = DirectShapes[0];
        var x = new float[c.H * c.W * c.Cin];
        var y = new float[c.H * c.W * 40];
        var shape = new ImageGeometry(1, c.H, c.W, c.Cin);
        var window = new ConvolutionGeometry(3, 2, 1);
        // 40 channels are not a multiple of two vectors at 256 or 512 bits (16, 32 lanes).
        foreach (var level in Simd.Supported.Where(l => l >= SimdLevel.Vector256))
        {
            var error40 = Assert.Throws<ArgumentException>(() => Convolution.ForwardDirect(x, shape,
                ConvolutionFilter.FromWeights(new float[40 * c.Cin * 9], 40, c.Cin, window), y, default, TestData.At(level)));
            Assert.Contains("40 output channels", error40.Message);
        }
        var error = Assert.Throws<ArgumentException>(() => Convolution.ForwardDirect(x, shape,
            ConvolutionFilter.FromWeights(new float[72 * c.Cin * 9], 72, c.Cin, window), y));
        Assert.Contains("at most 64", error.Message);
        error = Assert.Throws<ArgumentException>(() => Convolution.ForwardDirect(x, shape,
            ConvolutionFilter.FromWeights(new float[32 * c.Cin * 9], 32, c.Cin, window), y, Epilogue.Of([], Activation.QuickGelu)));
        Assert.Contains("QuickGelu", error.Message);
    }

    // ---- average pooling -------------------------------------------------------------------------------

    public static readonly (int H, int W, int C, int K)[] PoolShapes =
    [
        (7, 7, 3, 2),    // odd: floor drops the last row and column
        (5, 9, 17, 2),
        (8, 8, 64, 2),
        (9, 9, 37, 3),
        (6, 10, 1, 2),
        (4, 4, 33, 4),   // global mean (the attention pool's mean token)
    ];

    static float[] DirectAveragePool(float[] x, int batch, int h, int w, int c, int k)
    {
        int ho = h / k, wo = w / k;
        var y = new float[batch * ho * wo * c];
        for (int b = 0; b < batch; b++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        double sum = 0;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) sum += x[((b * h + oy * k + ky) * w + ox * k + kx) * c + ch];
                        y[((b * ho + oy) * wo + ox) * c + ch] = (float)(sum / (k * k));
                    }
        return y;
    }

    static float[] Pool((int H, int W, int C, int K) s, int batch, float[] x, SimdLevel level, int threads)
    {
        var y = new float[batch * (s.H / s.K) * (s.W / s.K) * s.C];
        Pooling.AveragePool(x, new ImageGeometry(batch, s.H, s.W, s.C), s.K, y, TestData.At(level, threads));
        return y;
    }

    [Theory, MemberData(nameof(Levels))]
    public void AveragePoolMatchesDefinitionAndScalarTwin(SimdLevel level)
    {
        foreach (var s in PoolShapes)
        {
            var x = Random(2 * s.H * s.W * s.C, s.H * 7 + s.C);
            var scalar = Pool(s, 2, x, SimdLevel.Scalar, 1);
            Close(DirectAveragePool(x, 2, s.H, s.W, s.C, s.K), scalar, 1e-6);
            Assert.Equal(scalar, Pool(s, 2, x, level, 1));
            Assert.Equal(scalar, Pool(s, 2, x, level, 2));
        }
    }

    [Fact]
    public void AveragePoolOnLargeInputIsThreadIndependent()
    {
        var s = (H: 56, W: 56, C: 256, K: 2);
        var x = Random(s.H * s.W * s.C, 5);
        Assert.Equal(Pool(s, 1, x, Simd.Best, 1), Pool(s, 1, x, Simd.Best, 2));
    }

    [Fact]
    public void ToChannelsLastTransposes()
    {
        var x = Enumerable.Range(0, 2 * 3 * 2 * 5).Select(i => (float)i).ToArray();    // [2, 3, 2, 5]
        var y = new float[x.Length];
        Convolution.ToChannelsLast(x, new ImageGeometry(2, 2, 5, 3), y);
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 10; i++)
                    Assert.Equal(x[(b * 3 + c) * 10 + i], y[(b * 10 + i) * 3 + c]);
    }
}
