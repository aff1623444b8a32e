using ManagedClip.Backends;
using ManagedClip.Kernels;

namespace ManagedClip.Gpu;

public sealed partial class GpuDevice
{
    /// <summary>How the weights of models loaded from now on are stored on the device: fp32 (the default) or fp16, widened to fp32 in registers.</summary>
    public GpuWeightPrecision WeightPrecision { get; set; }

    /// <summary>
    /// Held while a model uploads weights or runs a call: every launch and copy goes to the one stream, and ILGPU's launches are not
    /// made from two threads at once. Models sharing the device take turns, call by call.
    /// </summary>
    internal object StreamLock { get; } = new();

    internal override ComputeBackend CreateBackend(KernelContext kernels)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new GpuBackend(this, WeightPrecision);
    }
}
