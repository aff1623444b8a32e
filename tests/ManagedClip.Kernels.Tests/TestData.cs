namespace ManagedClip.Kernels.Tests;

/// <summary>Seeded random inputs and the comparison helpers every kernel test shares.</summary>
internal static class TestData
{
    /// <summary>Unit roundoff of float32 (2⁻²⁴): tolerances below are written as multiples of it.</summary>
    public const double U = 1.0 / (1 << 24);

    public static float[] Random(int count, int seed, float scale = 1f, float offset = 0f)
    {
        var rng = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = offset + scale * (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    /// <summary>A kernel context at <paramref name="level"/> on <paramref name="threads"/> threads (0: every core).</summary>
    public static KernelContext At(SimdLevel level, int threads = 0) => KernelContext.Create(threads, level);

    /// <summary>Every SIMD level this machine runs, excluding scalar (the oracle itself).</summary>
    public static IEnumerable<SimdLevel> VectorLevels => Simd.Supported.Where(l => l != SimdLevel.Scalar);

    /// <summary>Asserts |actual − expected| ≤ tolerance[i] element-wise, reporting the worst offender.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, Func<int, double> tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i], tol = tolerance(i);
            if (double.IsNaN(e) || double.IsNaN(a) || Math.Abs(e - a) > tol)
                Assert.Fail($"{what}: element {i}: expected {e:R}, got {a:R}, |diff| {Math.Abs(e - a):E3} > tolerance {tol:E3}");
        }
    }

    /// <summary>erf in double: (2/√π)·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!! — all terms positive, so no cancellation; exact to ~1e-15 for |x| ≤ 6.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax > 6) return Math.Sign(x);
        double term = ax, sum = ax;
        for (int n = 1; n < 500 && term > 1e-18 * sum; n++)
        {
            term *= 2 * ax * ax / (2 * n + 1);
            sum += term;
        }
        double r = 2 / Math.Sqrt(Math.PI) * Math.Exp(-ax * ax) * sum;
        return x < 0 ? -r : r;
    }

    /// <summary>erfc(z) for z ≥ 0 in double, by the continued fraction (Lentz) where 1 − erf would cancel.</summary>
    public static double Erfc(double z)
    {
        if (z < 2) return 1 - Erf(z);
        // erfc(z) = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + …)))))
        double f = z, c = z, d = 0, tiny = 1e-300;
        for (int n = 1; n < 500; n++)
        {
            double an = n * 0.5;
            d = z + an * d; if (d == 0) d = tiny; d = 1 / d;
            c = z + an / c; if (c == 0) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return Math.Exp(-z * z) / Math.Sqrt(Math.PI) / f;
    }

    public static double Activate(double x, Activation a) => a switch
    {
        Activation.QuickGelu => x / (1 + Math.Exp(-1.702 * x)),
        // x·Φ(x) with Φ(x) = ½erfc(−x/√2), taking the tail that does not cancel.
        Activation.Gelu => x >= 0 ? x * (1 - 0.5 * Erfc(x / Math.Sqrt(2))) : x * 0.5 * Erfc(-x / Math.Sqrt(2)),
        Activation.Relu => Math.Max(x, 0),
        _ => x,
    };
}
