using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>Row-wise layer normalization (pre-LN transformer blocks, ln_pre/ln_post/ln_final).</summary>
public static class LayerNorm
{
    /// <summary>
    /// y[r, :] = (x[r, :] − mean) / sqrt(biasedVar + ε) · γ + β for each of <paramref name="rows"/> rows of
    /// <paramref name="width"/>. x and y may be the same span (in place); otherwise they must not overlap.
    /// Two passes over the row (mean, then Σ(x − mean)²) so large means cannot cancel the variance.
    /// </summary>
    public static unsafe void Forward(ReadOnlySpan<float> x, Span<float> y, int rows, int width, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> beta, float epsilon = 1e-5f, SimdLevel? level = null)
    {
        KernelCommon.NonNegative(rows, nameof(rows));
        KernelCommon.Positive(width, nameof(width));
        string shape = $"[{rows}, {width}]";
        KernelCommon.Fits(x.Length, (long)rows * width, nameof(x), shape);
        KernelCommon.Fits(y.Length, (long)rows * width, nameof(y), shape);
        if (gamma.Length != width) throw new ArgumentException($"gamma has {gamma.Length} elements, expected width {width}.", nameof(gamma));
        if (beta.Length != width) throw new ArgumentException($"beta has {beta.Length} elements, expected width {width}.", nameof(beta));
        if (!(epsilon >= 0f)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be a non-negative number.");
        var l = KernelCommon.Resolve(level);

        fixed (float* px = x, py = y, pg = gamma, pb = beta)
        {
            for (int r = 0; r < rows; r++)
            {
                float* xr = px + (nint)r * width, yr = py + (nint)r * width;
                switch (l)
                {
                    case SimdLevel.Vector512: Row<Vector512<float>, Ops512>(xr, yr, width, pg, pb, epsilon); break;
                    case SimdLevel.Vector256: Row<Vector256<float>, Ops256>(xr, yr, width, pg, pb, epsilon); break;
                    case SimdLevel.Vector128: Row<Vector128<float>, Ops128>(xr, yr, width, pg, pb, epsilon); break;
                    default: RowScalar(xr, yr, width, pg, pb, epsilon); break;
                }
            }
        }
    }

    /// <summary>Scalar twin: mean and variance accumulated in double, then the textbook formula.</summary>
    static unsafe void RowScalar(float* x, float* y, int n, float* g, float* b, float eps)
    {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += x[i];
        double mean = sum / n;
        double sq = 0;
        for (int i = 0; i < n; i++) { double d = x[i] - mean; sq += d * d; }
        double rstd = 1.0 / Math.Sqrt(sq / n + eps);
        for (int i = 0; i < n; i++) y[i] = (float)((x[i] - mean) * rstd * g[i] + b[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Row<TVec, TOps>(float* x, float* y, int n, float* g, float* b, float eps)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        int w = TOps.Count, i;
        var acc = TOps.Zero;
        for (i = 0; i <= n - w; i += w) acc = TOps.Add(acc, TOps.Load(x + i));
        float sum = TOps.Sum(acc);
        for (; i < n; i++) sum += x[i];
        float mean = sum / n;

        var vmean = TOps.Splat(mean);
        acc = TOps.Zero;
        for (i = 0; i <= n - w; i += w) { var d = TOps.Sub(TOps.Load(x + i), vmean); acc = TOps.Fma(d, d, acc); }
        float sq = TOps.Sum(acc);
        for (; i < n; i++) { float d = x[i] - mean; sq += d * d; }
        float rstd = 1f / MathF.Sqrt(sq / n + eps);

        // y = (x − mean)·(rstd·γ) + β; x is read before y is written at the same index, so in place is safe.
        var vr = TOps.Splat(rstd);
        for (i = 0; i <= n - w; i += w)
        {
            var d = TOps.Sub(TOps.Load(x + i), vmean);
            TOps.Store(TOps.Fma(d, TOps.Mul(vr, TOps.Load(g + i)), TOps.Load(b + i)), y + i);
        }
        for (; i < n; i++) y[i] = (x[i] - mean) * (rstd * g[i]) + b[i];
    }
}
