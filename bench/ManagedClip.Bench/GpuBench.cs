using System.Diagnostics;
using ManagedClip.Gpu;
using ManagedClip.Kernels;

namespace ManagedClip.Bench;

/// <summary>
/// The GPU backend on a device (bench/gpu.sh): its features against the CPU's on full-size checkpoints, and its GEMM's TFLOP/s on
/// the ViT-B/32 shapes at batch 256 against the device's FP32 peak.
/// </summary>
static class GpuBench
{
    public static GpuDeviceKind Kind(string name) => name switch
    {
        "cuda" => GpuDeviceKind.Cuda,
        "opencl" => GpuDeviceKind.OpenCL,
        "ilgpu-cpu" => GpuDeviceKind.Cpu,
        _ => throw new ArgumentException($"device must be cuda, opencl or ilgpu-cpu, got '{name}'"),
    };

    /// <summary>Seeded pixels [batch, 3, R, R] and token rows for <paramref name="model"/>, encoded on the CPU and on the device.</summary>
    public static void Parity(string checkpoint, string device, int batch)
    {
        using var gpu = GpuDevice.Open(Kind(device));
        using var onCpu = ClipModel.Load(checkpoint);
        using var onDevice = ClipModel.Load(checkpoint, new ClipModelOptions { Device = gpu, MaxBatch = batch });
        var random = new Random(2026);
        var pixels = new float[batch * 3 * onCpu.ImageSize * onCpu.ImageSize];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(random.NextDouble() * 4 - 2);
        var ids = Enumerable.Range(0, batch).Select(b =>
        {
            var row = new int[2 + b % 60];
            for (int i = 0; i < row.Length - 1; i++) row[i] = random.Next(1, onCpu.Config.Text.EndOfTextId);
            row[^1] = onCpu.Config.Text.EndOfTextId;
            return row;
        }).ToArray();
        string name = $"{onCpu.Config.ModelName} ({Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(checkpoint)))}/{Path.GetFileName(checkpoint)})";
        Report($"{name} image, {batch} seeded images", onCpu.EncodeImages(pixels, batch), onDevice.EncodeImages(pixels, batch));
        Report($"{name} text, {batch} seeded rows", onCpu.EncodeTokens(ids), onDevice.EncodeTokens(ids));
        Console.WriteLine($"  on {gpu}");
    }

    /// <summary>max |Δ| / max |cpu| over every feature, and the worst row's ‖Δ‖ / ‖cpu‖.</summary>
    static void Report(string what, float[][] cpu, float[][] device)
    {
        double largest = 0, worstDifference = 0, worstRow = 0;
        for (int r = 0; r < cpu.Length; r++)
        {
            double difference = 0, norm = 0;
            for (int j = 0; j < cpu[r].Length; j++)
            {
                double delta = (double)device[r][j] - cpu[r][j];
                largest = Math.Max(largest, Math.Abs(cpu[r][j]));
                worstDifference = Math.Max(worstDifference, Math.Abs(delta));
                difference += delta * delta; norm += (double)cpu[r][j] * cpu[r][j];
            }
            worstRow = Math.Max(worstRow, Math.Sqrt(difference / norm));
        }
        Console.WriteLine($"{what,-60} device vs CPU: max|Δ|/max|cpu| {worstDifference / largest:E2}, worst row ‖Δ‖/‖cpu‖ {worstRow:E2}");
    }

    /// <summary>The ViT-B/32 GEMMs at batch 256 (12,800 tokens): TFLOP/s, median of <paramref name="repetitions"/>, against <paramref name="peakTflops"/>.</summary>
    public static void Gemm(string device, double peakTflops, int repetitions)
    {
        using var gpu = GpuDevice.Open(Kind(device));
        int tokens = device == "ilgpu-cpu" ? 200 : 256 * 50;   // the CPU accelerator only shows that the command runs
        foreach (var (name, k, n) in new[] { ("qkv 768→2304", 768, 2304), ("c_fc 768→3072", 768, 3072), ("c_proj 3072→768", 3072, 768) })
        {
            var random = new Random(k + n);
            var weight = new float[k * n];
            for (int i = 0; i < weight.Length; i++) weight[i] = (float)(random.NextDouble() - 0.5);
            using var matrix = GpuMatrix.FromRowMajor(gpu, weight, k, n);
            using var x = gpu.Allocate((long)tokens * k);
            using var y = gpu.Allocate((long)tokens * n);
            var times = new double[repetitions];
            gpu.Kernels.Gemm(x.View, tokens, k, matrix, y.View, n);   // compile and warm up
            gpu.Synchronize();
            for (int r = 0; r < repetitions; r++)
            {
                long start = Stopwatch.GetTimestamp();
                gpu.Kernels.Gemm(x.View, tokens, k, matrix, y.View, n, activation: Activation.QuickGelu);
                gpu.Synchronize();
                times[r] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            Array.Sort(times);
            double tflops = 2.0 * tokens * k * n / times[repetitions / 2] / 1e12;
            Console.WriteLine($"GEMM {name,-16} [{tokens}, {k}]·[{k}, {n}]: {tflops:0.00} TFLOP/s ({1000 * tflops:0.0} GFLOP/s) median of {repetitions}, {100 * tflops / peakTflops:0.0} % of the {peakTflops} TFLOP/s FP32 peak");
        }
        Console.WriteLine($"  on {gpu}");
    }
}
