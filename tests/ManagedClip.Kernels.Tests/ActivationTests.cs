namespace ManagedClip.Kernels.Tests;

public class ActivationTests
{
    public static TheoryData<SimdLevel, Activation> LevelsAndActivations()
    {
        var d = new TheoryData<SimdLevel, Activation>();
        foreach (var l in TestData.VectorLevels)
            foreach (var a in new[] { Activation.QuickGelu, Activation.Gelu, Activation.Relu })
                d.Add(l, a);
        return d;
    }

    [Theory]
    [MemberData(nameof(LevelsAndActivations))]
    public void Vector_paths_match_scalar_twin_including_tails(SimdLevel level, Activation activation)
    {
        // Lengths straddle every vector width (1..33) plus a long row; values span both tails of the activations.
        foreach (int n in new[] { 1, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 1000 })
        {
            var input = TestData.Random(n, n, scale: 12f);
            var expected = (float[])input.Clone();
            var actual = (float[])input.Clone();
            Activations.Apply(expected, activation, TestData.At(SimdLevel.Scalar));
            Activations.Apply(actual, activation, TestData.At(level));
            // Both sides evaluate the same formula; they differ only in exp (MathF vs vector, each ≈1 ulp) and FMA
            // contraction in the polynomials. Each is within RelativeTolerance of the truth, so they are within twice it.
            TestData.Close(expected, actual, i => 2 * RelativeTolerance(input[i], activation) * Math.Abs(expected[i]) + 1e-37, $"{activation} at {level}, n={n}");
        }
    }

    /// <summary>
    /// Relative error budget of the float formulas: a few ulps, plus the exponent argument's own rounding, which
    /// e^t amplifies to |t|·u relative (t = −1.702x for QuickGELU, t ≈ −x²/2 in GELU's erfc). It only matters in
    /// the negative tails where the outputs are already tiny (GELU(−4) ≈ −1.3e-4, error there ≈ 1e-10 absolute).
    /// </summary>
    static double RelativeTolerance(double x, Activation a) => a switch
    {
        Activation.QuickGelu => (8 + 2 * Math.Abs(1.702 * x)) * TestData.U,
        Activation.Gelu => (16 + 2 * x * x) * TestData.U,
        _ => 0,
    };

    [Theory]
    [InlineData(Activation.QuickGelu)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.Relu)]
    public void Scalar_twin_matches_double_precision(Activation activation)
    {
        for (int i = -4000; i <= 4000; i++)
        {
            float x = i / 400f; // [−10, 10]
            float[] v = [x];
            Activations.Apply(v, activation, TestData.At(SimdLevel.Scalar));
            double expected = TestData.Activate(x, activation);
            double tol = RelativeTolerance(x, activation) * Math.Abs(expected);
            Assert.True(Math.Abs(v[0] - expected) <= tol + 1e-37, $"{activation}({x}) = {v[0]:R}, expected {expected:R}");
        }
    }

    [Fact]
    public void Erf_is_accurate_to_float_rounding()
    {
        double worst = 0;
        for (int i = -6000; i <= 6000; i++)
        {
            float x = i / 1000f;
            double e = TestData.Erf(x);
            if (e == 0) continue;
            worst = Math.Max(worst, Math.Abs(Activations.Erf(x) - e) / Math.Abs(e));
        }
        // ≤ 3 ulps relative anywhere in [−6, 6] (Taylor series near 0, Chebyshev erfc fit with error < 1.2e-7 beyond ½).
        Assert.True(worst <= 3 * TestData.U * 2, $"worst relative error {worst:E3}");
    }

    [Fact]
    public void None_leaves_values_alone_and_unknown_activation_throws()
    {
        float[] v = [1, -2, 3];
        Activations.Apply(v, Activation.None);
        Assert.Equal([1f, -2f, 3f], v);
        Assert.Throws<ArgumentOutOfRangeException>(() => Activations.Apply(v, (Activation)42));
    }

    [Fact]
    public void Large_magnitudes_give_the_limits_not_nan()
    {
        foreach (var level in Simd.Supported)
        {
            float[] v = [-1e30f, -100f, 100f, 1e30f];
            float[] g = (float[])v.Clone();
            Activations.Apply(v, Activation.QuickGelu, TestData.At(level));
            Activations.Apply(g, Activation.Gelu, TestData.At(level));
            Assert.Equal([0f, 0f, 100f, 1e30f], v.Select(x => x == 0 ? 0f : x)); // −0 counts as 0
            Assert.Equal([0f, 0f, 100f, 1e30f], g.Select(x => x == 0 ? 0f : x));
        }
    }
}
