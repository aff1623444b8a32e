#if GPU_BACKEND
using ManagedClip.Gpu;
#endif

namespace ManagedClip.Cli;

/// <summary>
/// --device: where the forward passes run. The GPU devices come from ManagedClip.Gpu (ILGPU), which compiles its kernels at run
/// time (Reflection.Emit) and so is part of the JIT build only; the Native AOT command runs on the CPU and says so when asked for more.
/// </summary>
internal static class Devices
{
    public static readonly (string, string) Option = ("--device cpu|cuda|opencl|ilgpu-cpu",
        "where the model runs (default cpu); cuda, opencl and ilgpu-cpu (ILGPU's CPU accelerator: the GPU kernels, slowly, without a GPU) need the JIT build");

    static readonly string[] Names = ["cpu", "cuda", "opencl", "ilgpu-cpu"];

    /// <summary>Whether this build has the GPU backend.</summary>
    public static bool HaveGpu { get; } =
#if GPU_BACKEND
        true;
#else
        false;
#endif

    /// <summary>The device <paramref name="name"/> names (null: the CPU), opened for the rest of the process.</summary>
    public static ClipDevice Open(string? name)
    {
        if (name is null or "cpu") return ClipDevice.Cpu;
        if (!Names.Contains(name)) throw new UsageException($"--device must be one of {string.Join(", ", Names)}, got '{name}'");
#if GPU_BACKEND
        return OpenGpu(name);
#else
        throw new ClipException($"--device {name}: this managedclip is the Native AOT build, which runs on the CPU only (the GPU backend " +
            "compiles its kernels at run time, which Native AOT cannot do); use the JIT build (dotnet run --project src/ManagedClip.Cli, or dotnet build)");
#endif
    }

#if GPU_BACKEND
    /// <summary>
    /// A method of its own, never inlined, so that a command on the CPU does not load ILGPU at all (JIT-compiling a method loads the
    /// assemblies its calls name). The device lives as long as the process: every model the command loads uses it.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static ClipDevice OpenGpu(string name) =>
        GpuDevice.Open(name switch { "cuda" => GpuDeviceKind.Cuda, "opencl" => GpuDeviceKind.OpenCL, _ => GpuDeviceKind.Cpu });
#endif

    /// <summary>The devices <c>info</c> lists: the CPU, and what ILGPU finds in the JIT build.</summary>
    public static IEnumerable<(string Kind, string Name, long MemoryBytes)> List()
    {
        yield return ("cpu", ClipDevice.Cpu.Name, 0);
#if GPU_BACKEND
        foreach (var device in GpuDevice.List())
            yield return (device.Kind switch { GpuDeviceKind.Cuda => "cuda", GpuDeviceKind.OpenCL => "opencl", _ => "ilgpu-cpu" }, device.Name,
                device.Kind == GpuDeviceKind.Cpu ? 0 : device.MemoryBytes);   // the CPU accelerator reports no real memory size
#endif
    }
}
