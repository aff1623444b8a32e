using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>
/// The handful of vector operations the kernels need, abstracted over the vector width so that each
/// kernel body is written once and instantiated for Vector128/256/512 (the TensorPrimitives pattern).
/// Implementations are structs with static members: the JIT specializes every generic instantiation and
/// inlines the calls, so the generic body compiles to the same code as a hand-written one.
/// </summary>
internal unsafe interface IVecOps<TVec> where TVec : unmanaged
{
    static abstract int Count { get; }
    static abstract TVec Load(float* p);
    static abstract void Store(TVec v, float* p);
    static abstract TVec Splat(float x);
    static abstract TVec Zero { get; }
    static abstract TVec Add(TVec a, TVec b);
    static abstract TVec Sub(TVec a, TVec b);
    static abstract TVec Mul(TVec a, TVec b);
    static abstract TVec Div(TVec a, TVec b);
    /// <summary>a * b + c, fused where the hardware has FMA.</summary>
    static abstract TVec Fma(TVec a, TVec b, TVec c);
    static abstract TVec Max(TVec a, TVec b);
    static abstract TVec Min(TVec a, TVec b);
    static abstract TVec Abs(TVec a);
    /// <summary>e^a, float-only (<see cref="VectorExp"/>): the BCL's Vector*.Exp evaluates in double and measured six times slower.</summary>
    static abstract TVec Exp(TVec a);
    /// <summary>Round to nearest integer, ties to even.</summary>
    static abstract TVec Round(TVec a);
    /// <summary>p · 2ⁿ for integral-valued n in [−252, 254] (two exponent-field multiplies, so 2ⁿ itself never overflows).</summary>
    static abstract TVec ScaleByPowerOfTwo(TVec p, TVec n);
    static abstract TVec LessThan(TVec a, TVec b);
    static abstract TVec GreaterThanOrEqual(TVec a, TVec b);
    /// <summary>Bitwise select: lanes of <paramref name="mask"/> that are all-ones take <paramref name="whenTrue"/>.</summary>
    static abstract TVec Select(TVec mask, TVec whenTrue, TVec whenFalse);
    static abstract float Sum(TVec a);
    static abstract float MaxAcross(TVec a);
}

internal readonly unsafe struct Ops128 : IVecOps<Vector128<float>>
{
    public static int Count => 4;
    public static Vector128<float> Zero { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Vector128<float>.Zero; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Splat(float x) => Vector128.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sub(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Mul(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Div(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Abs(Vector128<float> a) => Vector128.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Exp(Vector128<float> a) => VectorExp.Exp<Vector128<float>, Ops128>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Round(Vector128<float> a) => Vector128.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> ScaleByPowerOfTwo(Vector128<float> p, Vector128<float> n) => Scale(p, Vector128.ConvertToInt32(n));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] static Vector128<float> Scale(Vector128<float> p, Vector128<int> n) => p * (((n >> 1) + Vector128.Create(127)) << 23).AsSingle() * ((n - (n >> 1) + Vector128.Create(127)) << 23).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LessThan(Vector128<float> a, Vector128<float> b) => Vector128.LessThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> GreaterThanOrEqual(Vector128<float> a, Vector128<float> b) => Vector128.GreaterThanOrEqual(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Select(Vector128<float> m, Vector128<float> t, Vector128<float> f) => Vector128.ConditionalSelect(m, t, f);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> a) => Vector128.Sum(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> a) => MathF.Max(MathF.Max(a.GetElement(0), a.GetElement(1)), MathF.Max(a.GetElement(2), a.GetElement(3)));
}

internal readonly unsafe struct Ops256 : IVecOps<Vector256<float>>
{
    public static int Count => 8;
    public static Vector256<float> Zero { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Vector256<float>.Zero; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sub(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Mul(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Div(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Abs(Vector256<float> a) => Vector256.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Exp(Vector256<float> a) => VectorExp.Exp<Vector256<float>, Ops256>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Round(Vector256<float> a) => Vector256.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> ScaleByPowerOfTwo(Vector256<float> p, Vector256<float> n) => Scale(p, Vector256.ConvertToInt32(n));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] static Vector256<float> Scale(Vector256<float> p, Vector256<int> n) => p * (((n >> 1) + Vector256.Create(127)) << 23).AsSingle() * ((n - (n >> 1) + Vector256.Create(127)) << 23).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LessThan(Vector256<float> a, Vector256<float> b) => Vector256.LessThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> GreaterThanOrEqual(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThanOrEqual(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Select(Vector256<float> m, Vector256<float> t, Vector256<float> f) => Vector256.ConditionalSelect(m, t, f);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> a) => Vector256.Sum(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector256<float> a) => Ops128.MaxAcross(Vector128.Max(a.GetLower(), a.GetUpper()));
}

internal readonly unsafe struct Ops512 : IVecOps<Vector512<float>>
{
    public static int Count => 16;
    public static Vector512<float> Zero { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Vector512<float>.Zero; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Sub(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Mul(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Div(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Abs(Vector512<float> a) => Vector512.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Exp(Vector512<float> a) => VectorExp.Exp<Vector512<float>, Ops512>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Round(Vector512<float> a) => Vector512.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> ScaleByPowerOfTwo(Vector512<float> p, Vector512<float> n) => Scale(p, Vector512.ConvertToInt32(n));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] static Vector512<float> Scale(Vector512<float> p, Vector512<int> n) => p * (((n >> 1) + Vector512.Create(127)) << 23).AsSingle() * ((n - (n >> 1) + Vector512.Create(127)) << 23).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LessThan(Vector512<float> a, Vector512<float> b) => Vector512.LessThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> GreaterThanOrEqual(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThanOrEqual(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Select(Vector512<float> m, Vector512<float> t, Vector512<float> f) => Vector512.ConditionalSelect(m, t, f);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> a) => Vector512.Sum(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector512<float> a) => Ops256.MaxAcross(Vector256.Max(a.GetLower(), a.GetUpper()));
}

/// <summary>
/// One float as a one-lane "vector": lets a kernel body written for <see cref="IVecOps{TVec}"/> run its channel tail (and the
/// scalar level) with the very same formula, so every level gives the same bits. Masks are all-ones or all-zeros bit patterns,
/// as in the vector types.
/// </summary>
internal readonly unsafe struct OpsScalar : IVecOps<float>
{
    public static int Count => 1;
    public static float Zero => 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float v, float* p) => *p = v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Splat(float x) => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sub(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Mul(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Div(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => Vector128.Max(Vector128.CreateScalarUnsafe(a), Vector128.CreateScalarUnsafe(b)).ToScalar();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Min(float a, float b) => Vector128.Min(Vector128.CreateScalarUnsafe(a), Vector128.CreateScalarUnsafe(b)).ToScalar();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Abs(float a) => MathF.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp(float a) => VectorExp.Exp<float, OpsScalar>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Round(float a) => MathF.Round(a, MidpointRounding.ToEven);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScaleByPowerOfTwo(float p, float n)
    {
        int k = (int)n;
        return p * BitConverter.Int32BitsToSingle(((k >> 1) + 127) << 23) * BitConverter.Int32BitsToSingle((k - (k >> 1) + 127) << 23);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LessThan(float a, float b) => a < b ? AllOnes : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float GreaterThanOrEqual(float a, float b) => a >= b ? AllOnes : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Select(float m, float t, float f) =>
        BitConverter.Int32BitsToSingle((BitConverter.SingleToInt32Bits(m) & BitConverter.SingleToInt32Bits(t)) | (~BitConverter.SingleToInt32Bits(m) & BitConverter.SingleToInt32Bits(f)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float a) => a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(float a) => a;
    static float AllOnes => BitConverter.Int32BitsToSingle(-1);
}

/// <summary>
/// e^x in single precision for every vector width (Cephes' expf): n = round(x·log₂e), r = x − n·ln2 with ln2 in two parts
/// (r exact to a few ulps of x), e^r by its degree-7 Taylor-like minimax polynomial on |r| ≤ ½ln2, times 2ⁿ.
/// Measured ≤ 1.3 ulp relative over [−20, 20] (the BCL's Vector512.Exp: 2.4 ulp, and about 45 ns a vector against 7 here,
/// because it widens to double). x is clamped to [−104, 89]: below, e^x is 0 in float; above, it is +∞; NaN stays NaN.
/// </summary>
internal static class VectorExp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec Exp<TVec, TOps>(TVec x) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        x = TOps.Min(TOps.Max(x, TOps.Splat(-104f)), TOps.Splat(89f));
        var n = TOps.Round(TOps.Mul(x, TOps.Splat(1.44269504088896341f)));
        var r = TOps.Fma(n, TOps.Splat(-0.693359375f), x);     // ln2 = 0.693359375 − 2.12194440e-4, the first part exact in 9 bits
        r = TOps.Fma(n, TOps.Splat(2.12194440e-4f), r);
        var p = TOps.Fma(TOps.Splat(1.9875691500e-4f), r, TOps.Splat(1.3981999507e-3f));
        p = TOps.Fma(p, r, TOps.Splat(8.3334519073e-3f));
        p = TOps.Fma(p, r, TOps.Splat(4.1665795894e-2f));
        p = TOps.Fma(p, r, TOps.Splat(1.6666665459e-1f));
        p = TOps.Fma(p, r, TOps.Splat(5.0000001201e-1f));
        p = TOps.Add(TOps.Fma(p, TOps.Mul(r, r), r), TOps.Splat(1f));   // 1 + r + r²·P(r)
        return TOps.ScaleByPowerOfTwo(p, n);
    }
}

/// <summary>Argument checks shared by the kernels.</summary>
internal static class KernelCommon
{
    public static void NonNegative(int value, string name)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be non-negative.");
    }

    public static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }
}
