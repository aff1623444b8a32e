using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace ManagedClip.Gpu;

/// <summary>Which ILGPU backend a <see cref="GpuDevice"/> runs on.</summary>
public enum GpuDeviceKind
{
    /// <summary>An NVIDIA GPU through the CUDA driver.</summary>
    Cuda,
    /// <summary>A GPU through an OpenCL 2.0+ driver.</summary>
    OpenCL,
    /// <summary>ILGPU's CPU accelerator: the same kernels, run by CPU threads (slow; for tests and machines without a GPU).</summary>
    Cpu,
}

/// <summary>One device ILGPU can open: its kind, its index among the devices of that kind, its name and its memory in bytes.</summary>
public readonly record struct GpuDeviceInfo(GpuDeviceKind Kind, int Index, string Name, long MemoryBytes)
{
    /// <summary>The device for a listing, e.g. "CUDA 0: NVIDIA H200 (139.8 GiB)".</summary>
    public override string ToString() => $"{GpuDevice.Describe(Kind)} {Index}: {Name} ({MemoryBytes / (1024.0 * 1024 * 1024):0.#} GiB)";
}

/// <summary>A device that cannot be opened or used: what was asked, and what was found instead.</summary>
public sealed class GpuException : ClipException
{
    /// <summary>An exception with this message.</summary>
    public GpuException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public GpuException(string message, Exception inner) : base(message, inner) { }

    /// <summary>For a device out of memory: the bytes the refused allocation asked for (0 for any other failure).</summary>
    public long RequestedBytes { get; init; }
}

/// <summary>
/// One ILGPU <see cref="Context"/> and one <see cref="ILGPU.Runtime.Accelerator"/> on it, with the accelerator's default stream,
/// on which every kernel of <see cref="Kernels"/> is launched (in order). Kernels are compiled once per device, on first use
/// of <see cref="Kernels"/>.
/// <para>
/// The context is built for speed: optimization level O2, no debug assertions or IO (whatever the build configuration of
/// the caller), ILGPU.Algorithms enabled so that exp/sqrt have device implementations on CUDA and OpenCL without LibDevice.
/// </para>
/// </summary>
public sealed partial class GpuDevice : ClipDevice, IDisposable
{
    /// <summary>
    /// The simulated GPU the CPU accelerator presents: warps of 32 threads, 8 warps (256 threads) per group, so every kernel's
    /// group size (at most 256) is valid on it, as on any CUDA or OpenCL GPU; one multiprocessor (ILGPU runs one OS thread per
    /// simulated thread, and this machine class has few cores).
    /// </summary>
    static readonly CPUDevice CpuSimulator = new(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: 1);

    readonly Context _context;
    readonly Lock _compileLock = new();
    GpuKernels? _kernels;
    bool _disposed;

    /// <summary>The kind of accelerator: CUDA, OpenCL or ILGPU's CPU accelerator.</summary>
    public GpuDeviceKind Kind { get; }
    /// <summary>The device's index among the devices of its <see cref="Kind"/>.</summary>
    public int Index { get; }
    /// <summary>The device's name as its driver reports it (e.g. "NVIDIA H200").</summary>
    public override string Name { get; }
    /// <summary>The device's memory in bytes.</summary>
    public long MemoryBytes { get; }

    /// <summary>The ILGPU accelerator (for buffers and copies).</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The stream every launch of <see cref="Kernels"/> goes to.</summary>
    public AcceleratorStream Stream => Accelerator.DefaultStream;

    /// <summary>The kernels, compiled for this device on first use (once, whichever thread asks first).</summary>
    public GpuKernels Kernels
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            lock (_compileLock) return _kernels ??= new GpuKernels(this);
        }
    }

    GpuDevice(Context context, Accelerator accelerator, GpuDeviceKind kind, int index)
    {
        _context = context;
        Accelerator = accelerator;
        Kind = kind;
        Index = index;
        Name = accelerator.Name;
        MemoryBytes = accelerator.MemorySize;
    }

    static Context CreateContext() =>
        Context.Create(builder => builder
            .Cuda()
            .OpenCL()
            .CPU(CpuSimulator)
            .EnableAlgorithms()
            .Optimize(OptimizationLevel.O2));

    /// <summary>
    /// Opens device <paramref name="index"/> of <paramref name="kind"/>. Throws <see cref="GpuException"/> naming what was asked and
    /// what ILGPU found when there is no such device or it cannot be started.
    /// </summary>
    /// <param name="kind">CUDA, OpenCL, or ILGPU's CPU accelerator.</param>
    /// <param name="index">The device's index among those of <paramref name="kind"/> (see <see cref="List"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="kind"/> is not a member of <see cref="GpuDeviceKind"/>, or <paramref name="index"/> is negative.</exception>
    /// <exception cref="GpuException">There is no such device (no driver, or fewer devices), or it cannot be started.</exception>
    /// <example>
    /// <code>
    /// using var device = GpuDevice.Open(GpuDeviceKind.Cuda);
    /// using var model = ClipModel.Load("ViT-B-32.safetensors", new ClipModelOptions { Device = device });
    /// </code>
    /// </example>
    public static GpuDevice Open(GpuDeviceKind kind, int index = 0)
    {
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown device kind.");
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), index, "The device index must be non-negative.");
        Context context;
        try { context = CreateContext(); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new GpuException($"ILGPU could not start ({e.Message}); no {Describe(kind)} device can be opened.", e);
        }
        try
        {
            var devices = DevicesOf(context, kind);
            if (devices.Count == 0)
                throw new GpuException($"no {Describe(kind)} device found (ILGPU found: {Found(context)}){Hint(kind)}");
            if (index >= devices.Count)
                throw new GpuException($"no {Describe(kind)} device {index}: ILGPU found {devices.Count} ({string.Join(", ", devices.Select((d, i) => $"{i}: {d.Name}"))}).");
            Accelerator accelerator;
            try { accelerator = devices[index].CreateAccelerator(context); }
            catch (Exception e) when (e is not OutOfMemoryException and not GpuException)
            {
                throw new GpuException($"{Describe(kind)} device {index} ({devices[index].Name}) was found but could not be started: {e.Message}", e);
            }
            return new GpuDevice(context, accelerator, kind, index);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Every device ILGPU finds (CUDA, OpenCL, then the CPU accelerator), for <c>info</c>. Never throws for a missing driver.</summary>
    public static IReadOnlyList<GpuDeviceInfo> List()
    {
        Context context;
        try { context = CreateContext(); }
        catch (Exception e) when (e is not OutOfMemoryException) { return []; }
        using (context)
        {
            var found = new List<GpuDeviceInfo>();
            foreach (var kind in new[] { GpuDeviceKind.Cuda, GpuDeviceKind.OpenCL, GpuDeviceKind.Cpu })
            {
                var devices = DevicesOf(context, kind);
                for (int i = 0; i < devices.Count; i++) found.Add(new GpuDeviceInfo(kind, i, devices[i].Name, devices[i].MemorySize));
            }
            return found;
        }
    }

    static IReadOnlyList<Device> DevicesOf(Context context, GpuDeviceKind kind)
    {
        try
        {
            return kind switch
            {
                GpuDeviceKind.Cuda => ToList(context.GetCudaDevices()),
                GpuDeviceKind.OpenCL => ToList(context.GetCLDevices()),
                _ => ToList(context.GetCPUDevices()),
            };
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or ExternalException)
        {
            return [];   // a missing or broken driver library: no devices of that kind
        }
    }

    static List<Device> ToList<TDevice>(Context.DeviceCollection<TDevice> devices) where TDevice : Device
    {
        var list = new List<Device>();
        foreach (var device in devices) list.Add(device);
        return list;
    }

    /// <summary>What ILGPU did find, for the message of a failed <see cref="Open"/>.</summary>
    static string Found(Context context)
    {
        var names = context.Devices.Select(d => d.AcceleratorType switch
        {
            AcceleratorType.CPU => "CPU accelerator",
            AcceleratorType.Cuda => $"CUDA {d.Name}",
            AcceleratorType.OpenCL => $"OpenCL {d.Name}",
            _ => d.Name,
        }).ToList();
        return names.Count == 0 ? "nothing" : string.Join(", ", names);
    }

    static string Hint(GpuDeviceKind kind) => kind switch
    {
        GpuDeviceKind.Cuda => "; is the NVIDIA driver installed?",
        GpuDeviceKind.OpenCL => "; is an OpenCL 2.0 driver (ICD) installed?",
        _ => ".",
    };

    internal static string Describe(GpuDeviceKind kind) => kind switch
    {
        GpuDeviceKind.Cuda => "CUDA",
        GpuDeviceKind.OpenCL => "OpenCL",
        _ => "ILGPU CPU",
    };

    /// <summary>
    /// The most bytes one allocation may take (tests set it to stand for a small device, whose allocations then fail as a full one's do).
    /// </summary>
    internal long AllocationLimitBytes { get; set; } = long.MaxValue;

    /// <summary>A zeroed buffer of <paramref name="length"/> floats on the device; a device out of memory becomes a <see cref="GpuException"/> saying how much was asked.</summary>
    public MemoryBuffer1D<float, Stride1D.Dense> Allocate(long length) => Allocate<float>(length);

    /// <summary>A zeroed buffer of <paramref name="length"/> elements on the device (ids are <c>int</c>).</summary>
    public MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long bytes = length * Marshal.SizeOf<T>();
        try
        {
            if (bytes > AllocationLimitBytes) throw new OutOfMemoryException($"more than the {AllocationLimitBytes} bytes one allocation may take here");
            var buffer = Accelerator.Allocate1D<T>(length);
            buffer.View.MemSetToZero(Stream);
            return buffer;
        }
        catch (Exception e) when (e is AcceleratorException or OutOfMemoryException)
        {
            throw new GpuException($"{Describe(Kind)} device {Index} ({Name}) could not allocate {bytes / (1024.0 * 1024):0.#} MiB " +
                $"({Accelerator.MemorySize / (1024.0 * 1024):0} MiB in all): {e.Message}", e) { RequestedBytes = bytes };
        }
    }

    /// <summary>A new device buffer holding <paramref name="values"/>.</summary>
    public MemoryBuffer1D<T, Stride1D.Dense> Upload<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        var buffer = Allocate<T>(values.Length);
        CopyToDevice(values, buffer.View);
        return buffer;
    }

    /// <summary>Copies <paramref name="source"/> into the start of <paramref name="destination"/> (in stream order).</summary>
    public void CopyToDevice<T>(ReadOnlySpan<T> source, ArrayView<T> destination) where T : unmanaged
    {
        if (source.Length > destination.Length)
            throw new ArgumentException($"{source.Length} values do not fit a view of {destination.Length}.", nameof(destination));
        if (source.IsEmpty) return;
        try { destination.SubView(0, source.Length).CopyFromCPU(Stream, ref MemoryMarshal.GetReference(source), source.Length); }
        catch (Exception e) when (e is AcceleratorException or InvalidOperationException)
        {
            throw new GpuException($"copying {source.Length} values to {this} failed: {e.Message}", e);
        }
    }

    /// <summary>Copies the first <paramref name="destination"/>.Length values of <paramref name="source"/> back; waits for the stream.</summary>
    public void CopyToHost<T>(ArrayView<T> source, Span<T> destination) where T : unmanaged
    {
        if (destination.Length > source.Length)
            throw new ArgumentException($"a view of {source.Length} cannot fill {destination.Length} values.", nameof(destination));
        if (destination.IsEmpty) return;
        try { source.SubView(0, destination.Length).CopyToCPU(Stream, ref MemoryMarshal.GetReference(destination), destination.Length); }
        catch (Exception e) when (e is AcceleratorException or InvalidOperationException)
        {
            throw new GpuException($"copying {destination.Length} values back from {this} failed (a kernel before it may have failed): {e.Message}", e);
        }
        Synchronize();
    }

    /// <summary>Waits for everything launched so far; a kernel failure surfaces here as a <see cref="GpuException"/>.</summary>
    public void Synchronize()
    {
        try { Stream.Synchronize(); }
        catch (Exception e) when (e is AcceleratorException or InvalidOperationException)
        {
            throw new GpuException($"a kernel on {Describe(Kind)} device {Index} ({Name}) failed: {e.Message}", e);
        }
    }

    /// <summary>The device, e.g. "CUDA device 0: NVIDIA H200".</summary>
    public override string ToString() => $"{Describe(Kind)} device {Index}: {Name}";

    /// <summary>Releases the kernels, the accelerator and the ILGPU context. Models on this device must be disposed first. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _kernels?.Dispose();
        Accelerator.Dispose();
        _context.Dispose();
    }
}
