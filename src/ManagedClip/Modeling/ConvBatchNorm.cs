using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// A bias-free convolution followed by inference BatchNorm (spec §4.1), folded at load into one convolution with bias:
/// w' = w·γ/√(var + ε), b' = β − mean·γ/√(var + ε). The product runs as NHWC im2col + GEMM, or for 32/64 output channels a direct kernel (<see cref="Convolution"/>),
/// with ReLU and the residual add in the GEMM's epilogue.
/// </summary>
internal sealed class ConvBatchNorm
{
    /// <summary>PyTorch BatchNorm2d's default; the CLIP code does not override it.</summary>
    public const double BatchNormEpsilon = 1e-5;

    readonly PackedMatrix _weight;   // [k·k·Cin, Cout], rows in (ky, kx, ci) order
    readonly float[] _bias;          // [Cout]

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Padding { get; }

    ConvBatchNorm(float[] weight, float[] bias, int inChannels, int outChannels, int kernel, int stride, int padding)
    {
        InChannels = inChannels; OutChannels = outChannels; Kernel = kernel; Stride = stride; Padding = padding;
        _weight = Convolution.PackWeights(weight, outChannels, inChannels, kernel);
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

    public int OutputSize(int size) => Convolution.OutputSize(size, Kernel, Stride, Padding);

    /// <summary>Scratch for im2col rows this convolution needs at the least (none for 1×1).</summary>
    public int MinimumScratch => Convolution.MinimumScratch(InChannels, Kernel, Stride, Padding);

    /// <summary>Floats of the whole im2col matrix for one image of <paramref name="height"/>×<paramref name="width"/> (0 for 1×1).</summary>
    public long ColumnsFor(int height, int width) => (long)OutputSize(height) * OutputSize(width) * MinimumScratch;

    /// <summary>x [B, H, W, Cin] → y [B, Ho, Wo, Cout] = act(bn(conv(x))), or y += … with <paramref name="accumulate"/>.</summary>
    public void Forward(ReadOnlySpan<float> x, int batch, int height, int width, Span<float> y, Span<float> scratch, int threads,
        Activation activation = Activation.None, bool accumulate = false, ReadOnlySpan<float> residual = default) =>
        Convolution.Forward(x, batch, height, width, InChannels, _weight, Kernel, Stride, Padding, _bias, y, scratch, activation, accumulate, threads,
            residual: residual);
}
