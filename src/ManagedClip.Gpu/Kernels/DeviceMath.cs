using ILGPU.Algorithms;
using ManagedClip.Kernels;

namespace ManagedClip.Gpu.Kernels;

/// <summary>
/// Element functions shared by the kernels, written once for every ILGPU backend. They are the formulas of the CPU kernels'
/// scalar twins (kernels/ManagedClip.Kernels/Activations.cs), constant for constant, so the two backends differ only by
/// float rounding (and by the device's exp: XMath.Exp is MathF.Exp on the CPU accelerator, ex2.approx(x·log₂e) on CUDA).
/// </summary>
internal static class DeviceMath
{
    /// <summary>y = act(x) for an <see cref="Activation"/> passed as its int value (kernel arguments are plain values).</summary>
    public static float Activate(float x, int activation)
    {
        if (activation == (int)Activation.QuickGelu) return x / (1f + XMath.Exp(-1.702f * x));
        if (activation == (int)Activation.Gelu) return x * NormalCdf(x);
        if (activation == (int)Activation.Relu) return x > 0f ? x : 0f;
        return x;
    }

    const float InvSqrt2 = 0.70710678118654752f;

    /// <summary>
    /// Φ(x) = ½·erfc(−x/√2) without cancellation in either tail: the odd Taylor series of erf for |x|/√2 &lt; ½, Numerical
    /// Recipes' erfc fit beyond (relative error ≈ 1e-7 over the whole line; XMath has no erf).
    /// </summary>
    public static float NormalCdf(float x)
    {
        float z = XMath.Abs(x) * InvSqrt2;
        if (z < 0.5f)
        {
            float e = ErfSmall(z);
            return x >= 0f ? 0.5f + 0.5f * e : 0.5f - 0.5f * e;
        }
        float c = ErfcTail(z);
        return x >= 0f ? 1f - 0.5f * c : 0.5f * c;
    }

    // erf(z) = 2/√π Σ (−1)ⁿ z^(2n+1) / (n!(2n+1)), eight terms (remainder below 1.2e-11 for z < ½).
    const float E0 = 1.1283791670955126f, E1 = -0.37612638903183752f, E2 = 0.11283791670955126f,
        E3 = -0.026866170645131252f, E4 = 0.0052239776254421878f, E5 = -0.00085483270234508528f,
        E6 = 0.00012055332981789664f, E7 = -1.4925650358406252e-05f;

    static float ErfSmall(float z)
    {
        float z2 = z * z;
        return z * (E0 + z2 * (E1 + z2 * (E2 + z2 * (E3 + z2 * (E4 + z2 * (E5 + z2 * (E6 + z2 * E7)))))));
    }

    // erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), fractional error below 1.2e-7.
    const float C0 = -1.26551223f, C1 = 1.00002368f, C2 = 0.37409196f, C3 = 0.09678418f, C4 = -0.18628806f,
        C5 = 0.27886807f, C6 = -1.13520398f, C7 = 1.48851587f, C8 = -0.82215223f, C9 = 0.17087277f;

    static float ErfcTail(float z)
    {
        float t = 1f / (1f + 0.5f * z);
        float p = C0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * (C7 + t * (C8 + t * C9))))))));
        return t * XMath.Exp(-z * z + p);
    }
}
