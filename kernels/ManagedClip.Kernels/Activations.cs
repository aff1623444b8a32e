using System.Runtime.CompilerServices;

namespace ManagedClip.Kernels;

/// <summary>Element-wise non-linearity fused into GEMM epilogues or applied in place.</summary>
public enum Activation
{
    /// <summary>The identity: no activation.</summary>
    None,
    /// <summary>x·sigmoid(1.702x): what all OpenAI CLIP checkpoints were trained with.</summary>
    QuickGelu,
    /// <summary>Exact GELU, x·Φ(x) = x·½(1 + erf(x/√2)) (open_clip's plain configs, nn.GELU()).</summary>
    Gelu,
    /// <summary>max(x, 0) (the ModifiedResNet towers).</summary>
    Relu,
}

/// <summary>In-place activations over a span; also the element functions the GEMM epilogue uses.</summary>
public static class Activations
{
    /// <summary>Applies <paramref name="activation"/> to every element of <paramref name="values"/> in place.</summary>
    public static unsafe void Apply(Span<float> values, Activation activation, KernelContext? context = null)
    {
        CheckActivation(activation);
        var ctx = context ?? KernelContext.Default;
        if (activation == Activation.None || values.IsEmpty) return;
        fixed (float* p = values)
        {
            var kernel = new InPlace(p, values.Length, activation);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
    }

    readonly unsafe struct InPlace(float* p, int count, Activation activation) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            if (SimdDispatch.IsScalar<TVec>()) ApplyScalar(p, count, activation);
            else ApplyVector<TVec, TOps>(p, count, activation);
        }
    }

    internal static void CheckActivation(Activation activation)
    {
        if ((uint)activation > (uint)Activation.Relu)
            throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation.");
    }

    // ---------------------------------------------------------------- scalar twins (the oracle)

    internal static unsafe void ApplyScalar(float* p, int count, Activation activation)
    {
        for (int i = 0; i < count; i++) p[i] = Scalar(p[i], activation);
    }

    internal static float Scalar(float x, Activation activation) => activation switch
    {
        Activation.QuickGelu => x / (1f + MathF.Exp(-1.702f * x)),
        Activation.Gelu => x * NormalCdf(x),
        Activation.Relu => x > 0f ? x : 0f,
        _ => x,
    };

    /// <summary>
    /// Φ(x) = ½·erfc(−x/√2), computed so that neither tail cancels: for |x|/√2 ≥ ½ we use erfc of the
    /// positive argument directly (Φ = ½erfc(z) for x &lt; 0, 1 − ½erfc(z) for x ≥ 0); near 0 the odd Taylor
    /// series of erf. Relative error ≈ 1e-7 over the whole line (see <see cref="ErfcTail"/>).
    /// </summary>
    internal static float NormalCdf(float x)
    {
        float z = MathF.Abs(x) * InvSqrt2;
        if (z < 0.5f)
        {
            float e = ErfSmall(z);
            return x >= 0f ? 0.5f + 0.5f * e : 0.5f - 0.5f * e;
        }
        float c = ErfcTail(z);
        return x >= 0f ? 1f - 0.5f * c : 0.5f * c;
    }

    /// <summary>erf(x) accurate to a couple of float ulps, built from the same two pieces as <see cref="NormalCdf"/>.</summary>
    internal static float Erf(float x)
    {
        float z = MathF.Abs(x);
        float e = z < 0.5f ? ErfSmall(z) : 1f - ErfcTail(z);
        return x < 0f ? -e : e;
    }

    const float InvSqrt2 = 0.70710678118654752f;

    // erf(z) = 2/√π Σ (−1)ⁿ z^(2n+1) / (n!(2n+1)); for z < ½ the first eight terms leave a remainder below
    // 2/√π·0.5¹⁷/(8!·17) ≈ 1.2e-11, far under float rounding. Coefficients are 2/√π·(−1)ⁿ/(n!(2n+1)).
    const float E0 = 1.1283791670955126f, E1 = -0.37612638903183752f, E2 = 0.11283791670955126f,
        E3 = -0.026866170645131252f, E4 = 0.0052239776254421878f, E5 = -0.00085483270234508528f,
        E6 = 0.00012055332981789664f, E7 = -1.4925650358406252e-05f;

    static float ErfSmall(float z)
    {
        float z2 = z * z;
        return z * (E0 + z2 * (E1 + z2 * (E2 + z2 * (E3 + z2 * (E4 + z2 * (E5 + z2 * (E6 + z2 * E7)))))));
    }

    // erfc(z) for z ≥ 0: Numerical Recipes' Chebyshev fit erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2),
    // fractional error below 1.2e-7 everywhere (≈ 1 float ulp); underflows cleanly to 0 for large z.
    const float C0 = -1.26551223f, C1 = 1.00002368f, C2 = 0.37409196f, C3 = 0.09678418f, C4 = -0.18628806f,
        C5 = 0.27886807f, C6 = -1.13520398f, C7 = 1.48851587f, C8 = -0.82215223f, C9 = 0.17087277f;

    static float ErfcTail(float z)
    {
        float t = 1f / (1f + 0.5f * z);
        float p = C0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * (C7 + t * (C8 + t * C9))))))));
        return t * MathF.Exp(-z * z + p);
    }

    // ---------------------------------------------------------------- vector paths

    internal static unsafe void ApplyVector<TVec, TOps>(float* p, int count, Activation activation)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        switch (activation)
        {
            case Activation.QuickGelu: Loop<TVec, TOps, QuickGeluOp>(p, count); break;
            case Activation.Gelu: Loop<TVec, TOps, GeluOp>(p, count); break;
            case Activation.Relu: Loop<TVec, TOps, ReluOp>(p, count); break;
        }
    }

    /// <summary>
    /// One shared loop: full vectors in place, then the tail (count mod width) one lane at a time through <see cref="OpsScalar"/>,
    /// the very same formula as the body (the kernels' one tail convention).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Loop<TVec, TOps, TOp>(float* p, int count)
        where TVec : unmanaged where TOps : IVecOps<TVec> where TOp : IActivationOp
    {
        int w = TOps.Count, i = 0;
        for (; i <= count - w; i += w)
            TOps.Store(TOp.Invoke<TVec, TOps>(TOps.Load(p + i)), p + i);
        for (; i < count; i++) p[i] = TOp.Invoke<float, OpsScalar>(p[i]);
    }

    internal interface IActivationOp
    {
        static abstract TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVecOps<TVec>;
    }

    internal readonly struct QuickGeluOp : IActivationOp
    {
        // x / (1 + e^(−1.702x)): e overflows to +∞ for very negative x, giving x/∞ = −0, the right limit.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVecOps<TVec>
            => TOps.Div(x, TOps.Add(TOps.Splat(1f), TOps.Exp(TOps.Mul(TOps.Splat(-1.702f), x))));
    }

    /// <summary>Activation.None, for kernels (the GEMM epilogue) that take the activation as a type parameter.</summary>
    internal readonly struct IdentityOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVecOps<TVec> => x;
    }

    internal readonly struct ReluOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVecOps<TVec>
            => TOps.Max(x, TOps.Zero);
    }

    internal readonly struct GeluOp : IActivationOp
    {
        /// <summary>Vector form of <c>x·NormalCdf(x)</c>: both branches computed, lanes selected by masks.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVec Invoke<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            var half = TOps.Splat(0.5f);
            var one = TOps.Splat(1f);
            var z = TOps.Mul(TOps.Abs(x), TOps.Splat(InvSqrt2));
            var nonNegative = TOps.GreaterThanOrEqual(x, TOps.Zero);

            // Near zero: Φ = ½ ± ½·erf(z).
            var z2 = TOps.Mul(z, z);
            var s = TOps.Fma(z2, TOps.Splat(E7), TOps.Splat(E6));
            s = TOps.Fma(z2, s, TOps.Splat(E5));
            s = TOps.Fma(z2, s, TOps.Splat(E4));
            s = TOps.Fma(z2, s, TOps.Splat(E3));
            s = TOps.Fma(z2, s, TOps.Splat(E2));
            s = TOps.Fma(z2, s, TOps.Splat(E1));
            s = TOps.Fma(z2, s, TOps.Splat(E0));
            var halfErf = TOps.Mul(half, TOps.Mul(z, s));
            var small = TOps.Select(nonNegative, TOps.Add(half, halfErf), TOps.Sub(half, halfErf));

            // Tails: Φ = 1 − ½erfc(z) or ½erfc(z).
            var t = TOps.Div(one, TOps.Fma(half, z, one));
            var p = TOps.Fma(t, TOps.Splat(C9), TOps.Splat(C8));
            p = TOps.Fma(t, p, TOps.Splat(C7));
            p = TOps.Fma(t, p, TOps.Splat(C6));
            p = TOps.Fma(t, p, TOps.Splat(C5));
            p = TOps.Fma(t, p, TOps.Splat(C4));
            p = TOps.Fma(t, p, TOps.Splat(C3));
            p = TOps.Fma(t, p, TOps.Splat(C2));
            p = TOps.Fma(t, p, TOps.Splat(C1));
            p = TOps.Fma(t, p, TOps.Splat(C0));
            var halfErfc = TOps.Mul(half, TOps.Mul(t, TOps.Exp(TOps.Sub(p, z2))));
            var tail = TOps.Select(nonNegative, TOps.Sub(one, halfErfc), halfErfc);

            var cdf = TOps.Select(TOps.LessThan(z, half), small, tail);
            return TOps.Mul(x, cdf);
        }
    }
}
