using ILGPU;
using ILGPU.Runtime;

namespace ManagedClip.Gpu;

/// <summary>
/// A weight matrix B of logical shape [K, N] on the device, uploaded once at load, stored row-major [K, N] (N contiguous):
/// the GEMM's 16 × 64 weight tiles are then 16 runs of 64 consecutive floats, read by 64 consecutive threads.
/// </summary>
public sealed class GpuMatrix : IDisposable
{
    readonly MemoryBuffer1D<float, Stride1D.Dense> _buffer;

    /// <summary>Input features (rows of B).</summary>
    public int K { get; }

    /// <summary>Output features (columns of B).</summary>
    public int N { get; }

    /// <summary>B row-major [K, N].</summary>
    public ArrayView<float> View => _buffer.View;

    GpuMatrix(MemoryBuffer1D<float, Stride1D.Dense> buffer, int k, int n)
    {
        _buffer = buffer; K = k; N = n;
    }

    /// <summary>
    /// A PyTorch <c>nn.Linear</c> weight, row-major [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>], as B = Wᵀ
    /// [K = in, N = out], so that the GEMM computes x·Wᵀ + b.
    /// </summary>
    public static GpuMatrix FromLinearWeight(GpuDevice device, ReadOnlySpan<float> weight, int outFeatures, int inFeatures)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckShape(weight.Length, outFeatures, inFeatures, nameof(weight));
        var transposed = new float[(long)inFeatures * outFeatures];
        for (int o = 0; o < outFeatures; o++)
            for (int i = 0; i < inFeatures; i++) transposed[(long)i * outFeatures + o] = weight[o * inFeatures + i];
        return new GpuMatrix(device.Upload<float>(transposed), inFeatures, outFeatures);
    }

    /// <summary>A row-major matrix [K = <paramref name="rows"/>, N = <paramref name="columns"/>] applied on the right (x·P), as it lies.</summary>
    public static GpuMatrix FromRowMajor(GpuDevice device, ReadOnlySpan<float> matrix, int rows, int columns)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckShape(matrix.Length, rows, columns, nameof(matrix));
        return new GpuMatrix(device.Upload(matrix), rows, columns);
    }

    static void CheckShape(int length, int rows, int columns, string name)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(name, rows, $"{name}: rows must be positive.");
        if (columns < 1) throw new ArgumentOutOfRangeException(name, columns, $"{name}: columns must be positive.");
        if (length != (long)rows * columns)
            throw new ArgumentException($"{name} has {length} elements, expected [{rows}, {columns}] = {(long)rows * columns}.", name);
    }

    public override string ToString() => $"[{K}, {N}]";

    public void Dispose() => _buffer.Dispose();
}

/// <summary>
/// A k×k convolution's weights on the device: PyTorch's [Cout, Cin, k, k] reordered once at load into the implicit GEMM's
/// operand [(ky, kx, ci), co] (the CPU's ConvolutionFilter order), with the window they slide over. Batch norm is folded
/// into weights and bias by the caller.
/// </summary>
public sealed class GpuConvolutionFilter : IDisposable
{
    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Padding { get; }

    /// <summary>The GEMM operand [k·k·Cin, Cout].</summary>
    public GpuMatrix Weights { get; }

    GpuConvolutionFilter(GpuMatrix weights, int inChannels, int outChannels, int kernel, int stride, int padding)
    {
        Weights = weights; InChannels = inChannels; OutChannels = outChannels; Kernel = kernel; Stride = stride; Padding = padding;
    }

    public static GpuConvolutionFilter FromWeights(GpuDevice device, ReadOnlySpan<float> weights, int outChannels, int inChannels,
        int kernel, int stride = 1, int padding = 0)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (outChannels < 1 || inChannels < 1 || kernel < 1 || stride < 1 || padding < 0)
            throw new ArgumentException($"channels, kernel and stride must be positive and padding non-negative " +
                $"({inChannels} → {outChannels}, {kernel}×{kernel} stride {stride} padding {padding}).", nameof(weights));
        int rows = kernel * kernel * inChannels;
        if (weights.Length != (long)outChannels * rows)
            throw new ArgumentException($"weights have {weights.Length} values, expected [{outChannels}, {inChannels}, {kernel}, {kernel}].", nameof(weights));
        var matrix = new float[(long)rows * outChannels];
        for (int co = 0; co < outChannels; co++)
            for (int ci = 0; ci < inChannels; ci++)
                for (int ky = 0; ky < kernel; ky++)
                    for (int kx = 0; kx < kernel; kx++)
                        matrix[((ky * kernel + kx) * inChannels + ci) * outChannels + co] = weights[((co * inChannels + ci) * kernel + ky) * kernel + kx];
        return new GpuConvolutionFilter(GpuMatrix.FromRowMajor(device, matrix, rows, outChannels), inChannels, outChannels, kernel, stride, padding);
    }

    /// <summary>Output side: ⌊(size + 2·padding − kernel) / stride⌋ + 1 (at least 1 when the window fits).</summary>
    public int OutputSize(int size)
    {
        if (size < 1 || size + 2 * Padding < Kernel)
            throw new ArgumentException($"a {Kernel}×{Kernel} kernel with padding {Padding} does not fit an input of {size}.");
        return (size + 2 * Padding - Kernel) / Stride + 1;
    }

    public override string ToString() => $"{InChannels} → {OutChannels}, {Kernel}×{Kernel} stride {Stride} padding {Padding}";

    public void Dispose() => Weights.Dispose();
}
