using ManagedClip.Backends;
using ManagedClip.Kernels;

namespace ManagedClip.Gpu;

public sealed partial class GpuDevice
{
    /// <summary>How the weights of models loaded from now on are stored on the device: fp32 (the default) or fp16, widened to fp32 in registers.</summary>
    public GpuWeightPrecision WeightPrecision { get; set; }

    internal override ComputeBackend CreateBackend(KernelContext kernels)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new GpuBackend(this, WeightPrecision);
    }
}
