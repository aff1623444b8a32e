namespace ManagedClip.Gpu.Tests;

[Collection(CpuAcceleratorCollection.Name)]
public sealed class DeviceTests(CpuAccelerator cpu)
{
    [Fact]
    public void OpeningCudaWithoutAGpuIsAClearGpuException()
    {
        // This machine has no NVIDIA GPU or driver: the error names what was asked, what was found, and the likely cause.
        var e = Assert.Throws<GpuException>(() => GpuDevice.Open(GpuDeviceKind.Cuda));
        Assert.StartsWith("no CUDA device found (ILGPU found: ", e.Message);
        Assert.Contains("CPU accelerator", e.Message);
        Assert.EndsWith("is the NVIDIA driver installed?", e.Message);
    }

    [Fact]
    public void OpeningADeviceIndexPastTheLastIsAGpuException()
    {
        var e = Assert.Throws<GpuException>(() => GpuDevice.Open(GpuDeviceKind.Cpu, 3));
        Assert.Equal("no ILGPU CPU device 3: ILGPU found 1 (0: CPUAccelerator).", e.Message);
    }

    [Fact]
    public void ANegativeIndexIsAnArgumentError()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => GpuDevice.Open(GpuDeviceKind.Cpu, -1));
        Assert.Equal("index", e.ParamName);
    }

    [Fact]
    public void ListHasTheCpuAcceleratorAndNoCudaDevice()
    {
        var devices = GpuDevice.List();
        Assert.Contains(devices, d => d.Kind == GpuDeviceKind.Cpu && d.Index == 0 && d.Name.Length > 0);
        Assert.DoesNotContain(devices, d => d.Kind == GpuDeviceKind.Cuda);
    }

    [Fact]
    public void TheSharedDeviceIsTheCpuAccelerator()
    {
        Assert.Equal(GpuDeviceKind.Cpu, cpu.Device.Kind);
        Assert.Same(cpu.Device.Kernels, cpu.Device.Kernels);   // compiled once per device
    }

    [Fact]
    public void ValuesRoundTripThroughTheDevice()
    {
        float[] values = Data.Random(37, seed: 1);
        Assert.Equal(values, cpu.Download(cpu.Upload(values)));
    }
}
