using ManagedClip.Kernels;

namespace ManagedClip.Backends;

/// <summary>
/// Where a model's forward passes run. A backend packs (or uploads) every weight once, at load, into the handles below, and
/// runs each forward call through an <see cref="Operators"/> of its own. The forward passes (Modeling/) are written once,
/// against <see cref="Operators"/>; the CPU kernels are the first backend (<see cref="Cpu.CpuBackend"/>).
/// docs/architecture.md lists the operator set and the rules for who owns which tensor.
/// </summary>
internal abstract class ComputeBackend : IDisposable
{
    /// <summary>Whether two towers may pack their weights at the same time, on two threads (the CPU's can; a device stream may not).</summary>
    public virtual bool LoadsConcurrently => false;

    /// <summary>
    /// Floats a ModifiedResNet's activation buffer may hold: a larger batch runs in sub-batches that fit (the CPU's 32 MiB keeps them
    /// near its caches: RN50 at 224 runs 10 images at a time).
    /// </summary>
    public virtual long ActivationBudget => 1L << 23;

    /// <summary>Releases what the backend holds beyond managed memory (device buffers), once the model's calls have ended.</summary>
    public virtual void Dispose() { }

    /// <summary>A weight tensor kept as long as the model: the backend may keep <paramref name="values"/> itself (no copy) or upload it.</summary>
    public abstract Tensor Constant(float[] values);

    /// <summary>A linear layer y = x·Wᵀ + b from <paramref name="weight"/> [out, in] (nn.Linear's layout) and an optional bias [out].</summary>
    public abstract LinearWeights Linear(ReadOnlySpan<float> weight, float[]? bias, int inFeatures, int outFeatures);

    /// <summary>A projection applied on the right, y = x·P, from <paramref name="weight"/> [in, out] (<c>visual.proj</c>, <c>text_projection</c>).</summary>
    public abstract LinearWeights Projection(ReadOnlySpan<float> weight, int inFeatures, int outFeatures);

    /// <summary>A convolution with bias from <paramref name="weight"/> [out, in, k, k] (batch norm already folded in) and <paramref name="bias"/> [out].</summary>
    public abstract ConvolutionWeights Convolution(ReadOnlySpan<float> weight, float[] bias, int inChannels, int outChannels, ConvolutionGeometry geometry);

    /// <summary>
    /// The attention pool's key and value weights, k_proj.weight and v_proj.weight [D, D] ([out, in]) and v_proj.bias [D], for
    /// <see cref="Operators.AttentionPool"/>.
    /// </summary>
    public abstract AttentionPoolWeights AttentionPool(ReadOnlySpan<float> keyWeight, ReadOnlySpan<float> valueWeight, float[] valueBias, int width, int heads);

    /// <summary>
    /// Runs one forward call over <paramref name="batch"/> items as <paramref name="body"/>(start, count, operators), once or once per
    /// part of the batch (the CPU splits a batch over its threads), each part with an <see cref="Operators"/> of its own that is
    /// disposed when the part ends. <paramref name="threads"/> is the most host threads the call may keep busy.
    /// </summary>
    public abstract void Run(int batch, int threads, Action<int, int, Operators> body);
}

/// <summary>A linear layer's weights as a backend keeps them: x [rows, <see cref="InFeatures"/>] → [rows, <see cref="OutFeatures"/>].</summary>
internal abstract class LinearWeights(int inFeatures, int outFeatures)
{
    public int InFeatures { get; } = inFeatures;
    public int OutFeatures { get; } = outFeatures;
}

/// <summary>A convolution's weights as a backend keeps them, with what it needs beside them.</summary>
internal abstract class ConvolutionWeights(int inChannels, int outChannels, ConvolutionGeometry geometry)
{
    public int InChannels { get; } = inChannels;
    public int OutChannels { get; } = outChannels;
    public ConvolutionGeometry Geometry { get; } = geometry;

    public int OutputSize(int size) => Geometry.OutputSize(size);

    /// <summary>Scratch floats <see cref="Operators.Convolution"/> needs at the least (0 for a backend that needs none).</summary>
    public abstract int MinimumScratch { get; }

    /// <summary>Scratch floats that let one image of <paramref name="height"/>×<paramref name="width"/> run in one pass.</summary>
    public abstract long ScratchFor(int height, int width);
}

/// <summary>The attention pool's key and value weights as a backend keeps them.</summary>
internal abstract class AttentionPoolWeights(int width, int heads)
{
    public int Width { get; } = width;
    public int Heads { get; } = heads;

    /// <summary>Scratch floats <see cref="Operators.AttentionPool"/> needs for <paramref name="batch"/> images of <paramref name="tokens"/> tokens.</summary>
    public abstract long ScratchFor(int batch, int tokens);
}

/// <summary>A layer norm's γ and β [width], as tensors of the backend, and its ε.</summary>
internal sealed record LayerNormWeights(Tensor Gamma, Tensor Beta, float Epsilon)
{
    public int Width => Gamma.Length;
}

/// <summary>
/// The operator set one forward call (or one part of it) runs on, and the memory it rents: every tensor from <see cref="Rent"/> lives
/// until this object is disposed, and no other call sees it. Shapes are in brackets, row-major; images in a ResNet are channels-last.
/// Operators may run asynchronously on a device: only <see cref="Download"/> waits for the results.
/// </summary>
internal abstract class Operators : IDisposable
{
    /// <summary>A tensor of <paramref name="length"/> floats (uninitialized) for this call.</summary>
    public abstract Tensor Rent(int length);

    /// <summary>Host values → <paramref name="destination"/> (the call's inputs, once).</summary>
    public abstract void Upload(ReadOnlySpan<float> source, Tensor destination);

    /// <summary><paramref name="source"/> → host values (the call's outputs, once, at the end).</summary>
    public abstract void Download(Tensor source, Span<float> destination);

    /// <summary>y [rows, out] = act(x [rows, in]·W + b).</summary>
    public abstract void Linear(LinearWeights weights, Tensor x, int rows, Tensor y, Activation activation = Activation.None);

    /// <summary>y [rows, out] += x [rows, in]·W + b: a residual add, fused into the product.</summary>
    public abstract void LinearAddTo(LinearWeights weights, Tensor x, int rows, Tensor y);

    /// <summary>y [rows, width] = LayerNorm(x [rows, width]); x and y may be the same tensor.</summary>
    public abstract void LayerNorm(LayerNormWeights weights, Tensor x, Tensor y, int rows);

    /// <summary>
    /// Multi-head attention over fused rows <paramref name="qkv"/> [tokens, 3·width] (q, k, v the column blocks, as in_proj makes them)
    /// → <paramref name="output"/> [tokens, width]; tokens = batch·length of <paramref name="shape"/>.
    /// </summary>
    public abstract void Attention(Tensor qkv, Tensor output, int width, AttentionShape shape);

    /// <summary>
    /// y [B, Ho, Wo, out] = act(conv(x [B, H, W, in]) + b + residual) (the residual laid out as y, and it may be y itself; the
    /// default tensor for none). <paramref name="scratch"/> holds at least <see cref="ConvolutionWeights.MinimumScratch"/> floats.
    /// </summary>
    public abstract void Convolution(ConvolutionWeights weights, Tensor x, ImageGeometry shape, Tensor y, Tensor scratch,
        Activation activation = Activation.None, Tensor residual = default);

    /// <summary>y [B, H/k, W/k, C] = the mean of each k×k window of x [B, H, W, C] (stride k, floor).</summary>
    public abstract void AveragePool(Tensor x, ImageGeometry shape, int window, Tensor y);

    /// <summary>
    /// The attention pool's heads (<c>AttentionPool2d</c>, first query only): query [B, D] (q_proj of token 0), tokens [B, n, D]
    /// → output [B, D], each head's softmax-weighted mean of the tokens through its value rows, before c_proj.
    /// <paramref name="scratch"/> holds <see cref="AttentionPoolWeights.ScratchFor"/>(B, n) floats.
    /// </summary>
    public abstract void AttentionPool(AttentionPoolWeights weights, Tensor query, Tensor tokens, int batch, Tensor output, Tensor scratch);

    /// <summary>pixels [B, C, H, W] → y [B, H, W, C].</summary>
    public abstract void ToChannelsLast(Tensor pixels, ImageGeometry shape, Tensor y);

    /// <summary>pixels [B, 3, R, R] → columns [B·g², 3·P·P], one row per P×P patch in (c, ky, kx) order (g = R / P).</summary>
    public abstract void Patchify(Tensor pixels, int batch, int imageSize, int patchSize, Tensor columns);

    /// <summary>
    /// output [B, n, D] = [first; rest] + positional [n, D], with rest [B, n − 1, D] and first one row [D] shared by every item (a class
    /// token) or [B, D], one per item.
    /// </summary>
    public abstract void AssembleTokens(Tensor first, Tensor rest, Tensor positional, int batch, int width, Tensor output);

    /// <summary>output [B, L, D] = table[ids[b, i]] + positional[i] for ids [B, L] (host values, checked by the caller; L ≤ positional's rows).</summary>
    public abstract void EmbedTokens(Tensor table, ReadOnlySpan<int> ids, int length, Tensor positional, int width, Tensor output);

    /// <summary>output [rows.Length, width] = the rows of x [·, width] named by <paramref name="rows"/> (host values).</summary>
    public abstract void GatherRows(Tensor x, ReadOnlySpan<int> rows, int width, Tensor output);

    public abstract void Dispose();
}
