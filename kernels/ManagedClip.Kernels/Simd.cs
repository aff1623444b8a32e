using System.Numerics;
using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>The vector width a kernel runs at. Every kernel has one path per level; the scalar path is the test oracle.</summary>
public enum SimdLevel
{
    /// <summary>No vectors: one float at a time (the reference path).</summary>
    Scalar = 0,
    /// <summary>128-bit vectors, 4 floats (SSE/NEON).</summary>
    Vector128 = 128,
    /// <summary>256-bit vectors, 8 floats (AVX2).</summary>
    Vector256 = 256,
    /// <summary>512-bit vectors, 16 floats (AVX-512).</summary>
    Vector512 = 512,
}

/// <summary>Which SIMD path this process uses, decided once from what the hardware (or, under Native AOT, the build) accelerates.</summary>
public static class Simd
{
    /// <summary>The widest accelerated level. Kernels called without an explicit level run at this one.</summary>
    public static SimdLevel Best { get; } = Detect();

    /// <summary>True when fused multiply-add is a single instruction at <see cref="Best"/> (it is on every AVX2 and AVX-512 machine, and on ARM64).</summary>
    public static bool HasFusedMultiplyAdd { get; } =
        System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported;

    /// <summary>Human-readable name of the path in use, for <c>managedclip info</c>.</summary>
    public static string Describe(SimdLevel level) => level switch
    {
        SimdLevel.Vector512 => System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "AVX-512 (Vector512)" : "Vector512",
        SimdLevel.Vector256 => System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "AVX2+FMA (Vector256)" : "Vector256",
        SimdLevel.Vector128 => System.Runtime.Intrinsics.X86.Sse41.IsSupported ? "SSE4.1 (Vector128)"
            : System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported ? "NEON (Vector128)" : "Vector128",
        _ => "scalar",
    };

    /// <summary>Levels this machine can run, best first; tests run every kernel at each of them.</summary>
    public static IReadOnlyList<SimdLevel> Supported { get; } = SupportedLevels();

    static SimdLevel Detect()
    {
        if (Vector512.IsHardwareAccelerated) return SimdLevel.Vector512;
        if (Vector256.IsHardwareAccelerated) return SimdLevel.Vector256;
        if (Vector128.IsHardwareAccelerated) return SimdLevel.Vector128;
        return SimdLevel.Scalar;
    }

    static SimdLevel[] SupportedLevels()
    {
        var levels = new List<SimdLevel>();
        if (Vector512.IsHardwareAccelerated) levels.Add(SimdLevel.Vector512);
        if (Vector256.IsHardwareAccelerated) levels.Add(SimdLevel.Vector256);
        if (Vector128.IsHardwareAccelerated) levels.Add(SimdLevel.Vector128);
        levels.Add(SimdLevel.Scalar);
        return levels.ToArray();
    }
}
