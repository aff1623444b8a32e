using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>y = act(x·Wᵀ + b) with W packed once at load. <c>{prefix}.weight</c> is [out, in], <c>{prefix}.bias</c> is [out].</summary>
internal sealed class Linear
{
    readonly PackedMatrix _weight;
    readonly float[] _bias;

    public int InFeatures => _weight.K;
    public int OutFeatures => _weight.N;

    Linear(PackedMatrix weight, float[] bias) { _weight = weight; _bias = bias; }

    public static Linear Load(Checkpoint checkpoint, string prefix, int inFeatures, int outFeatures) =>
        Load(checkpoint, $"{prefix}.weight", $"{prefix}.bias", inFeatures, outFeatures);

    /// <summary>Weight [out, in] and bias [out] under explicit names (<c>attn.in_proj_weight</c>); a null bias name means no bias.</summary>
    public static Linear Load(Checkpoint checkpoint, string weightName, string? biasName, int inFeatures, int outFeatures) =>
        new(WithScratch(checkpoint, weightName, [outFeatures, inFeatures], w => PackedMatrix.FromLinearWeight(w, outFeatures, inFeatures)),
            biasName is null ? [] : checkpoint.Read(biasName, outFeatures));

    /// <summary>A projection stored the OpenAI way, [in, out], applied on the right: y = x·P (<c>visual.proj</c>, <c>text_projection</c>).</summary>
    public static Linear LoadProjection(Checkpoint checkpoint, string name, int inFeatures, int outFeatures) =>
        new(WithScratch(checkpoint, name, [inFeatures, outFeatures], w => PackedMatrix.FromRowMajor(w, inFeatures, outFeatures)), []);

    internal delegate T Packer<T>(ReadOnlySpan<float> weight);

    /// <summary>
    /// Reads a weight into a pooled buffer and hands it to <paramref name="pack"/>: the packed copy is the only one the model keeps,
    /// and loading leaves no checkpoint-sized trail of garbage behind (peak memory stays near the packed weights' size).
    /// </summary>
    internal static T WithScratch<T>(Checkpoint checkpoint, string name, int[] shape, Packer<T> pack)
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

    /// <summary>From an already-shaped [out, in] weight (the patch convolution reshaped to a matrix).</summary>
    public static Linear FromWeight(float[] weight, int inFeatures, int outFeatures) =>
        new(PackedMatrix.FromLinearWeight(weight, outFeatures, inFeatures), []);

    /// <summary>x [rows, in] → y [rows, out] = act(x·Wᵀ + b).</summary>
    public void Forward(ReadOnlySpan<float> x, int rows, Span<float> y, KernelContext context, Activation activation = Activation.None) =>
        Gemm.Multiply(new ReadOnlyMatrixView(x, rows, InFeatures), _weight, new MatrixView(y, rows, OutFeatures), Epilogue.Of(_bias, activation), context);

    /// <summary>y [rows, out] += x [rows, in]·Wᵀ + b: the residual add, fused into the product's epilogue.</summary>
    public void AddTo(ReadOnlySpan<float> x, int rows, Span<float> y, KernelContext context)
    {
        var output = new MatrixView(y, rows, OutFeatures);
        Gemm.Multiply(new ReadOnlyMatrixView(x, rows, InFeatures), _weight, output, new Epilogue(_bias, residual: output.Data), context);
    }
}

/// <summary>LayerNorm over the last dimension, eps from the config (1e-5 for every CLIP).</summary>
internal sealed class LayerNormLayer(float[] gamma, float[] beta, float epsilon)
{
    public int Width => gamma.Length;

    public static LayerNormLayer Load(Checkpoint checkpoint, string prefix, int width, float epsilon) =>
        new(checkpoint.Read($"{prefix}.weight", width), checkpoint.Read($"{prefix}.bias", width), epsilon);

    /// <summary>x [rows, width] → y [rows, width]; x and y may be the same buffer.</summary>
    public void Forward(ReadOnlySpan<float> x, Span<float> y, int rows, KernelContext context) =>
        LayerNorm.Forward(new ReadOnlyMatrixView(x, rows, Width), new MatrixView(y, rows, Width), gamma, beta, epsilon, context);
}
