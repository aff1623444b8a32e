namespace ManagedClip.Kernels.Tests;

public class SoftmaxTests
{
    static readonly int[] Lengths = [1, 3, 4, 5, 8, 15, 16, 17, 33, 50, 77, 1000];

    /// <summary>
    /// Per-entry budget: exp's argument x − max is rounded (|x − max|·u, which e^t turns into relative error), exp
    /// itself ≈ 1 ulp, and the n-term float sum ≤ n·u relative. Everything is relative to the probability itself.
    /// </summary>
    static double Tolerance(float x, float max, int n, double p) => (8 + Math.Abs(x - max) + n) * TestData.U * p + 1e-38;

    [Fact]
    public void Scalar_twin_matches_double_precision()
    {
        foreach (int n in Lengths)
        {
            var x = TestData.Random(n, n, scale: 10f);
            var y = (float[])x.Clone();
            Softmax.InPlace(y, TestData.At(SimdLevel.Scalar));
            double max = x.Max(), sum = x.Sum(v => Math.Exp(v - max));
            var exact = x.Select(v => (float)(Math.Exp(v - max) / sum)).ToArray();
            TestData.Close(exact, y, i => Tolerance(x[i], (float)max, n, exact[i]), $"scalar n={n}");
        }
    }

    [Fact]
    public void Vector_paths_match_scalar_twin()
    {
        foreach (var level in TestData.VectorLevels)
            foreach (int n in Lengths)
            {
                var x = TestData.Random(n, 100 + n, scale: 10f);
                var expected = (float[])x.Clone();
                var actual = (float[])x.Clone();
                Softmax.InPlace(expected, TestData.At(SimdLevel.Scalar));
                Softmax.InPlace(actual, TestData.At(level));
                TestData.Close(expected, actual, i => 2 * Tolerance(x[i], x.Max(), n, expected[i]), $"{level} n={n}");
            }
    }

    [Fact]
    public void Negative_infinity_entries_get_exactly_zero()
    {
        foreach (var level in Simd.Supported)
        {
            var row = TestData.Random(37, 5);
            for (int i = 0; i < row.Length; i += 3) row[i] = float.NegativeInfinity;
            Softmax.InPlace(row, TestData.At(level));
            for (int i = 0; i < row.Length; i++)
                if (i % 3 == 0) Assert.Equal(0f, row[i]);
                else Assert.True(row[i] > 0f);
            Assert.Equal(1.0, row.Sum(v => (double)v), 5);
        }
    }

    [Fact]
    public void Row_of_all_negative_infinity_becomes_zeros_not_nan()
    {
        foreach (var level in Simd.Supported)
            foreach (int n in new[] { 1, 7, 16, 33 })
            {
                var row = Enumerable.Repeat(float.NegativeInfinity, n).ToArray();
                Softmax.InPlace(row, TestData.At(level));
                Assert.All(row, v => Assert.Equal(0f, v));
            }
    }

    [Fact]
    public void Large_logits_do_not_overflow_and_empty_row_is_fine()
    {
        foreach (var level in Simd.Supported)
        {
            float[] row = [1000f, 1000f, -1000f, 999f];
            Softmax.InPlace(row, TestData.At(level));
            Assert.All(row, v => Assert.False(float.IsNaN(v)));
            Assert.Equal(row[0], row[1]);
            Softmax.InPlace(Span<float>.Empty, TestData.At(level));
        }
    }
}

public class LayerNormTests
{
    static readonly (int Rows, int Width)[] Shapes = [(1, 1), (3, 5), (2, 16), (7, 33), (4, 77), (5, 768), (2, 1000)];

    /// <summary>
    /// Error budget per element: the row mean and variance are float sums of `width` terms (≤ width·u relative to
    /// Σ|x|), which move y by about width·u·|γ|·(max|x| + |mean|)/σ; the final affine step adds a few ulps of |y| + |β|.
    /// </summary>
    static Func<int, double> Tolerance(float[] x, int rows, int width, float[] gamma, float[] beta, float[] expected)
    {
        var tol = new double[rows * width];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * width, width).ToArray();
            double mean = row.Average(v => (double)v);
            double sigma = Math.Sqrt(row.Average(v => (v - mean) * (v - mean)) + 1e-5);
            double maxAbs = row.Max(v => Math.Abs((double)v));
            for (int i = 0; i < width; i++)
                tol[r * width + i] = (width + 16) * TestData.U * (Math.Abs(gamma[i]) * (maxAbs + Math.Abs(mean)) / sigma + Math.Abs(beta[i]) + Math.Abs(expected[r * width + i]));
        }
        return i => tol[i];
    }

    [Fact]
    public void Scalar_twin_matches_double_precision()
    {
        foreach (var (rows, width) in Shapes)
        {
            var x = TestData.Random(rows * width, width, scale: 2f, offset: 0.5f);
            var gamma = TestData.Random(width, width + 1, offset: 1f);
            var beta = TestData.Random(width, width + 2);
            var y = new float[rows * width];
            LayerNorm.Forward(new ReadOnlyMatrixView(x, rows, width), new MatrixView(y, rows, width), gamma, beta, context: TestData.At(SimdLevel.Scalar));
            var exact = new float[rows * width];
            for (int r = 0; r < rows; r++)
            {
                double mean = 0, var = 0;
                for (int i = 0; i < width; i++) mean += x[r * width + i];
                mean /= width;
                for (int i = 0; i < width; i++) var += (x[r * width + i] - mean) * (x[r * width + i] - mean);
                var /= width;
                for (int i = 0; i < width; i++)
                    exact[r * width + i] = (float)((x[r * width + i] - mean) / Math.Sqrt(var + 1e-5) * gamma[i] + beta[i]);
            }
            TestData.Close(exact, y, Tolerance(x, rows, width, gamma, beta, exact), $"scalar [{rows},{width}]");
        }
    }

    [Fact]
    public void Vector_paths_match_scalar_twin_out_of_place_and_in_place()
    {
        foreach (var level in TestData.VectorLevels)
            foreach (var (rows, width) in Shapes)
            {
                // Offset 100: a large mean relative to the spread exercises the two-pass variance.
                var x = TestData.Random(rows * width, 7 * width, scale: 3f, offset: 100f);
                var gamma = TestData.Random(width, width + 1, offset: 1f);
                var beta = TestData.Random(width, width + 2);
                var expected = new float[rows * width];
                LayerNorm.Forward(new ReadOnlyMatrixView(x, rows, width), new MatrixView(expected, rows, width), gamma, beta, context: TestData.At(SimdLevel.Scalar));
                var tol = Tolerance(x, rows, width, gamma, beta, expected);

                var y = new float[rows * width];
                LayerNorm.Forward(new ReadOnlyMatrixView(x, rows, width), new MatrixView(y, rows, width), gamma, beta, context: TestData.At(level));
                TestData.Close(expected, y, tol, $"{level} [{rows},{width}]");

                var inPlace = (float[])x.Clone();
                LayerNorm.Forward(new ReadOnlyMatrixView(inPlace, rows, width), new MatrixView(inPlace, rows, width), gamma, beta, context: TestData.At(level));
                Assert.Equal(y, inPlace);
            }
    }

    [Fact]
    public void Constant_row_normalizes_to_beta()
    {
        foreach (var level in Simd.Supported)
        {
            var x = Enumerable.Repeat(3.5f, 40).ToArray();
            var gamma = TestData.Random(40, 1);
            var beta = TestData.Random(40, 2);
            LayerNorm.Forward(new ReadOnlyMatrixView(x, 1, 40), new MatrixView(x, 1, 40), gamma, beta, context: TestData.At(level));
            Assert.Equal(beta, x);
        }
    }

    [Fact]
    public void Invalid_arguments_throw()
    {
        var x = new float[12];
        var g = new float[4];
        Assert.Throws<ArgumentException>(() => new MatrixView(new float[11], 3, 4));                                              // too short
        Assert.Throws<ArgumentException>(() => LayerNorm.Forward(new ReadOnlyMatrixView(x, 3, 4), new MatrixView(x, 2, 4), g, g)); // y's shape ≠ x's
        Assert.Throws<ArgumentException>(() => LayerNorm.Forward(new ReadOnlyMatrixView(x, 3, 4), new MatrixView(x, 3, 4), new float[3], g));
        Assert.Throws<ArgumentException>(() => LayerNorm.Forward(new ReadOnlyMatrixView(x, 3, 4), new MatrixView(x, 3, 4), g, new float[5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MatrixView(x, -1, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerNorm.Forward(new ReadOnlyMatrixView(x, 3, 0), new MatrixView(x, 3, 0), [], []));
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerNorm.Forward(new ReadOnlyMatrixView(x, 3, 4), new MatrixView(x, 3, 4), g, g, float.NaN));
    }
}
