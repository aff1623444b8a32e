using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ManagedClip.Bench;

/// <summary>The machine's FMA ceiling right now: 24 independent Vector512 (or Vector256) FMA chains, no memory traffic, one thread.</summary>
public static class Peak
{
    /// <summary>Both cores at once: the sum of two threads' FMA rates (≈ 2× one thread on two physical cores; ≈ 1× when they share one).</summary>
    public static double MeasureTwoThreads()
    {
        double a = 0, b = 0;
        var t1 = new Thread(() => a = Measure()); var t2 = new Thread(() => b = Measure());
        t1.Start(); t2.Start(); t1.Join(); t2.Join();
        return a + b;
    }

    public static double Measure(bool wide = true, int trials = 20)
    {
        double best = 0;
        for (int trial = 0; trial < trials; trial++)
        {
            long t0 = Stopwatch.GetTimestamp();
            float sink = wide ? Loop512(2_000_000) : Loop256(2_000_000);
            double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            double flops = 2.0 * 24 * (wide ? 16 : 8) * 2_000_000;
            best = Math.Max(best, flops / seconds / 1e9);
            if (sink == 12345f) Console.Write("");
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static float Loop512(int n)
    {
        var m = Vector512.Create(0.999999f); var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = m, c1 = m, c2 = m, c3 = m, c4 = m, c5 = m, c6 = m, c7 = m, c8 = m, c9 = m, c10 = m, c11 = m;
        Vector512<float> c12 = m, c13 = m, c14 = m, c15 = m, c16 = m, c17 = m, c18 = m, c19 = m, c20 = m, c21 = m, c22 = m, c23 = m;
        for (int i = 0; i < n; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a); c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
            c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a); c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
            c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a); c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
            c12 = Vector512.FusedMultiplyAdd(c12, m, a); c13 = Vector512.FusedMultiplyAdd(c13, m, a); c14 = Vector512.FusedMultiplyAdd(c14, m, a); c15 = Vector512.FusedMultiplyAdd(c15, m, a);
            c16 = Vector512.FusedMultiplyAdd(c16, m, a); c17 = Vector512.FusedMultiplyAdd(c17, m, a); c18 = Vector512.FusedMultiplyAdd(c18, m, a); c19 = Vector512.FusedMultiplyAdd(c19, m, a);
            c20 = Vector512.FusedMultiplyAdd(c20, m, a); c21 = Vector512.FusedMultiplyAdd(c21, m, a); c22 = Vector512.FusedMultiplyAdd(c22, m, a); c23 = Vector512.FusedMultiplyAdd(c23, m, a);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + c12 + c13 + c14 + c15 + c16 + c17 + c18 + c19 + c20 + c21 + c22 + c23;
        return Vector512.Sum(s);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static float Loop256(int n)
    {
        var m = Vector256.Create(0.999999f); var a = Vector256.Create(1e-7f);
        Vector256<float> c0 = m, c1 = m, c2 = m, c3 = m, c4 = m, c5 = m, c6 = m, c7 = m, c8 = m, c9 = m, c10 = m, c11 = m;
        Vector256<float> c12 = m, c13 = m, c14 = m, c15 = m, c16 = m, c17 = m, c18 = m, c19 = m, c20 = m, c21 = m, c22 = m, c23 = m;
        for (int i = 0; i < n; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, m, a); c1 = Vector256.FusedMultiplyAdd(c1, m, a); c2 = Vector256.FusedMultiplyAdd(c2, m, a); c3 = Vector256.FusedMultiplyAdd(c3, m, a);
            c4 = Vector256.FusedMultiplyAdd(c4, m, a); c5 = Vector256.FusedMultiplyAdd(c5, m, a); c6 = Vector256.FusedMultiplyAdd(c6, m, a); c7 = Vector256.FusedMultiplyAdd(c7, m, a);
            c8 = Vector256.FusedMultiplyAdd(c8, m, a); c9 = Vector256.FusedMultiplyAdd(c9, m, a); c10 = Vector256.FusedMultiplyAdd(c10, m, a); c11 = Vector256.FusedMultiplyAdd(c11, m, a);
            c12 = Vector256.FusedMultiplyAdd(c12, m, a); c13 = Vector256.FusedMultiplyAdd(c13, m, a); c14 = Vector256.FusedMultiplyAdd(c14, m, a); c15 = Vector256.FusedMultiplyAdd(c15, m, a);
            c16 = Vector256.FusedMultiplyAdd(c16, m, a); c17 = Vector256.FusedMultiplyAdd(c17, m, a); c18 = Vector256.FusedMultiplyAdd(c18, m, a); c19 = Vector256.FusedMultiplyAdd(c19, m, a);
            c20 = Vector256.FusedMultiplyAdd(c20, m, a); c21 = Vector256.FusedMultiplyAdd(c21, m, a); c22 = Vector256.FusedMultiplyAdd(c22, m, a); c23 = Vector256.FusedMultiplyAdd(c23, m, a);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + c12 + c13 + c14 + c15 + c16 + c17 + c18 + c19 + c20 + c21 + c22 + c23;
        return Vector256.Sum(s);
    }
}
