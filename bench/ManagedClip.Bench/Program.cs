using System.Diagnostics;
using BenchmarkDotNet.Running;
using ManagedClip.Bench;
using ManagedClip.Kernels;
using ManagedClip.Tests.Support;

// managedclip-bench weights DIR        write the seeded full-size ViT-B/32 and RN50 fp32 checkpoints (the parity tests' formula)
// managedclip-bench gemm [--quick]     Stopwatch sweep of the ViT-B/32 and RN50 GEMM shapes: GFLOP/s and % of peak, 1 and 2 threads
// managedclip-bench ceiling            the ViT-B/32 MLP shapes against the FMA ceiling measured in alternating rounds
// managedclip-bench decode FOLDER [REPS]  single-thread JPEG decode of FOLDER's files: the managed decoder and ImageSharp (bench/decode/run.sh)
// managedclip-bench resample [REPS]    single-thread bicubic resize of a 12 MP RGB image to 299x224 (224x224 window): scalar vs SIMD passes
// managedclip-bench gpu-parity CHECKPOINT DEVICE [BATCH]   features on a GPU device (cuda, opencl, ilgpu-cpu) against the CPU's (bench/gpu.sh)
// managedclip-bench gpu-gemm DEVICE [PEAK_TFLOPS] [REPS]  the ViT-B/32 GEMMs at batch 256 on the device: TFLOP/s and % of the FP32 peak (H200: 67)
// managedclip-bench [BenchmarkDotNet args]   the BenchmarkDotNet suites (e.g. --filter '*Gemm*')
if (args.Length >= 2 && args[0] == "weights")
{
    foreach (var (name, file) in new[] { ("vit-b32-openai-f32", "vit-b32.safetensors"), ("rn50-openai-f32", "rn50.safetensors") })
    {
        string path = Path.Combine(args[1], file);
        if (File.Exists(path)) { Console.WriteLine($"{path} exists"); continue; }
        var sw = Stopwatch.StartNew();
        SyntheticCheckpoint.Write(path + ".tmp.safetensors", SyntheticCases.Load(name));
        File.Move(path + ".tmp.safetensors", path);
        Console.WriteLine($"{path}: {new FileInfo(path).Length / 1048576.0:0} MiB in {sw.Elapsed.TotalSeconds:0.0} s");
    }
    return 0;
}
if (args.Length >= 4 && args[0] == "shape")
{
    GemmSweep.One(int.Parse(args[1]), int.Parse(args[2]), int.Parse(args[3]), args.Length > 4 ? int.Parse(args[4]) : 1);
    return 0;
}
if (args.Length >= 1 && args[0] == "peak")
{
    Console.WriteLine($"FMA peak, one thread, best of 20: Vector512 {Peak.Measure():0.0} GFLOP/s, Vector256 {Peak.Measure(false):0.0} GFLOP/s; load {GemmSweep.LoadAverage()}");
    Console.WriteLine($"FMA peak, two threads at once (sum): Vector512 {Peak.MeasureTwoThreads():0.0} GFLOP/s; load {GemmSweep.LoadAverage()}");
    return 0;
}
if (args.Length >= 1 && args[0] == "attention")
{
    var suite = new AttentionBenchmarks { Threads = 1 };
    suite.Setup();
    foreach (var (name, call) in new (string, Action)[] { ("vit b8 50x50 h12", suite.VitAttention), ("text b8 77x77 causal h8", suite.TextAttention) })
    {
        var times = new double[60];
        call();
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        for (int r = 0; r < times.Length; r++) { long t0 = Stopwatch.GetTimestamp(); call(); times[r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds; }
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalMilliseconds / times.Length;
        Array.Sort(times);
        Console.WriteLine($"{name,-26} 1 thread: CPU {cpu:0.000} ms/call; wall median {times[30]:0.000} ms, best {times[0]:0.000} ms, load {GemmSweep.LoadAverage()}");
    }
    return 0;
}
if (args.Length >= 2 && args[0] == "decode")
{
    DecodeBench.Run(args[1], args.Length > 2 ? int.Parse(args[2]) : 5);
    return 0;
}
if (args.Length >= 1 && args[0] == "resample")
{
    ResampleBench.Run(args.Length > 1 ? int.Parse(args[1]) : 15);
    return 0;
}
if (args.Length >= 1 && args[0] == "ceiling")
{
    GemmSweep.AgainstCeiling();
    return 0;
}
if (args.Length >= 3 && args[0] == "gpu-parity")
{
    GpuBench.Parity(args[1], args[2], args.Length > 3 ? int.Parse(args[3]) : 8);
    return 0;
}
if (args.Length >= 2 && args[0] == "gpu-gemm")
{
    GpuBench.Gemm(args[1], args.Length > 2 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 67, args.Length > 3 ? int.Parse(args[3]) : 20);
    return 0;
}
if (args.Length >= 1 && args[0] == "gemm")
{
    GemmSweep.Run(args.Contains("--quick"));
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(GemmSweep).Assembly).Run(args);
return 0;
