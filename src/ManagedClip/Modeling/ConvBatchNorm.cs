using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// A bias-free convolution followed by inference BatchNorm (<c>nn.BatchNorm2d</c> in eval mode), folded at load into one convolution with bias:
/// w' = w·γ/√(var + ε), b' = β − mean·γ/√(var + ε). The product runs as NHWC im2col + GEMM, or for 32/64 output channels a direct kernel (<see cref="Convolution"/>),
/// with ReLU and the residual add in the GEMM's epilogue; a 3×3 stride-1 convolution over 64 or more channels (every bottleneck's
/// conv2) runs as Winograd F(2×2, 3×3) instead (<see cref="Winograd.Applies"/>), its weights transformed once here.
/// </summary>
internal sealed class ConvBatchNorm
{
    /// <summary>PyTorch BatchNorm2d's default; the CLIP code does not override it.</summary>
    public const double BatchNormEpsilon = 1e-5;

    readonly ConvolutionFilter? _filter; // [k·k·Cin, Cout], rows in (ky, kx, ci) order; or
    readonly WinogradFilter? _winograd;  // 16 × [Cin, Cout] (G g Gᵀ)
    readonly float[] _bias;              // [Cout]

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Padding { get; }

    ConvBatchNorm(float[] weight, float[] bias, int inChannels, int outChannels, int kernel, int stride, int padding)
    {
        InChannels = inChannels; OutChannels = outChannels; Kernel = kernel; Stride = stride; Padding = padding;
        if (Winograd.Applies(kernel, stride, padding, inChannels)) _winograd = WinogradFilter.FromWeights(weight, outChannels, inChannels);
        else _filter = ConvolutionFilter.FromWeights(weight, outChannels, inChannels, new ConvolutionGeometry(kernel, stride, padding));
        _bias = bias;
    }

    /// <summary>Reads <c>{convWeight}</c> [Cout, Cin, k, k] and <c>{batchNorm}.{weight,bias,running_mean,running_var}</c> [Cout] (num_batches_tracked is not read).</summary>
    public static ConvBatchNorm Load(Checkpoint checkpoint, string convWeight, string batchNorm, int inChannels, int outChannels, int kernel, int stride = 1)
    {
        var weight = checkpoint.Read(convWeight, outChannels, inChannels, kernel, kernel);
        var gamma = checkpoint.Read($"{batchNorm}.weight", outChannels);
        var beta = checkpoint.Read($"{batchNorm}.bias", outChannels);
        var mean = checkpoint.Read($"{batchNorm}.running_mean", outChannels);
        var variance = checkpoint.Read($"{batchNorm}.running_var", outChannels);
        var bias = Fold(weight, gamma, beta, mean, variance, BatchNormEpsilon);
        return new ConvBatchNorm(weight, bias, inChannels, outChannels, kernel, stride, kernel / 2);
    }

    /// <summary>Folds BatchNorm into the OIHW <paramref name="weight"/> in place and returns the bias; arithmetic in double, rounded once to float.</summary>
    public static float[] Fold(Span<float> weight, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, ReadOnlySpan<float> mean, ReadOnlySpan<float> variance, double epsilon)
    {
        int outChannels = gamma.Length, perChannel = weight.Length / outChannels;
        var bias = new float[outChannels];
        for (int o = 0; o < outChannels; o++)
        {
            double scale = gamma[o] / Math.Sqrt(variance[o] + epsilon);
            foreach (ref float w in weight.Slice(o * perChannel, perChannel)) w = (float)(w * scale);
            bias[o] = (float)(beta[o] - mean[o] * scale);
        }
        return bias;
    }

    public int OutputSize(int size) => new ConvolutionGeometry(Kernel, Stride, Padding).OutputSize(size);

    /// <summary>Scratch this convolution needs at the least: im2col rows for one output pixel, or one Winograd tile (none for 1×1).</summary>
    public int MinimumScratch => _filter is not null
        ? Convolution.MinimumScratch(_filter)
        : Winograd.MinimumScratch(InChannels, OutChannels);

    /// <summary>Scratch for one image of <paramref name="height"/>×<paramref name="width"/> in one pass: its whole im2col matrix (0 for 1×1), or its Winograd chunk.</summary>
    public long ScratchFor(int height, int width) => _filter is not null
        ? (long)OutputSize(height) * OutputSize(width) * MinimumScratch
        : Winograd.PreferredScratch(InChannels, OutChannels, Winograd.Tiles(1, height, width));

    /// <summary>x [B, H, W, Cin] → y [B, Ho, Wo, Cout] = act(bn(conv(x)) + residual) (the residual laid out as y, and it may be y itself).</summary>
    public void Forward(ReadOnlySpan<float> x, int batch, int height, int width, Span<float> y, Span<float> scratch, KernelContext kernels,
        Activation activation = Activation.None, ReadOnlySpan<float> residual = default)
    {
        var shape = new ImageGeometry(batch, height, width, InChannels);
        if (_filter is not null) Convolution.Forward(x, shape, _filter, y, scratch, new Epilogue(_bias, activation, residual), kernels);
        else Winograd.Forward(x, shape, _winograd!, y, scratch, new Epilogue(_bias, activation, residual), kernels);
    }
}
