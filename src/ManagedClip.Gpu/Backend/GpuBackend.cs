using ILGPU;
using ILGPU.Runtime;
using ManagedClip.Backends;
using ManagedClip.Kernels;

namespace ManagedClip.Gpu;

/// <summary>Device memory as tensor storage: one ILGPU buffer.</summary>
internal sealed class DeviceStorage(MemoryBuffer1D<float, Stride1D.Dense> buffer) : TensorStorage
{
    public MemoryBuffer1D<float, Stride1D.Dense> Buffer { get; } = buffer;
    public override int Length => (int)Buffer.Length;

    /// <summary>The device view of a GPU tensor (empty for the default tensor).</summary>
    public static ArrayView<float> Of(Tensor tensor) =>
        tensor.Storage is null || tensor.Length == 0 ? default
        : tensor.Storage is DeviceStorage device ? device.Buffer.View.SubView(tensor.Offset, tensor.Length)
        : throw new ArgumentException($"a tensor of another backend ({tensor.Storage.GetType().Name}) was given to the GPU backend");
}

/// <summary>A linear layer on the device: B [in, out] and the bias [out] (or none).</summary>
internal sealed class GpuLinear(GpuMatrix weight, Tensor bias) : LinearWeights(weight.K, weight.N)
{
    public GpuMatrix Weight { get; } = weight;
    public Tensor Bias { get; } = bias;
}

/// <summary>A convolution on the device, run as an implicit GEMM: it needs no scratch.</summary>
internal sealed class GpuConvolution(GpuConvolutionFilter filter, Tensor bias, ConvolutionGeometry geometry)
    : ConvolutionWeights(filter.InChannels, filter.OutChannels, geometry)
{
    public GpuConvolutionFilter Filter { get; } = filter;
    public Tensor Bias { get; } = bias;
    public override int MinimumScratch => 0;
    public override long ScratchFor(int height, int width) => 0;
}

/// <summary>The attention pool's k_proj and v_proj weights [D, D] and v_proj's bias [D] on the device, as they lie.</summary>
internal sealed class GpuAttentionPool(Tensor keyWeight, Tensor valueWeight, Tensor valueBias, int width, int heads) : AttentionPoolWeights(width, heads)
{
    public Tensor KeyWeight { get; } = keyWeight;
    public Tensor ValueWeight { get; } = valueWeight;
    public Tensor ValueBias { get; } = valueBias;
    public override long ScratchFor(int batch, int tokens) => GpuKernels.AttentionPoolScratchLength(batch, tokens, Width, Heads);
}

/// <summary>
/// The GPU backend: the operator set on <see cref="GpuKernels"/>, over tensors in device memory. Weights are uploaded once, at load;
/// a call's tensors are device buffers allocated for the call and freed at its end; a batch runs whole (no host-thread split) unless
/// its tensors do not fit the device's memory, and one call at a time uses the device's stream (concurrent calls, of this model or of
/// another on the same device, wait for each other: <see cref="GpuDevice.StreamLock"/>).
/// </summary>
internal sealed class GpuBackend(GpuDevice device, GpuWeightPrecision precision) : ComputeBackend
{
    readonly List<IDisposable> _weights = [];
    bool _disposed;

    /// <summary>
    /// A ResNet's activation buffers may be 1 GiB each (the CPU's are 32 MiB, sized for its caches): a device wants whole batches,
    /// and four such buffers still leave most of a GPU's memory to the weights and the other tensors.
    /// </summary>
    public override long ActivationBudget => 1L << 28;

    /// <summary>A weight the backend keeps until it is disposed. Called with the device's stream lock held.</summary>
    T Keep<T>(T weight) where T : IDisposable
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _weights.Add(weight);
        return weight;
    }

    Tensor Upload(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return default;
        lock (device.StreamLock)
        {
            var buffer = Keep(device.Allocate(values.Length));
            device.CopyToDevice(values, buffer.View);
            return new Tensor(new DeviceStorage(buffer), 0, values.Length);
        }
    }

    public override Tensor Constant(float[] values) => Upload(values);

    public override LinearWeights Linear(ReadOnlySpan<float> weight, float[]? bias, int inFeatures, int outFeatures)
    {
        GpuMatrix matrix;
        lock (device.StreamLock) matrix = Keep(GpuMatrix.FromLinearWeight(device, weight, outFeatures, inFeatures, precision));
        return new GpuLinear(matrix, Upload(bias ?? []));
    }

    public override LinearWeights Projection(ReadOnlySpan<float> weight, int inFeatures, int outFeatures)
    {
        lock (device.StreamLock) return new GpuLinear(Keep(GpuMatrix.FromRowMajor(device, weight, inFeatures, outFeatures, precision)), default);
    }

    public override ConvolutionWeights Convolution(ReadOnlySpan<float> weight, float[] bias, int inChannels, int outChannels, ConvolutionGeometry geometry)
    {
        GpuConvolutionFilter filter;
        lock (device.StreamLock)
            filter = Keep(GpuConvolutionFilter.FromWeights(device, weight, outChannels, inChannels, geometry.Kernel, geometry.Stride, geometry.Padding, precision));
        return new GpuConvolution(filter, Upload(bias), geometry);
    }

    public override AttentionPoolWeights AttentionPool(ReadOnlySpan<float> keyWeight, ReadOnlySpan<float> valueWeight, float[] valueBias, int width, int heads) =>
        new GpuAttentionPool(Upload(keyWeight), Upload(valueWeight), Upload(valueBias), width, heads);

    public override void Run(int batch, int threads, Action<int, int, Operators> body)
    {
        lock (device.StreamLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            RunPart(0, batch, body);
        }
    }

    /// <summary>
    /// Items [start, start + count) in one go, or, when their tensors do not fit the device, half of them at a time (each item's features
    /// are the same either way). A single item that does not fit is the device's error, which says how much it asked for.
    /// </summary>
    void RunPart(int start, int count, Action<int, int, Operators> body)
    {
        try
        {
            using var operators = new GpuOperators(device);
            body(start, count, operators);
        }
        catch (GpuException e) when (e.RequestedBytes > 0 && count > 1)
        {
            int half = count / 2;
            RunPart(start, half, body);
            RunPart(start + half, count - half, body);
        }
    }

    public override void Dispose()
    {
        lock (device.StreamLock)
        {
            if (_disposed) return;
            _disposed = true;
            device.Synchronize();
            foreach (var weight in _weights) weight.Dispose();
        }
    }
}

/// <summary>One forward call's operators on the device: each is one kernel launch (two for the token ids' upload), in stream order.</summary>
internal sealed class GpuOperators(GpuDevice device) : Operators
{
    readonly GpuKernels _kernels = device.Kernels;
    readonly List<IDisposable> _buffers = [];

    static ArrayView<float> View(Tensor tensor) => DeviceStorage.Of(tensor);

    public override Tensor Rent(int length)
    {
        var buffer = device.Allocate(Math.Max(1, length));
        _buffers.Add(buffer);
        return new Tensor(new DeviceStorage(buffer), 0, length);
    }

    ArrayView<int> Ids(ReadOnlySpan<int> values)
    {
        var buffer = device.Allocate<int>(Math.Max(1, values.Length));
        _buffers.Add(buffer);
        device.CopyToDevice(values, buffer.View);
        return buffer.View.SubView(0, values.Length);
    }

    public override void Upload(ReadOnlySpan<float> source, Tensor destination) => device.CopyToDevice(source, View(destination));

    public override void Download(Tensor source, Span<float> destination)
    {
        device.Synchronize();   // a failed kernel is reported as such, not as a failed copy
        device.CopyToHost(View(source), destination);
    }

    public override void Linear(LinearWeights weights, Tensor x, int rows, Tensor y, Activation activation = Activation.None)
    {
        var linear = (GpuLinear)weights;
        _kernels.Gemm(View(x), rows, linear.InFeatures, linear.Weight, View(y), linear.OutFeatures, View(linear.Bias), activation);
    }

    public override void LinearAddTo(LinearWeights weights, Tensor x, int rows, Tensor y)
    {
        var linear = (GpuLinear)weights;
        var output = View(y);
        _kernels.Gemm(View(x), rows, linear.InFeatures, linear.Weight, output, linear.OutFeatures, View(linear.Bias), Activation.None, residual: output);
    }

    public override void LayerNorm(LayerNormWeights weights, Tensor x, Tensor y, int rows) =>
        _kernels.LayerNorm(View(x), rows, weights.Width, weights.Width, View(y), weights.Width, View(weights.Gamma), View(weights.Beta), weights.Epsilon);

    public override void Attention(Tensor qkv, Tensor output, int width, AttentionShape shape)
    {
        var rows = View(qkv);
        int stride = 3 * width;
        // q, k and v are column blocks of the fused rows: views starting at columns 0, d and 2d, row stride 3d.
        _kernels.Attention(rows, stride, rows.SubView(width, rows.Length - width), stride, rows.SubView(2 * width, rows.Length - 2 * width), stride,
            View(output), width, width, shape.Batch, shape.QueryLength, shape.KeyLength, shape.Heads, shape.Causal);
    }

    public override void Convolution(ConvolutionWeights weights, Tensor x, ImageGeometry shape, Tensor y, Tensor scratch,
        Activation activation = Activation.None, Tensor residual = default)
    {
        var convolution = (GpuConvolution)weights;
        _kernels.Convolution(View(x), shape.Batch, shape.Height, shape.Width, convolution.Filter, View(y), View(convolution.Bias), activation, View(residual));
    }

    public override void AveragePool(Tensor x, ImageGeometry shape, int window, Tensor y) =>
        _kernels.AveragePool(View(x), shape.Batch, shape.Height, shape.Width, shape.Channels, window, View(y));

    public override void AttentionPool(AttentionPoolWeights weights, Tensor query, Tensor tokens, int batch, Tensor output, Tensor scratch)
    {
        var pool = (GpuAttentionPool)weights;
        _kernels.AttentionPoolHeads(View(query), View(tokens), batch, tokens.Length / (batch * pool.Width), pool.Width, pool.Heads,
            View(pool.KeyWeight), View(pool.ValueWeight), View(pool.ValueBias), View(scratch), View(output));
    }

    public override void ToChannelsLast(Tensor pixels, ImageGeometry shape, Tensor y) =>
        _kernels.ToChannelsLast(View(pixels), shape.Batch, shape.Channels, shape.Height, shape.Width, View(y));

    public override void Patchify(Tensor pixels, int batch, int imageSize, int patchSize, Tensor columns) =>
        _kernels.Patchify(View(pixels), batch, 3, imageSize, patchSize, View(columns));

    public override void AssembleTokens(Tensor first, Tensor rest, Tensor positional, int batch, int width, Tensor output) =>
        _kernels.AssembleTokens(View(first), firstPerItem: first.Length != width, View(rest), View(positional), View(output),
            batch, positional.Length / width, width);

    public override void EmbedTokens(Tensor table, ReadOnlySpan<int> ids, int length, Tensor positional, int width, Tensor output) =>
        _kernels.EmbedTokens(Ids(ids), View(table), table.Length / width, View(positional), View(output), ids.Length / length, length, width);

    public override void GatherRows(Tensor x, ReadOnlySpan<int> rows, int width, Tensor output) =>
        _kernels.GatherRows(View(x), x.Length / width, width, width, Ids(rows), rows.Length, View(output), width);

    public override void Dispose()
    {
        device.Synchronize();   // the call's kernels may still read its buffers
        foreach (var buffer in _buffers) buffer.Dispose();
        _buffers.Clear();
    }
}
