using System.Diagnostics;
using ManagedClip.Imaging;
using ManagedClip.Kernels;

namespace ManagedClip.Bench;

/// <summary>
/// <c>managedclip-bench resample [REPS]</c>: single-thread PillowResample.Resample8 of a 4000x3000 RGB image to 299x224
/// bicubic with the centre 224x224 window (what embed-image does after decoding a 12 MP photo), the scalar passes and
/// the SIMD ones interleaved so both see the same machine load. The arithmetic does not depend on the pixel values,
/// so the image is seeded noise. Prints the median wall and CPU ms per resize of each and checks that their bytes are equal.
/// </summary>
static class ResampleBench
{
    public static void Run(int reps)
    {
        const int Width = 4000, Height = 3000, Channels = 3, OutWidth = 299, OutHeight = 224, Crop = 224;
        var image = new byte[Width * Height * Channels];
        new Random(12).NextBytes(image);
        var paths = new[] { ("scalar", SimdLevel.Scalar), ("simd", Simd.Best) };
        byte[] Resize(SimdLevel level) =>
            PillowResample.Resample8(image, Width, Height, Channels, OutWidth, OutHeight, PillowFilter.Bicubic, (OutWidth - Crop) / 2, 0, Crop, OutHeight, level);
        var outputs = paths.Select(p => Resize(p.Item2)).ToArray(); // also the JIT and tier-up warm-up
        foreach (var (_, level) in paths) Resize(level);
        Console.WriteLine($"bytes equal: {outputs[0].AsSpan().SequenceEqual(outputs[1])} ({Simd.Describe(Simd.Best)})");
        // Wall time, and the process's CPU time (less inflated than wall time when the machine is shared).
        var wall = paths.Select(_ => new List<double>()).ToArray();
        var cpu = paths.Select(_ => new List<double>()).ToArray();
        using var process = Process.GetCurrentProcess();
        for (int r = 0; r < reps; r++)
            for (int p = 0; p < paths.Length; p++)
            {
                process.Refresh();
                var cpu0 = process.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                Resize(paths[p].Item2);
                wall[p].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                process.Refresh();
                cpu[p].Add((process.TotalProcessorTime - cpu0).TotalMilliseconds);
            }
        static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
        for (int p = 0; p < paths.Length; p++)
            Console.WriteLine($"{paths[p].Item1,-7} {Median(wall[p]),7:0.0} ms wall, {Median(cpu[p]),7:0.0} ms CPU per {Width}x{Height} RGB -> {OutWidth}x{OutHeight} bicubic, {Crop}x{Crop} window (medians of {reps})");
        Console.WriteLine($"scalar / simd: {Median(wall[0]) / Median(wall[1]):0.00}x wall, {Median(cpu[0]) / Median(cpu[1]):0.00}x CPU; load {GemmSweep.LoadAverage()}");
    }
}
