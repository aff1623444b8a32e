using ManagedClip.Backends;
using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// Reads a checkpoint's tensors by name (the OpenAI names, <c>clip/model.py</c>'s modules) into a backend's weights: the one place
/// a layer's weights come from. A missing or misshapen tensor is reported by name, by the checkpoint.
/// </summary>
internal sealed class WeightLoader(Checkpoint checkpoint, ComputeBackend backend)
{
    /// <summary>PyTorch BatchNorm2d's default; the CLIP code does not override it.</summary>
    public const double BatchNormEpsilon = 1e-5;

    public Checkpoint Checkpoint => checkpoint;
    public ComputeBackend Backend => backend;

    /// <summary>A tensor of the given shape, kept by the backend as it is (embeddings, positional embeddings).</summary>
    public Tensor Constant(string name, params int[] shape) => backend.Constant(checkpoint.Read(name, shape));

    /// <summary>nn.Linear: <c>{prefix}.weight</c> [out, in] and <c>{prefix}.bias</c> [out].</summary>
    public LinearWeights Linear(string prefix, int inFeatures, int outFeatures) => Linear($"{prefix}.weight", $"{prefix}.bias", inFeatures, outFeatures);

    /// <summary>Weight [out, in] and bias [out] under explicit names (<c>attn.in_proj_weight</c>); a null bias name means no bias.</summary>
    public LinearWeights Linear(string weightName, string? biasName, int inFeatures, int outFeatures) =>
        WithScratch(weightName, [outFeatures, inFeatures],
            weight => backend.Linear(weight, biasName is null ? null : checkpoint.Read(biasName, outFeatures), inFeatures, outFeatures));

    /// <summary>A projection stored the OpenAI way, [in, out], applied on the right: y = x·P (<c>visual.proj</c>, <c>text_projection</c>).</summary>
    public LinearWeights Projection(string name, int inFeatures, int outFeatures) =>
        WithScratch(name, [inFeatures, outFeatures], weight => backend.Projection(weight, inFeatures, outFeatures));

    /// <summary>nn.LayerNorm: <c>{prefix}.weight</c> (γ) and <c>{prefix}.bias</c> (β), [width].</summary>
    public LayerNormWeights LayerNorm(string prefix, int width, float epsilon) =>
        new(Constant($"{prefix}.weight", width), Constant($"{prefix}.bias", width), epsilon);

    /// <summary>
    /// A bias-free convolution <c>{convWeight}</c> [Cout, Cin, k, k] (padding k/2) followed by inference BatchNorm (<c>nn.BatchNorm2d</c> in
    /// eval mode, <c>{batchNorm}.{weight,bias,running_mean,running_var}</c> [Cout]; num_batches_tracked is not read), folded into one
    /// convolution with bias (<see cref="FoldBatchNorm"/>).
    /// </summary>
    public ConvolutionWeights ConvBatchNorm(string convWeight, string batchNorm, int inChannels, int outChannels, int kernel, int stride = 1) =>
        WithScratch(convWeight, [outChannels, inChannels, kernel, kernel], weight =>
        {
            var gamma = checkpoint.Read($"{batchNorm}.weight", outChannels);
            var beta = checkpoint.Read($"{batchNorm}.bias", outChannels);
            var mean = checkpoint.Read($"{batchNorm}.running_mean", outChannels);
            var variance = checkpoint.Read($"{batchNorm}.running_var", outChannels);
            var bias = FoldBatchNorm(weight, gamma, beta, mean, variance, BatchNormEpsilon);
            return backend.Convolution(weight, bias, inChannels, outChannels, new ConvolutionGeometry(kernel, stride, kernel / 2));
        });

    /// <summary>
    /// Folds BatchNorm into the OIHW <paramref name="weight"/> in place and returns the bias: w' = w·γ/√(var + ε), b' = β − mean·γ/√(var + ε);
    /// arithmetic in double, rounded once to float.
    /// </summary>
    public static float[] FoldBatchNorm(Span<float> weight, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> variance, double epsilon)
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

    /// <summary>
    /// The attention pool's keys and values: <c>{prefix}.k_proj.weight</c>, <c>{prefix}.v_proj.weight</c> [D, D] and <c>{prefix}.v_proj.bias</c> [D].
    /// <c>k_proj.bias</c> is not needed (<see cref="AttentionPool2d"/>), but it is part of the checkpoint's attention pool: it is read anyway,
    /// so that a file without it is reported like any other missing tensor.
    /// </summary>
    public AttentionPoolWeights AttentionPool(string prefix, int width, int heads)
    {
        _ = checkpoint.Read($"{prefix}.k_proj.bias", width);
        // Both [D, D] weights are needed at once: k in the pooled buffer, v in its own array, garbage once packed (a second pooled
        // buffer of D² floats, 16 MiB for RN50, would stay in the pool for the life of the process).
        return WithScratch($"{prefix}.k_proj.weight", [width, width], key =>
            backend.AttentionPool(key, checkpoint.Read($"{prefix}.v_proj.weight", width, width), checkpoint.Read($"{prefix}.v_proj.bias", width), width, heads));
    }

    internal delegate T Packer<T>(Span<float> weight);

    /// <summary>
    /// Reads a weight into a pooled buffer and hands it to <paramref name="pack"/>: the backend's copy is the only one the model keeps,
    /// and loading leaves no checkpoint-sized trail of garbage behind (peak memory stays near the packed weights' size).
    /// </summary>
    public T WithScratch<T>(string name, int[] shape, Packer<T> pack)
    {
        int count = shape.Aggregate(1, (n, d) => checked(n * d));
        float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(count);
        try
        {
            Span<float> weight = buffer.AsSpan(0, count);
            checkpoint.ReadInto(name, weight, shape);
            return pack(weight);
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(buffer); }
    }
}
