using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace ManagedClip.Gpu;

/// <summary>How a <see cref="GpuMatrix"/> holds its weights on the device; the arithmetic is fp32 either way.</summary>
public enum GpuWeightPrecision
{
    /// <summary>fp32, as loaded: the results match the CPU's within float rounding.</summary>
    Float32,
    /// <summary>
    /// fp16 (round to nearest even), widened to fp32 in registers as the GEMM loads it: half the memory and half the bytes
    /// streamed per product; each weight carries a relative rounding error up to 2⁻¹¹.
    /// </summary>
    Float16,
}

/// <summary>
/// A weight matrix B of logical shape [K, N] on the device, uploaded once at load, stored row-major [K, N] (N contiguous):
/// the GEMM's 16 × 64 weight tiles are then 16 runs of 64 consecutive weights, read by 64 consecutive threads.
/// </summary>
public sealed class GpuMatrix : IDisposable
{
    readonly MemoryBuffer1D<float, Stride1D.Dense>? _single;
    readonly MemoryBuffer1D<Half, Stride1D.Dense>? _half;

    /// <summary>Input features (rows of B).</summary>
    public int K { get; }

    /// <summary>Output features (columns of B).</summary>
    public int N { get; }

    /// <summary>How the weights are stored on the device: fp32 or fp16 (computed in fp32 either way).</summary>
    public GpuWeightPrecision Precision => _half is null ? GpuWeightPrecision.Float32 : GpuWeightPrecision.Float16;

    /// <summary>B row-major [K, N] in fp32 (<see cref="GpuWeightPrecision.Float32"/> only).</summary>
    public ArrayView<float> View => _single?.View ?? throw new InvalidOperationException($"this {this} matrix is stored in fp16.");

    /// <summary>B row-major [K, N] in fp16 (<see cref="GpuWeightPrecision.Float16"/> only).</summary>
    public ArrayView<Half> HalfView => _half?.View ?? throw new InvalidOperationException($"this {this} matrix is stored in fp32.");

    GpuMatrix(GpuDevice device, ReadOnlySpan<float> rowMajor, int k, int n, GpuWeightPrecision precision)
    {
        K = k; N = n;
        if (precision == GpuWeightPrecision.Float16)
        {
            var rounded = new Half[rowMajor.Length];
            for (int i = 0; i < rounded.Length; i++) rounded[i] = (Half)rowMajor[i];
            _half = device.Upload<Half>(rounded);
        }
        else _single = device.Upload(rowMajor);
    }

    /// <summary>
    /// A PyTorch <c>nn.Linear</c> weight, row-major [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>], as B = Wᵀ
    /// [K = in, N = out], so that the GEMM computes x·Wᵀ + b.
    /// </summary>
    public static GpuMatrix FromLinearWeight(GpuDevice device, ReadOnlySpan<float> weight, int outFeatures, int inFeatures,
        GpuWeightPrecision precision = GpuWeightPrecision.Float32)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckPrecision(precision);
        CheckShape(weight.Length, outFeatures, inFeatures, nameof(weight));
        var transposed = new float[(long)inFeatures * outFeatures];
        for (int o = 0; o < outFeatures; o++)
            for (int i = 0; i < inFeatures; i++) transposed[(long)i * outFeatures + o] = weight[o * inFeatures + i];
        return new GpuMatrix(device, transposed, inFeatures, outFeatures, precision);
    }

    /// <summary>A row-major matrix [K = <paramref name="rows"/>, N = <paramref name="columns"/>] applied on the right (x·P), as it lies.</summary>
    public static GpuMatrix FromRowMajor(GpuDevice device, ReadOnlySpan<float> matrix, int rows, int columns,
        GpuWeightPrecision precision = GpuWeightPrecision.Float32)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckPrecision(precision);
        CheckShape(matrix.Length, rows, columns, nameof(matrix));
        return new GpuMatrix(device, matrix, rows, columns, precision);
    }

    static void CheckPrecision(GpuWeightPrecision precision)
    {
        if (!Enum.IsDefined(precision)) throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown weight precision.");
    }

    static void CheckShape(int length, int rows, int columns, string name)
    {
        if (rows < 1) throw new ArgumentOutOfRangeException(name, rows, $"{name}: rows must be positive.");
        if (columns < 1) throw new ArgumentOutOfRangeException(name, columns, $"{name}: columns must be positive.");
        if (length != (long)rows * columns)
            throw new ArgumentException($"{name} has {length} elements, expected [{rows}, {columns}] = {(long)rows * columns}.", name);
    }

    /// <summary>The logical shape, "[K, N]".</summary>
    public override string ToString() => $"[{K}, {N}]";

    /// <summary>Frees the matrix on the device.</summary>
    public void Dispose()
    {
        _single?.Dispose();
        _half?.Dispose();
    }
}

/// <summary>
/// A k×k convolution's weights on the device: PyTorch's [Cout, Cin, k, k] reordered once at load into the implicit GEMM's
/// operand [(ky, kx, ci), co] (the CPU's ConvolutionFilter order), with the window they slide over. Batch norm is folded
/// into weights and bias by the caller.
/// </summary>
public sealed class GpuConvolutionFilter : IDisposable
{
    /// <summary>Cin: channels of the input.</summary>
    public int InChannels { get; }
    /// <summary>Cout: channels of the output.</summary>
    public int OutChannels { get; }
    /// <summary>k: side of the square window.</summary>
    public int Kernel { get; }
    /// <summary>Step of the window, in pixels.</summary>
    public int Stride { get; }
    /// <summary>Zero pixels added on each side.</summary>
    public int Padding { get; }

    /// <summary>The GEMM operand [k·k·Cin, Cout].</summary>
    public GpuMatrix Weights { get; }

    GpuConvolutionFilter(GpuMatrix weights, int inChannels, int outChannels, int kernel, int stride, int padding)
    {
        Weights = weights; InChannels = inChannels; OutChannels = outChannels; Kernel = kernel; Stride = stride; Padding = padding;
    }

    /// <summary>Uploads PyTorch's convolution weights [Cout, Cin, k, k] to the device, reordered into the implicit GEMM's operand.</summary>
    /// <param name="device">The device to hold the weights.</param>
    /// <param name="weights">The weights, [<paramref name="outChannels"/>, <paramref name="inChannels"/>, <paramref name="kernel"/>, <paramref name="kernel"/>].</param>
    /// <param name="outChannels">Cout.</param>
    /// <param name="inChannels">Cin.</param>
    /// <param name="kernel">k, the window's side.</param>
    /// <param name="stride">The window's step.</param>
    /// <param name="padding">Zero pixels on each side.</param>
    /// <param name="precision">fp32, or fp16 to halve the memory.</param>
    /// <exception cref="ArgumentNullException"><paramref name="device"/> is null.</exception>
    /// <exception cref="ArgumentException">A dimension or the stride is not positive, the padding is negative, or the weights do not have Cout·Cin·k·k values.</exception>
    /// <exception cref="GpuException">The device cannot hold the weights.</exception>
    public static GpuConvolutionFilter FromWeights(GpuDevice device, ReadOnlySpan<float> weights, int outChannels, int inChannels,
        int kernel, int stride = 1, int padding = 0, GpuWeightPrecision precision = GpuWeightPrecision.Float32)
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
        return new GpuConvolutionFilter(GpuMatrix.FromRowMajor(device, matrix, rows, outChannels, precision), inChannels, outChannels, kernel, stride, padding);
    }

    /// <summary>Output side: ⌊(size + 2·padding − kernel) / stride⌋ + 1 (at least 1 when the window fits).</summary>
    public int OutputSize(int size)
    {
        if (size < 1 || size + 2 * Padding < Kernel)
            throw new ArgumentException($"a {Kernel}×{Kernel} kernel with padding {Padding} does not fit an input of {size}.");
        return (size + 2 * Padding - Kernel) / Stride + 1;
    }

    /// <summary>The filter, e.g. "64 → 128, 3×3 stride 1 padding 1".</summary>
    public override string ToString() => $"{InChannels} → {OutChannels}, {Kernel}×{Kernel} stride {Stride} padding {Padding}";

    /// <summary>Frees the weights on the device.</summary>
    public void Dispose() => Weights.Dispose();
}
