using System.Runtime.CompilerServices;

namespace ManagedClip.Kernels;

/// <summary>Numerically stable softmax over one row.</summary>
public static class Softmax
{
    /// <summary>
    /// row ← exp(row − max) / Σ exp(row − max). Entries equal to −∞ (masked) become exactly 0.
    /// A row whose entries are all −∞ (nothing admissible) becomes all zeros — defined, not NaN — so a fully
    /// masked attention row contributes nothing. NaN or +∞ in the input propagate as NaN (they are bugs
    /// upstream, and hiding them would be worse). An empty row is left alone.
    /// </summary>
    public static unsafe void InPlace(Span<float> row, KernelContext? context = null)
    {
        var ctx = context ?? KernelContext.Default;
        if (row.IsEmpty) return;
        fixed (float* p = row)
        {
            var kernel = new Row(p, row.Length);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
    }

    readonly unsafe struct Row(float* p, int n) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            if (SimdDispatch.IsScalar<TVec>()) Scalar(p, n);
            else Vector<TVec, TOps>(p, n);
        }
    }

    /// <summary>Scalar twin: three plain passes (max, exp and sum, scale).</summary>
    internal static unsafe void Scalar(float* p, int n)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < n; i++) max = MathF.Max(max, p[i]);
        if (float.IsNegativeInfinity(max)) { new Span<float>(p, n).Clear(); return; }
        float sum = 0f;
        for (int i = 0; i < n; i++) { p[i] = MathF.Exp(p[i] - max); sum += p[i]; }
        float inv = 1f / sum;
        for (int i = 0; i < n; i++) p[i] *= inv;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Vector<TVec, TOps>(float* p, int n) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        float max = MaxOf<TVec, TOps>(p, n);
        if (float.IsNegativeInfinity(max)) { new Span<float>(p, n).Clear(); return; }
        float sum = ExpSubtractAndSum<TVec, TOps>(p, n, max);
        Scale<TVec, TOps>(p, n, 1f / sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe float MaxOf<TVec, TOps>(float* p, int n) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        int w = TOps.Count, i = 0;
        float max = float.NegativeInfinity;
        if (n >= w)
        {
            var m = TOps.Load(p);
            for (i = w; i <= n - w; i += w) m = TOps.Max(m, TOps.Load(p + i));
            max = TOps.MaxAcross(m);
        }
        for (; i < n; i++) max = OpsScalar.Max(max, p[i]);
        return max;
    }

    /// <summary>p[i] ← exp(p[i] − max); returns the sum (two accumulators' worth of parallelism via the vector lanes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe float ExpSubtractAndSum<TVec, TOps>(float* p, int n, float max) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        int w = TOps.Count, i = 0;
        var vmax = TOps.Splat(max);
        var acc = TOps.Zero;
        for (; i <= n - w; i += w)
        {
            var e = TOps.Exp(TOps.Sub(TOps.Load(p + i), vmax));
            TOps.Store(e, p + i);
            acc = TOps.Add(acc, e);
        }
        float sum = TOps.Sum(acc);
        // The tail runs the vector formula one lane at a time, so a row never mixes two exp implementations.
        for (; i < n; i++) { p[i] = OpsScalar.Exp(p[i] - max); sum += p[i]; }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Scale<TVec, TOps>(float* p, int n, float s) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        int w = TOps.Count, i = 0;
        var vs = TOps.Splat(s);
        for (; i <= n - w; i += w) TOps.Store(TOps.Mul(TOps.Load(p + i), vs), p + i);
        for (; i < n; i++) p[i] *= s;
    }
}
