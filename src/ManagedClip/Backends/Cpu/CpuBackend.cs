using System.Numerics.Tensors;
using ManagedClip.Kernels;
using ManagedClip.Modeling;

namespace ManagedClip.Backends.Cpu;

/// <summary>
/// The CPU backend: the kernels of ManagedClip.Kernels over host arrays. Weights are packed once for the GEMM, the convolutions
/// and Winograd; a call's tensors are arrays rented from <see cref="System.Buffers.ArrayPool{T}.Shared"/>; a batch is split over
/// the threads when it divides well (<see cref="BatchParallel"/>), each part then running single-threaded with its own operators.
/// </summary>
internal sealed class CpuBackend(KernelContext kernels) : ComputeBackend
{
    /// <summary>The threads (the most a call may use) and the SIMD level of this backend's kernels.</summary>
    public KernelContext Kernels { get; } = kernels;

    public override bool LoadsConcurrently => true;

    public override Tensor Constant(float[] values) => HostStorage.Whole(values);

    public override LinearWeights Linear(ReadOnlySpan<float> weight, float[]? bias, int inFeatures, int outFeatures) =>
        new CpuLinear(PackedMatrix.FromLinearWeight(weight, outFeatures, inFeatures), bias ?? []);

    public override LinearWeights Projection(ReadOnlySpan<float> weight, int inFeatures, int outFeatures) =>
        new CpuLinear(PackedMatrix.FromRowMajor(weight, inFeatures, outFeatures), []);

    public override ConvolutionWeights Convolution(ReadOnlySpan<float> weight, float[] bias, int inChannels, int outChannels, ConvolutionGeometry geometry) =>
        new CpuConvolution(weight, bias, inChannels, outChannels, geometry);

    public override AttentionPoolWeights AttentionPool(ReadOnlySpan<float> keyWeight, ReadOnlySpan<float> valueWeight, float[] valueBias, int width, int heads) =>
        new CpuAttentionPool(keyWeight, valueWeight, valueBias, width, heads);

    public override void Run(int batch, int threads, Action<int, int, Operators> body) =>
        BatchParallel.Run(batch, Kernels.WithThreads(threads), (start, count, partKernels) =>
        {
            using var operators = new CpuOperators(partKernels);
            body(start, count, operators);
        });
}

/// <summary>A host array as tensor storage.</summary>
internal sealed class HostStorage(float[] array) : TensorStorage
{
    public float[] Array { get; } = array;
    public override int Length => Array.Length;

    public static Tensor Whole(float[] array) => new(new HostStorage(array), 0, array.Length);

    /// <summary>The floats of a CPU tensor (empty for the default tensor).</summary>
    public static Span<float> Of(Tensor tensor) =>
        tensor.Storage is null ? default
        : tensor.Storage is HostStorage host ? host.Array.AsSpan(tensor.Offset, tensor.Length)
        : throw new ArgumentException($"a tensor of another backend ({tensor.Storage.GetType().Name}) was given to the CPU backend");
}

/// <summary>A linear layer packed for <see cref="Gemm"/>.</summary>
internal sealed class CpuLinear(PackedMatrix weight, float[] bias) : LinearWeights(weight.K, weight.N)
{
    public PackedMatrix Weight { get; } = weight;
    public float[] Bias { get; } = bias;
}

/// <summary>
/// A convolution packed for the kernel that runs it: a 3×3 stride-1 convolution over 64 or more channels (every bottleneck's conv2) as
/// Winograd F(2×2, 3×3) (<see cref="Winograd.Applies"/>), its weights transformed once here; any other as NHWC im2col + GEMM or,
/// for 32/64 output channels, the direct kernel (<see cref="Kernels.Convolution"/>).
/// </summary>
internal sealed class CpuConvolution : ConvolutionWeights
{
    public ConvolutionFilter? Filter { get; }   // [k·k·Cin, Cout], rows in (ky, kx, ci) order; or
    public WinogradFilter? Winograd { get; }    // 16 × [Cin, Cout] (G g Gᵀ)
    public float[] Bias { get; }                // [Cout]

    public CpuConvolution(ReadOnlySpan<float> weight, float[] bias, int inChannels, int outChannels, ConvolutionGeometry geometry)
        : base(inChannels, outChannels, geometry)
    {
        if (Kernels.Winograd.Applies(geometry.Kernel, geometry.Stride, geometry.Padding, inChannels))
            Winograd = WinogradFilter.FromWeights(weight, outChannels, inChannels);
        else Filter = ConvolutionFilter.FromWeights(weight, outChannels, inChannels, geometry);
        Bias = bias;
    }

    /// <summary>im2col rows for one output pixel, or one Winograd tile (none for 1×1).</summary>
    public override int MinimumScratch => Filter is not null
        ? Kernels.Convolution.MinimumScratch(Filter)
        : Kernels.Winograd.MinimumScratch(InChannels, OutChannels);

    /// <summary>One image's whole im2col matrix (0 for 1×1), or its Winograd chunk.</summary>
    public override long ScratchFor(int height, int width) => Filter is not null
        ? (long)OutputSize(height) * OutputSize(width) * MinimumScratch
        : Kernels.Winograd.PreferredScratch(InChannels, OutChannels, Kernels.Winograd.Tiles(1, height, width));
}

/// <summary>One forward call's (or one batch part's) CPU operators: each is the kernel, on the call's context.</summary>
internal sealed class CpuOperators(KernelContext kernels) : Operators
{
    readonly PooledArrays _arrays = new();

    static Span<float> Host(Tensor tensor) => HostStorage.Of(tensor);

    public override Tensor Rent(int length) => new(new HostStorage(_arrays.Rent(length)), 0, length);

    public override void Upload(ReadOnlySpan<float> source, Tensor destination) => source.CopyTo(Host(destination));

    public override void Download(Tensor source, Span<float> destination) => Host(source).CopyTo(destination);

    public override void Linear(LinearWeights weights, Tensor x, int rows, Tensor y, Activation activation = Activation.None)
    {
        var linear = (CpuLinear)weights;
        Gemm.Multiply(new ReadOnlyMatrixView(Host(x), rows, linear.InFeatures), linear.Weight, new MatrixView(Host(y), rows, linear.OutFeatures),
            Epilogue.Of(linear.Bias, activation), kernels);
    }

    public override void LinearAddTo(LinearWeights weights, Tensor x, int rows, Tensor y)
    {
        var linear = (CpuLinear)weights;
        var output = new MatrixView(Host(y), rows, linear.OutFeatures);
        Gemm.Multiply(new ReadOnlyMatrixView(Host(x), rows, linear.InFeatures), linear.Weight, output, new Epilogue(linear.Bias, residual: output.Data), kernels);
    }

    public override void LayerNorm(LayerNormWeights weights, Tensor x, Tensor y, int rows) =>
        Kernels.LayerNorm.Forward(new ReadOnlyMatrixView(Host(x), rows, weights.Width), new MatrixView(Host(y), rows, weights.Width),
            Host(weights.Gamma), Host(weights.Beta), weights.Epsilon, kernels);

    public override void Attention(Tensor qkv, Tensor output, int width, AttentionShape shape)
    {
        int tokens = shape.Batch * shape.QueryLength, d = width;
        Span<float> rows = Host(qkv);
        // q, k and v are column blocks of the fused rows: [tokens, d] views with row stride 3d.
        Kernels.Attention.Forward(new ReadOnlyMatrixView(rows, tokens, d, 3 * d), new ReadOnlyMatrixView(rows[d..], tokens, d, 3 * d),
            new ReadOnlyMatrixView(rows[(2 * d)..], tokens, d, 3 * d), new MatrixView(Host(output), tokens, d), shape, kernels);
    }

    public override void Convolution(ConvolutionWeights weights, Tensor x, ImageGeometry shape, Tensor y, Tensor scratch,
        Activation activation = Activation.None, Tensor residual = default)
    {
        var convolution = (CpuConvolution)weights;
        var epilogue = new Epilogue(convolution.Bias, activation, Host(residual));
        if (convolution.Filter is not null) Kernels.Convolution.Forward(Host(x), shape, convolution.Filter, Host(y), Host(scratch), epilogue, kernels);
        else Kernels.Winograd.Forward(Host(x), shape, convolution.Winograd!, Host(y), Host(scratch), epilogue, kernels);
    }

    public override void AveragePool(Tensor x, ImageGeometry shape, int window, Tensor y) => Pooling.AveragePool(Host(x), shape, window, Host(y), kernels);

    public override void AttentionPool(AttentionPoolWeights weights, Tensor query, Tensor tokens, int batch, Tensor output, Tensor scratch) =>
        ((CpuAttentionPool)weights).Forward(Host(query), Host(tokens), batch, Host(output), Host(scratch), kernels);

    public override void ToChannelsLast(Tensor pixels, ImageGeometry shape, Tensor y) => Kernels.Convolution.ToChannelsLast(Host(pixels), shape, Host(y));

    public override void Patchify(Tensor pixels, int batch, int imageSize, int patchSize, Tensor columns)
    {
        int grid = imageSize / patchSize, patchLength = 3 * patchSize * patchSize, size = imageSize, patch = patchSize;
        ReadOnlySpan<float> source = Host(pixels);
        Span<float> rows = Host(columns);
        for (int b = 0; b < batch; b++)
            for (int py = 0; py < grid; py++)
                for (int px = 0; px < grid; px++)
                {
                    Span<float> row = rows.Slice(((b * grid + py) * grid + px) * patchLength, patchLength);
                    for (int c = 0; c < 3; c++)
                        for (int ky = 0; ky < patch; ky++)
                            source.Slice(((b * 3 + c) * size + py * patch + ky) * size + px * patch, patch).CopyTo(row.Slice((c * patch + ky) * patch, patch));
                }
    }

    public override void AssembleTokens(Tensor first, Tensor rest, Tensor positional, int batch, int width, Tensor output)
    {
        ReadOnlySpan<float> firsts = Host(first), rests = Host(rest), positions = Host(positional);
        Span<float> sequences = Host(output);
        int sequenceLength = positions.Length, restLength = sequenceLength - width;
        bool shared = firsts.Length == width;
        for (int b = 0; b < batch; b++)
        {
            Span<float> sequence = sequences.Slice(b * sequenceLength, sequenceLength);   // [n, D]
            firsts.Slice(shared ? 0 : b * width, width).CopyTo(sequence);
            rests.Slice(b * restLength, restLength).CopyTo(sequence[width..]);
            TensorPrimitives.Add(sequence, positions, sequence);
        }
    }

    public override void EmbedTokens(Tensor table, ReadOnlySpan<int> ids, int length, Tensor positional, int width, Tensor output)
    {
        ReadOnlySpan<float> rows = Host(table), positions = Host(positional);
        Span<float> x = Host(output);
        for (int t = 0; t < ids.Length; t++)
            TensorPrimitives.Add(rows.Slice(ids[t] * width, width), positions.Slice(t % length * width, width), x.Slice(t * width, width));
    }

    public override void GatherRows(Tensor x, ReadOnlySpan<int> rows, int width, Tensor output)
    {
        ReadOnlySpan<float> source = Host(x);
        Span<float> destination = Host(output);
        for (int r = 0; r < rows.Length; r++) source.Slice(rows[r] * width, width).CopyTo(destination.Slice(r * width, width));
    }

    public override void Dispose() => _arrays.Dispose();
}
