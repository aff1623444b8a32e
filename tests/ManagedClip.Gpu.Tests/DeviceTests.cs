namespace ManagedClip.Gpu.Tests;

[Collection(TestDeviceCollection.Name)]
public sealed class DeviceTests(TestDevice device)
{
    // The development machines have no GPU, and there these tests check the errors; where ILGPU does find a device of the
    // kind, they check that it opens instead (so the project's tests also pass on a GPU machine).

    [Fact]
    public void OpeningCudaWithoutAGpuIsAClearGpuException()
    {
        if (Has(GpuDeviceKind.Cuda)) { OpensAs(GpuDeviceKind.Cuda); return; }
        // No NVIDIA GPU or driver: the error names what was asked, what was found, and the likely cause.
        var e = Assert.Throws<GpuException>(() => GpuDevice.Open(GpuDeviceKind.Cuda));
        Assert.StartsWith("no CUDA device found (ILGPU found: ", e.Message);
        Assert.Contains("CPU accelerator", e.Message);
        Assert.EndsWith("is the NVIDIA driver installed?", e.Message);
    }

    [Fact]
    public void OpeningOpenCLWithoutADriverIsAClearGpuException()
    {
        if (Has(GpuDeviceKind.OpenCL)) { OpensAs(GpuDeviceKind.OpenCL); return; }
        var e = Assert.Throws<GpuException>(() => GpuDevice.Open(GpuDeviceKind.OpenCL));
        Assert.StartsWith("no OpenCL device found (ILGPU found: ", e.Message);
        Assert.EndsWith("is an OpenCL 2.0 driver (ICD) installed?", e.Message);
    }

    static bool Has(GpuDeviceKind kind) => GpuDevice.List().Any(d => d.Kind == kind);

    static void OpensAs(GpuDeviceKind kind)
    {
        using var device = GpuDevice.Open(kind);
        Assert.Equal(kind, device.Kind);
        Assert.True(device.MemoryBytes > 0);
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
    public void ListHasTheCpuAccelerator()
    {
        var devices = GpuDevice.List();
        var cpuAccelerator = Assert.Single(devices, d => d.Kind == GpuDeviceKind.Cpu);
        Assert.Equal(0, cpuAccelerator.Index);
        Assert.Equal("CPUAccelerator", cpuAccelerator.Name);
        // Indices count per kind, from 0.
        foreach (var kind in devices.Select(d => d.Kind).Distinct())
            Assert.Equal(Enumerable.Range(0, devices.Count(d => d.Kind == kind)), devices.Where(d => d.Kind == kind).Select(d => d.Index));
    }

    [Fact]
    public void TheSharedDeviceIsTheOneAskedFor()
    {
        Assert.Equal(TestDevice.RequestedKind(), device.Device.Kind);
        Assert.Same(device.Device.Kernels, device.Device.Kernels);   // compiled once per device
    }

    [Fact]
    public void ValuesRoundTripThroughTheDevice()
    {
        float[] values = Data.Random(37, seed: 1);
        Assert.Equal(values, device.Download(device.Upload(values)));
    }
}
