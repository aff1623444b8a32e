namespace ManagedClip.Kernels.Tests;

public class GemmTests
{
    static ReadOnlyMatrixView X(ReadOnlySpan<float> data, int rows, int columns, int stride = -1) => new(data, rows, columns, stride);
    static MatrixView Y(Span<float> data, int rows, int columns) => new(data, rows, columns);

    // Shapes: every m in {1,2,7,50,77} (micro-tile tails of 6), k in {1,3,17,64,768} (k-block tails of 128),
    // n in {1,5,33,64,513} (panel tails of 64, strip tails of 8/16), plus shapes that cross the 144-row task
    // block (equal row blocks, rounded up to whole micro-tiles) and several k-blocks at once.
    public static TheoryData<int, int, int> Shapes()
    {
        var d = new TheoryData<int, int, int>();
        foreach (int m in new[] { 1, 7, 77 })
            foreach (int k in new[] { 1, 17, 768 })
                foreach (int n in new[] { 1, 5, 33, 64, 513 })
                    d.Add(m, k, n);
        d.Add(2, 3, 64);
        d.Add(50, 64, 33);
        d.Add(2, 768, 5);
        d.Add(50, 3, 513);
        d.Add(130, 300, 200); // one row block of 130, three k-blocks (128 + 128 + 44), four panels (last 8 wide)
        d.Add(97, 129, 65);   // one k past a block, one column past a panel
        d.Add(145, 129, 65);  // one row past the 144-row block: two row blocks of 78 + 67
        d.Add(301, 40, 300);  // three row blocks (102 + 102 + 97), panel groups with a 44-wide last panel
        return d;
    }

    /// <summary>
    /// |SIMD − scalar| bound. Both sides sum K products in float in different orders (blocked, FMA vs separate
    /// multiply-add); each is within γ_K·Σ|x||b| of the exact value (Higham, γ_K ≈ K·u), so they are within
    /// 2K·u·Σ|x||b| of each other. Bias, activation (slope ≤ 1.13) and residual add a few ulps of
    /// |bias| + |y0| + |result|; 16u covers those.
    /// </summary>
    static Func<int, double> Tolerance(float[] x, Func<int, int, float> b, int m, int k, int n, float[] bias, float[]? y0, float[] expected)
    {
        var scale = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = bias.Length > 0 ? Math.Abs(bias[j]) : 0;
                for (int p = 0; p < k; p++) s += Math.Abs(x[i * k + p] * b(p, j));
                if (y0 != null) s += Math.Abs(y0[i * n + j]);
                scale[i * n + j] = s;
            }
        return idx => (2.0 * k + 16) * TestData.U * (scale[idx] + Math.Abs(expected[idx])) + 1e-30;
    }

    /// <summary>
    /// A plain product over whole panels (no bias, activation, residual or accumulation; N a multiple of 64) sums in y itself
    /// instead of the stack tile: every element written (y starts as NaN), the same bits as the tile path (forced here by a zero
    /// bias), at every thread count, and within the scalar twin's bound.
    /// </summary>
    [Theory]
    [InlineData(7, 64, 64)]
    [InlineData(145, 300, 192)]   // two row blocks, three k-blocks (sums reloaded from y), three panels
    [InlineData(50, 129, 128)]
    public void Plain_product_sums_in_output_with_the_same_bits(int m, int k, int n)
    {
        var x = TestData.Random(m * k, 11 + m);
        var w = TestData.Random(k * n, 12 + k);
        var packed = PackedMatrix.FromRowMajor(w, k, n);
        var expected = new float[m * n];
        Gemm.Multiply(X(x, m, k), packed, Y(expected, m, n), default, TestData.At(SimdLevel.Scalar));
        var tol = Tolerance(x, (p, j) => w[p * n + j], m, k, n, [], null, expected);
        foreach (var level in Simd.Supported.Where(l => l != SimdLevel.Scalar))
        {
            var throughTile = new float[m * n];
            Gemm.Multiply(X(x, m, k), packed, Y(throughTile, m, n), Epilogue.Of(new float[n]), TestData.At(level, 1));
            foreach (int threads in new[] { 1, 2 })
            {
                var plain = Enumerable.Repeat(float.NaN, m * n).ToArray();
                Gemm.Multiply(X(x, m, k), packed, Y(plain, m, n), default, TestData.At(level, threads));
                Assert.Equal(throughTile, plain);
                for (int i = 0; i < plain.Length; i++) Assert.True(Math.Abs(plain[i] - expected[i]) <= tol(i), $"[{i}] {plain[i]} vs {expected[i]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Packed_and_unpacked_match_scalar_twin_at_every_level(int m, int k, int n)
    {
        var x = TestData.Random(m * k, 1 + m + 7 * k + 31 * n);
        var w = TestData.Random(k * n, 2 + m + 7 * k + 31 * n);   // row-major [k, n]
        var bias = TestData.Random(n, 3 + n);
        var packed = PackedMatrix.FromRowMajor(w, k, n);

        var expected = new float[m * n];
        Gemm.Multiply(X(x, m, k), packed, Y(expected, m, n), Epilogue.Of(bias), TestData.At(SimdLevel.Scalar));
        var expectedUnpacked = new float[m * n];
        Gemm.Multiply(X(x, m, k), X(w, k, n), Y(expectedUnpacked, m, n), Epilogue.Of(bias), TestData.At(SimdLevel.Scalar));
        Assert.Equal(expected, expectedUnpacked); // same sums, same order: the packed layout reads back exactly
        var tol = Tolerance(x, (p, j) => w[p * n + j], m, k, n, bias, null, expected);

        foreach (var level in TestData.VectorLevels)
        {
            var y = new float[m * n];
            Gemm.Multiply(X(x, m, k), packed, Y(y, m, n), Epilogue.Of(bias), TestData.At(level));
            TestData.Close(expected, y, tol, $"packed {level} [{m},{k},{n}]");
            var yu = new float[m * n];
            Gemm.Multiply(X(x, m, k), X(w, k, n), Y(yu, m, n), Epilogue.Of(bias), TestData.At(level));
            Assert.Equal(y, yu); // the unpacked path packs each block on the fly and runs the same kernel
        }
    }

    /// <summary>Every activation, without and with the output itself as the residual (y ← act(x·B + bias + y)).</summary>
    public static TheoryData<Activation, bool> Epilogues()
    {
        var d = new TheoryData<Activation, bool>();
        foreach (var a in new[] { Activation.None, Activation.QuickGelu, Activation.Gelu, Activation.Relu })
        {
            d.Add(a, false);
            d.Add(a, true);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(Epilogues))]
    public void Fused_epilogue_activation_and_residual_match_scalar_twin(Activation activation, bool addToOutput)
    {
        foreach (var (m, k, n, withBias) in new[] { (7, 300, 70, true), (1, 17, 5, false), (50, 64, 129, true) })
        {
            var x = TestData.Random(m * k, 11 + k);
            var w = TestData.Random(n * k, 12 + n);                    // Linear weight [out = n, in = k]
            var bias = withBias ? TestData.Random(n, 13) : [];
            var y0 = TestData.Random(m * n, 14, scale: 3f);              // residual stream
            var packed = PackedMatrix.FromLinearWeight(w, n, k);

            var expected = (float[])y0.Clone();
            Gemm.Multiply(X(x, m, k), packed, Y(expected, m, n), new Epilogue(bias, activation, addToOutput ? expected : default), TestData.At(SimdLevel.Scalar));
            var tol = Tolerance(x, (p, j) => w[j * k + p], m, k, n, bias, addToOutput ? y0 : null, expected);
            foreach (var level in TestData.VectorLevels)
            {
                var y = (float[])y0.Clone();
                Gemm.Multiply(X(x, m, k), packed, Y(y, m, n), new Epilogue(bias, activation, addToOutput ? y : default), TestData.At(level));
                TestData.Close(expected, y, tol, $"{activation} residual=y:{addToOutput} {level} [{m},{k},{n}]");
            }
        }
    }

    /// <summary>y = act(x·B + bias + residual): the residual added before the activation, from a separate buffer or from y itself.</summary>
    [Theory]
    [InlineData(Activation.Relu, false)]
    [InlineData(Activation.Relu, true)]
    [InlineData(Activation.None, false)]
    [InlineData(Activation.QuickGelu, true)]
    public void Residual_before_activation_matches_scalar_twin_and_double_precision(Activation activation, bool inPlace)
    {
        foreach (var (m, k, n) in new[] { (7, 300, 70), (1, 17, 5), (130, 64, 256) })
        {
            var x = TestData.Random(m * k, 31 + k);
            var w = TestData.Random(n * k, 32 + n);
            var bias = TestData.Random(n, 33);
            var r = TestData.Random(m * n, 34, scale: 3f);
            var packed = PackedMatrix.FromLinearWeight(w, n, k);
            float[] Run(SimdLevel level)
            {
                var y = inPlace ? (float[])r.Clone() : TestData.Random(m * n, 35);
                Gemm.Multiply(X(x, m, k), packed, Y(y, m, n), new Epilogue(bias, activation, inPlace ? y : r), TestData.At(level));
                return y;
            }
            var expected = Run(SimdLevel.Scalar);
            var exact = new float[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = bias[j] + r[i * n + j];
                    for (int p = 0; p < k; p++) s += (double)x[i * k + p] * w[j * k + p];
                    exact[i * n + j] = (float)TestData.Activate(s, activation);
                }
            var tol = Tolerance(x, (p, j) => w[j * k + p], m, k, n, bias, r, expected);
            TestData.Close(exact, expected, tol, $"scalar residual {activation} [{m},{k},{n}]");
            foreach (var level in TestData.VectorLevels)
                TestData.Close(expected, Run(level), tol, $"residual {activation} in place={inPlace} {level} [{m},{k},{n}]");
        }
        var b = PackedMatrix.FromLinearWeight(TestData.Random(4 * 3, 1), 4, 3);
        var yy = new float[2 * 4];
        Assert.ThrowsAny<ArgumentException>(() => Gemm.Multiply(X(new float[6], 2, 3), b, Y(yy, 2, 4), new Epilogue([], residual: new float[7])));    // too short
        var big = new float[16];
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(X(new float[6], 2, 3), b, Y(big.AsSpan(0, 8), 2, 4), new Epilogue([], residual: big.AsSpan(4, 8)))); // partial overlap
    }

    [Theory]
    [MemberData(nameof(Epilogues))]
    public void Scalar_twin_matches_double_precision(Activation activation, bool addToOutput)
    {
        int m = 5, k = 37, n = 70;
        var x = TestData.Random(m * k, 21);
        var w = TestData.Random(n * k, 22);   // Linear weight [n, k]: B[p, j] = w[j, p]
        var bias = TestData.Random(n, 23);
        var y0 = TestData.Random(m * n, 24);
        var y = (float[])y0.Clone();
        Gemm.Multiply(X(x, m, k), PackedMatrix.FromLinearWeight(w, n, k), Y(y, m, n), new Epilogue(bias, activation, addToOutput ? y : default), TestData.At(SimdLevel.Scalar));

        var exact = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = bias[j] + (addToOutput ? y0[i * n + j] : 0);
                for (int p = 0; p < k; p++) s += (double)x[i * k + p] * w[j * k + p];
                exact[i * n + j] = (float)TestData.Activate(s, activation);
            }
        // One float sum of K products against the exact value: γ_K·Σ|x||b| (half the two-sided bound).
        var tol = Tolerance(x, (p, j) => w[j * k + p], m, k, n, bias, addToOutput ? y0 : null, exact);
        TestData.Close(exact, y, i => tol(i) / 2, $"scalar {activation} residual=y:{addToOutput}");
    }

    [Fact]
    public void Linear_weight_is_transposed_into_B()
    {
        // W [out = 2, in = 3]; y = x·Wᵀ + b.
        float[] w = [1, 2, 3, 4, 5, 6];
        float[] x = [1, 0, -1];
        float[] b = [10, 20];
        foreach (var level in Simd.Supported)
        {
            var y = new float[2];
            Gemm.Multiply(X(x, 1, 3), PackedMatrix.FromLinearWeight(w, 2, 3), Y(y, 1, 2), Epilogue.Of(b), TestData.At(level));
            Assert.Equal([10f + 1 - 3, 20f + 4 - 6], y);
        }
        var p = PackedMatrix.FromLinearWeight(w, 2, 3);
        Assert.Equal(3, p.K);
        Assert.Equal(2, p.N);
    }

    [Fact]
    public void One_and_two_threads_give_identical_results()
    {
        int m = 200, k = 300, n = 300;
        var x = TestData.Random(m * k, 31);
        var w = TestData.Random(k * n, 32);
        var bias = TestData.Random(n, 33);
        var packed = PackedMatrix.FromRowMajor(w, k, n);
        foreach (var level in TestData.VectorLevels)
        {
            var y1 = new float[m * n];
            var y2 = new float[m * n];
            var u2 = new float[m * n];
            Gemm.Multiply(X(x, m, k), packed, Y(y1, m, n), Epilogue.Of(bias, Activation.QuickGelu), TestData.At(level, 1));
            Gemm.Multiply(X(x, m, k), packed, Y(y2, m, n), Epilogue.Of(bias, Activation.QuickGelu), TestData.At(level, 2));
            Gemm.Multiply(X(x, m, k), X(w, k, n), Y(u2, m, n), Epilogue.Of(bias, Activation.QuickGelu), TestData.At(level, 2));
            Assert.Equal(y1, y2);
            Assert.Equal(y1, u2);
        }
    }

    [Fact]
    public void Oversized_buffers_are_allowed_and_untouched_past_the_shape()
    {
        int m = 3, k = 5, n = 7;
        var x = TestData.Random(m * k + 4, 41);
        var w = TestData.Random(k * n, 42);
        foreach (var level in Simd.Supported)
        {
            var y = Enumerable.Repeat(123f, m * n + 9).ToArray();
            Gemm.Multiply(X(x, m, k), PackedMatrix.FromRowMajor(w, k, n), Y(y, m, n), default, TestData.At(level));
            Assert.All(y[(m * n)..], v => Assert.Equal(123f, v));
        }
    }

    [Fact]
    public void Zero_rows_is_a_no_op()
    {
        var packed = PackedMatrix.FromRowMajor(new float[6], 2, 3);
        Gemm.Multiply(X([], 0, 2), packed, Y(Span<float>.Empty, 0, 3));
    }

    [Fact]
    public void Invalid_arguments_throw()
    {
        var packed = PackedMatrix.FromRowMajor(new float[12], 3, 4); // K = 3, N = 4
        var x = new float[2 * 3];
        var y = new float[2 * 4];
        Assert.Throws<ArgumentException>(() => X(new float[5], 2, 3));                                                     // x too short
        Assert.Throws<ArgumentException>(() => Y(new float[7], 2, 4));                                                     // y too short
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(X(x, 2, 2), packed, Y(y, 2, 4)));                             // x's columns ≠ K
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(X(x, 2, 3), packed, Y(y, 1, 4)));                             // y's rows ≠ x's
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(X(x, 2, 3), packed, Y(y, 2, 4), Epilogue.Of(new float[3])));  // bias ≠ N
        Assert.Throws<ArgumentOutOfRangeException>(() => X(x, -1, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => X(x, 2, 3, stride: 2));                                          // stride < columns
        Assert.Throws<ArgumentOutOfRangeException>(() => TestData.At(SimdLevel.Scalar, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Epilogue.Of([], (Activation)9));
        Assert.Throws<ArgumentNullException>(() => Gemm.Multiply(X(x, 2, 3), (PackedMatrix)null!, Y(y, 2, 4)));
        var shared = new float[20];
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(X(shared.AsSpan(0, 6), 2, 3), packed, Y(shared.AsSpan(4, 8), 2, 4))); // y overlaps x
        Assert.Throws<ArgumentException>(() => X(new float[11], 3, 4));                                                    // B too short
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Multiply(X(x, 2, 0), X(new float[12], 0, 4), Y(y, 2, 4)));
        Assert.Throws<ArgumentException>(() => PackedMatrix.FromLinearWeight(new float[11], 4, 3));
        Assert.Throws<ArgumentException>(() => PackedMatrix.FromRowMajor(new float[13], 3, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => PackedMatrix.FromRowMajor([], 0, 4));
    }
}
