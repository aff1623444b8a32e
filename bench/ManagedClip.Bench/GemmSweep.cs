using System.Diagnostics;
using ManagedClip.Kernels;

namespace ManagedClip.Bench;

/// <summary>A quick, Stopwatch-timed sweep (median of repeated calls): for iterating on the kernels between BenchmarkDotNet runs.</summary>
public static class GemmSweep
{
    public static void Run(bool quick)
    {
        var levels = Simd.Supported.Where(l => l is SimdLevel.Vector512 or SimdLevel.Vector256).ToArray();
        Console.WriteLine($"GEMM sweep, {Simd.Describe(Simd.Best)}, {Environment.ProcessorCount} cores, load {LoadAverage()}");
        Console.WriteLine($"{"shape",-32} {"level",-10} {"thr",3} {"ms",9} {"GFLOP/s",9} {"% peak",7}");
        foreach (var (name, m, k, n) in Shapes.All)
        {
            if (quick && !name.StartsWith("vit")) continue;
            var (x, packed, bias, y) = Operands(m, k, n);
            double flops = 2.0 * m * k * n;
            foreach (var level in levels)
                foreach (int threads in new[] { 1, 2 })
                {
                    var context = KernelContext.Create(threads, level);
                    void Call() => Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), packed, new MatrixView(y, m, n), Epilogue.Of(bias), context);
                    Call();
                    int reps = Math.Max(3, (int)(0.3e9 * threads / flops * 100 / 100));
                    reps = Math.Min(reps, 200);
                    var times = new double[reps];
                    for (int r = 0; r < reps; r++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        Call();
                        times[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    }
                    Array.Sort(times);
                    double median = times[reps / 2], gflops = flops / median / 1e9;
                    double peak = Shapes.PeakGflopsPerCore * threads * (level == SimdLevel.Vector512 ? 1 : 0.5);
                    Console.WriteLine($"{name,-32} {level,-10} {threads,3} {median * 1e3,9:0.000} {gflops,9:0.0} {100 * gflops / peak,6:0}%");
                }
        }
    }

    /// <summary>One shape, Vector512/best level, median of many calls.</summary>
    public static void One(int m, int k, int n, int threads)
    {
        var (x, packed, _, y) = Operands(m, k, n);
        double flops = 2.0 * m * k * n;
        int reps = (int)Math.Clamp(2e10 / flops, 5, 20000);
        var times = new double[reps];
        var context = KernelContext.Create(threads);
        for (int r = 0; r < 3; r++) Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), packed, new MatrixView(y, m, n), default, context);
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        for (int r = 0; r < reps; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), packed, new MatrixView(y, m, n), default, context);
            times[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        process.Refresh();
        // CPU time is immune to the time slices other processes take on a shared machine: GFLOP/s per busy core.
        double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds / reps;
        Array.Sort(times);
        double best = flops / times[0] / 1e9, median = flops / times[reps / 2] / 1e9, perCpu = flops / cpu / 1e9;
        Console.WriteLine($"{m}x{k}x{n} thr {threads}: per busy core {perCpu / 1:0.0} GFLOP/s ({100 * perCpu / Shapes.PeakGflopsPerCore:0}% of one core's peak); wall median {median:0.0}, best {best:0.0}; load {LoadAverage()}");
    }

    /// <summary>
    /// The ViT-B/32 MLP shapes (at batch 8, and at the 4-image share one thread runs when the batch is split) on one thread,
    /// against the FMA ceiling measured alongside: rounds alternate a probe window (best of 5 runs of <see cref="Peak"/>'s loop,
    /// about 40 ms) and a GEMM window (best of its calls in 0.2 s), so a neighbour's burst lowers both sides of a round's
    /// ratio alike. Prints the median over rounds of GEMM / ceiling, and the GEMM's rate against the nominal peak too.
    /// </summary>
    public static void AgainstCeiling(int rounds = 31)
    {
        Console.WriteLine($"GEMM against the FMA ceiling measured alongside, 1 thread, {Simd.Describe(Simd.Best)}, {rounds} alternating rounds, load {LoadAverage()}");
        foreach (var (name, m, k, n) in new[] { ("vit fc 400x768x3072", 400, 768, 3072), ("vit proj 400x3072x768", 400, 3072, 768),
                     ("vit fc 200x768x3072 (4 images)", 200, 768, 3072), ("vit proj 200x3072x768 (4 images)", 200, 3072, 768) })
        {
            var (x, packed, bias, y) = Operands(m, k, n);
            double flops = 2.0 * m * k * n;
            void Call() => Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), packed, new MatrixView(y, m, n), Epilogue.Of(bias), KernelContext.SingleThread);
            Call(); Call();
            var ratios = new List<double>(); var gemms = new List<double>(); var ceilings = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                double ceiling = Peak.Measure(trials: 5);
                var times = new List<double>();
                var window = Stopwatch.StartNew();
                do { long t0 = Stopwatch.GetTimestamp(); Call(); times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds); } while (window.Elapsed.TotalSeconds < 0.2);
                double gemm = flops / times.Min() / 1e9;   // best in the window, as the probe's side is
                ratios.Add(gemm / ceiling); gemms.Add(gemm); ceilings.Add(ceiling);
            }
            double Median(List<double> v) { v.Sort(); return v[v.Count / 2]; }
            Console.WriteLine($"{name,-34} GEMM {Median(gemms),6:0.0} GFLOP/s, ceiling {Median(ceilings),6:0.0}: {100 * Median(ratios),5:0.0}% of the ceiling " +
                $"(rounds {100 * ratios.Min(),4:0}–{100 * ratios.Max(),3:0}%), {100 * Median(gemms) / Shapes.PeakGflopsPerCore,4:0}% of the nominal {Shapes.PeakGflopsPerCore:0}");
        }
        Console.WriteLine($"load {LoadAverage()}");
    }

    /// <summary>x [m, k] and B [k, n] uniform in [−½, ½) from seed 42, B packed; a zero bias [n] and y [m, n].</summary>
    static (float[] X, PackedMatrix B, float[] Bias, float[] Y) Operands(int m, int k, int n)
    {
        var random = new Random(42);
        var x = new float[m * k]; var w = new float[k * n];
        for (int i = 0; i < x.Length; i++) x[i] = (float)random.NextDouble() - 0.5f;
        for (int i = 0; i < w.Length; i++) w[i] = (float)random.NextDouble() - 0.5f;
        return (x, PackedMatrix.FromRowMajor(w, k, n), new float[n], new float[m * n]);
    }

    public static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); } catch (IOException) { return "?"; }
    }
}
