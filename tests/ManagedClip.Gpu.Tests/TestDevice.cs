using ILGPU;
using ILGPU.Runtime;

namespace ManagedClip.Gpu.Tests;

/// <summary>
/// One device for the whole test run (opening a device and compiling the kernels is the slow part), with helpers to move
/// arrays on and off it. The buffers a test uploads are released at the end of the run. The device is ILGPU's CPU
/// accelerator, unless MANAGEDCLIP_GPU_TEST_DEVICE names another kind (cuda or opencl): on a GPU machine,
/// <c>MANAGEDCLIP_GPU_TEST_DEVICE=cuda dotnet test tests/ManagedClip.Gpu.Tests -c Release</c> checks every kernel on the GPU.
/// </summary>
public sealed class TestDevice : IDisposable
{
    public const string Variable = "MANAGEDCLIP_GPU_TEST_DEVICE";

    readonly List<IDisposable> _buffers = [];

    public GpuDevice Device { get; } = GpuDevice.Open(RequestedKind());

    /// <summary>The kind MANAGEDCLIP_GPU_TEST_DEVICE asks for; the CPU accelerator by default.</summary>
    public static GpuDeviceKind RequestedKind() => Environment.GetEnvironmentVariable(Variable)?.Trim().ToLowerInvariant() switch
    {
        null or "" or "cpu" => GpuDeviceKind.Cpu,
        "cuda" => GpuDeviceKind.Cuda,
        "opencl" => GpuDeviceKind.OpenCL,
        var other => throw new InvalidOperationException($"{Variable}={other}: expected cpu, cuda or opencl."),
    };
    public GpuKernels Kernels => Device.Kernels;

    public ArrayView<float> Upload(float[] values)
    {
        var buffer = Device.Upload<float>(values);
        lock (_buffers) _buffers.Add(buffer);
        return buffer.View;
    }

    public ArrayView<int> Upload(int[] values)
    {
        var buffer = Device.Upload<int>(values);
        lock (_buffers) _buffers.Add(buffer);
        return buffer.View;
    }

    public ArrayView<float> Zeros(long length)
    {
        var buffer = Device.Allocate(length);
        lock (_buffers) _buffers.Add(buffer);
        return buffer.View;
    }

    public float[] Download(ArrayView<float> view)
    {
        Device.Synchronize();
        var values = new float[view.Length];
        Device.CopyToHost(view, values);
        return values;
    }

    public void Dispose()
    {
        foreach (var buffer in _buffers) buffer.Dispose();
        Device.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class TestDeviceCollection : ICollectionFixture<TestDevice>
{
    public const string Name = "the test device";
}

static class Data
{
    /// <summary>Uniform values in [−1, 1) from a fixed seed.</summary>
    public static float[] Random(long length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (long i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return values;
    }

    /// <summary>max|actual − expected| / max|expected| ≤ tolerance, over the indices <paramref name="compare"/> selects (all by default).</summary>
    public static void Close(float[] expected, float[] actual, double tolerance, Func<int, bool>? compare = null)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxExpected = 0, maxDifference = 0;
        int worst = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            if (compare is not null && !compare(i)) continue;
            Assert.False(float.IsNaN(actual[i]), $"NaN at {i}");
            maxExpected = Math.Max(maxExpected, Math.Abs(expected[i]));
            double d = Math.Abs(actual[i] - (double)expected[i]);
            if (d > maxDifference) { maxDifference = d; worst = i; }
        }
        Assert.True(maxExpected > 0, "the expected values are all zero: the comparison would prove nothing");
        double relative = maxDifference / maxExpected;
        Assert.True(relative <= tolerance,
            $"relative error {relative:E2} > {tolerance:E0} (worst at {worst}: expected {(worst >= 0 ? expected[worst] : 0)}, got {(worst >= 0 ? actual[worst] : 0)})");
    }
}
