using System.Runtime.CompilerServices;

namespace ManagedClip.Kernels;

/// <summary>Row-wise layer normalization (pre-LN transformer blocks, ln_pre/ln_post/ln_final).</summary>
public static class LayerNorm
{
    /// <summary>
    /// y[r, :] = (x[r, :] − mean) / sqrt(biasedVar + ε) · γ + β for each row of x. x and y may be the same memory (in place,
    /// same layout); otherwise they must not overlap. Two passes over the row (mean, then Σ(x − mean)²) so large means cannot
    /// cancel the variance.
    /// </summary>
    public static unsafe void Forward(ReadOnlyMatrixView x, MatrixView y, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        float epsilon = 1e-5f, KernelContext? context = null)
    {
        var ctx = context ?? KernelContext.Default;
        int width = x.Columns;
        KernelCommon.Positive(width, "width");
        if (y.Rows != x.Rows || y.Columns != width) throw new ArgumentException($"y is {y.ToString()}, expected [{x.Rows}, {width}] like x.", nameof(y));
        if (gamma.Length != width) throw new ArgumentException($"gamma has {gamma.Length} elements, expected width {width}.", nameof(gamma));
        if (beta.Length != width) throw new ArgumentException($"beta has {beta.Length} elements, expected width {width}.", nameof(beta));
        if (!(epsilon >= 0f)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be a non-negative number.");

        fixed (float* px = x.Data, py = y.Data, pg = gamma, pb = beta)
        {
            var kernel = new Rows(px, x.Stride, py, y.Stride, x.Rows, width, pg, pb, epsilon);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
    }

    readonly unsafe struct Rows(float* x, int xStride, float* y, int yStride, int rows, int width, float* gamma, float* beta, float epsilon) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            for (int r = 0; r < rows; r++)
            {
                float* xr = x + (nint)r * xStride, yr = y + (nint)r * yStride;
                if (SimdDispatch.IsScalar<TVec>()) RowScalar(xr, yr, width, gamma, beta, epsilon);
                else Row<TVec, TOps>(xr, yr, width, gamma, beta, epsilon);
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
        for (; i < n; i++) sum = OpsScalar.Add(sum, x[i]);
        float mean = sum / n;

        var vmean = TOps.Splat(mean);
        acc = TOps.Zero;
        for (i = 0; i <= n - w; i += w) { var d = TOps.Sub(TOps.Load(x + i), vmean); acc = TOps.Fma(d, d, acc); }
        float sq = TOps.Sum(acc);
        for (; i < n; i++) { float d = x[i] - mean; sq = OpsScalar.Fma(d, d, sq); }
        float rstd = 1f / MathF.Sqrt(sq / n + eps);

        // y = (x − mean)·(rstd·γ) + β; x is read before y is written at the same index, so in place is safe.
        var vr = TOps.Splat(rstd);
        for (i = 0; i <= n - w; i += w)
        {
            var d = TOps.Sub(TOps.Load(x + i), vmean);
            TOps.Store(TOps.Fma(d, TOps.Mul(vr, TOps.Load(g + i)), TOps.Load(b + i)), y + i);
        }
        for (; i < n; i++) y[i] = OpsScalar.Fma(x[i] - mean, rstd * g[i], b[i]);
    }
}
