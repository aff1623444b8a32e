using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// The ViT image tower (<c>clip/model.py VisionTransformer</c>): patch embedding (a stride-P convolution, computed as one GEMM over
/// flattened patches), class token, positional embedding, ln_pre, transformer, ln_post on the class token, projection.
/// </summary>
internal sealed class VisionTransformer : IImageTower
{
    readonly VisionTransformerConfig _config;
    readonly Linear _patchEmbedding;     // [3·P·P] → [W], no bias
    readonly float[] _classEmbedding;    // [W]
    readonly float[] _positionalEmbedding; // [N, W]
    readonly LayerNormLayer _lnPre, _lnPost;
    readonly Transformer _transformer;
    readonly Linear _projection;         // [W] → [E]

    public int ImageSize => _config.ImageSize;
    public int EmbedDim => _projection.OutFeatures;

    public VisionTransformer(Checkpoint checkpoint, ClipConfig config)
    {
        var v = _config = (VisionTransformerConfig)config.Vision;
        int width = v.Width, patch = v.PatchSize, tokens = v.Tokens;
        // conv1.weight [W, 3, P, P] is, row-major, already the [out = W, in = 3·P·P] matrix of the GEMM, in (c, ky, kx) order.
        _patchEmbedding = Linear.FromWeight(checkpoint.Read("visual.conv1.weight", width, 3, patch, patch), 3 * patch * patch, width);
        _classEmbedding = checkpoint.Read("visual.class_embedding", width);
        _positionalEmbedding = checkpoint.Read("visual.positional_embedding", tokens, width);
        _lnPre = LayerNormLayer.Load(checkpoint, "visual.ln_pre", width, v.LayerNormEpsilon);
        _transformer = new Transformer(checkpoint, "visual.transformer", width, v.Layers, v.Heads, v.MlpWidth, v.Activation, v.LayerNormEpsilon);
        _lnPost = LayerNormLayer.Load(checkpoint, "visual.ln_post", width, v.LayerNormEpsilon);
        _projection = Linear.LoadProjection(checkpoint, "visual.proj", width, config.EmbedDim);
    }

    /// <summary>pixels [batch, 3, R, R] → features [batch, E] (not normalized).</summary>
    public void Forward(ReadOnlySpan<float> pixels, int batch, Span<float> features, KernelContext kernels) =>
        BatchParallel.RunImages(pixels, 3 * _config.ImageSize * _config.ImageSize, features, EmbedDim, batch, kernels, ForwardBatch);

    void ForwardBatch(ReadOnlySpan<float> pixels, int batch, Span<float> features, KernelContext kernels)
    {
        int width = _config.Width, patch = _config.PatchSize, grid = _config.GridSize, size = _config.ImageSize;
        int patches = grid * grid, tokens = patches + 1, patchLength = 3 * patch * patch;
        using var workspace = new Workspace(batch * tokens, width, _transformer.MlpWidth, kernels);

        // im2col: one row per patch, flattened in (c, ky, kx) order to match conv1.weight.  [batch·g², 3·P·P]
        var columns = workspace.Rent(batch * patches * patchLength);
        for (int b = 0; b < batch; b++)
            for (int py = 0; py < grid; py++)
                for (int px = 0; px < grid; px++)
                {
                    Span<float> row = columns.AsSpan(((b * grid + py) * grid + px) * patchLength, patchLength);
                    for (int c = 0; c < 3; c++)
                        for (int ky = 0; ky < patch; ky++)
                            pixels.Slice(((b * 3 + c) * size + py * patch + ky) * size + px * patch, patch)
                                .CopyTo(row.Slice((c * patch + ky) * patch, patch));
                }
        var embedded = workspace.Rent(batch * patches * width);   // [batch·g², W]
        _patchEmbedding.Forward(columns, batch * patches, embedded, kernels);

        // x = [class; patches] + positional embedding.   [batch, N, W]
        var x = workspace.Rent(batch * tokens * width);
        for (int b = 0; b < batch; b++)
        {
            Span<float> sequence = x.AsSpan(b * tokens * width, tokens * width);
            _classEmbedding.CopyTo(sequence);
            embedded.AsSpan(b * patches * width, patches * width).CopyTo(sequence[width..]);
            System.Numerics.Tensors.TensorPrimitives.Add(sequence, _positionalEmbedding, sequence);
        }
        _lnPre.Forward(x, x, batch * tokens, kernels);
        _transformer.Forward(x, batch, tokens, causal: false, workspace);

        // ln_post and the projection apply to the class token only.   [batch, W] → [batch, E]
        var pooled = workspace.Rent(batch * width);
        for (int b = 0; b < batch; b++) x.AsSpan(b * tokens * width, width).CopyTo(pooled.AsSpan(b * width));
        _lnPost.Forward(pooled, pooled, batch, kernels);
        _projection.Forward(pooled, batch, features, kernels);
    }
}
