using ManagedClip.Backends;
using ManagedClip.Backends.Cpu;
using ManagedClip.Kernels;

namespace ManagedClip;

/// <summary>
/// Where a model's forward passes run (<see cref="ClipModelOptions.Device"/>). <see cref="Cpu"/>, the default, is the engine's SIMD
/// kernels; the ManagedClip.Gpu package adds devices (CUDA, OpenCL, ILGPU's CPU accelerator). Image decoding and preprocessing, and
/// tokenization, always run on the CPU. A device can serve several models; whoever made it disposes it after them.
/// </summary>
public abstract class ClipDevice
{
    /// <summary>Only this library and its backend packages define devices.</summary>
    private protected ClipDevice() { }

    /// <summary>The CPU kernels: <see cref="ClipModelOptions.MaxThreads"/> threads at the machine's widest SIMD level.</summary>
    public static ClipDevice Cpu { get; } = new CpuDevice();

    /// <summary>What the device is, for a user ("CPU (AVX2, 2 threads)", "CUDA 0: NVIDIA H200").</summary>
    public abstract string Name { get; }

    /// <summary>The device's <see cref="Name"/>.</summary>
    public override string ToString() => Name;

    /// <summary>A backend for one model on this device; <paramref name="kernels"/> is the host's (threads, SIMD level) for its CPU work.</summary>
    internal abstract ComputeBackend CreateBackend(KernelContext kernels);

    sealed class CpuDevice : ClipDevice
    {
        public override string Name => $"CPU ({Simd.Describe(Simd.Best)})";

        internal override ComputeBackend CreateBackend(KernelContext kernels) => new CpuBackend(kernels);
    }
}
