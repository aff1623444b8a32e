using ManagedClip.Backends;
using ManagedClip.Checkpoints;

namespace ManagedClip.Modeling;

/// <summary>
/// The ViT image tower (<c>clip/model.py VisionTransformer</c>): patch embedding (a stride-P convolution, computed as one GEMM over
/// flattened patches), class token, positional embedding, ln_pre, transformer, ln_post on the class token, projection.
/// </summary>
internal sealed class VisionTransformer : IImageTower
{
    readonly VisionTransformerConfig _config;
    readonly ComputeBackend _backend;
    readonly LinearWeights _patchEmbedding;  // [3·P·P] → [W], no bias
    readonly Tensor _classEmbedding;         // [W]
    readonly Tensor _positionalEmbedding;    // [N, W]
    readonly LayerNormWeights _lnPre, _lnPost;
    readonly Transformer _transformer;
    readonly LinearWeights _projection;      // [W] → [E]

    public int ImageSize => _config.ImageSize;
    public int EmbedDim => _projection.OutFeatures;

    public VisionTransformer(WeightLoader weights, ClipConfig config)
    {
        var v = _config = (VisionTransformerConfig)config.Vision;
        _backend = weights.Backend;
        int width = v.Width, patch = v.PatchSize, tokens = v.Tokens;
        // conv1.weight [W, 3, P, P] is, row-major, already the [out = W, in = 3·P·P] matrix of the GEMM, in (c, ky, kx) order.
        _patchEmbedding = weights.WithScratch("visual.conv1.weight", [width, 3, patch, patch],
            weight => weights.Backend.Linear(weight, null, 3 * patch * patch, width));
        _classEmbedding = weights.Constant("visual.class_embedding", width);
        _positionalEmbedding = weights.Constant("visual.positional_embedding", tokens, width);
        _lnPre = weights.LayerNorm("visual.ln_pre", width, v.LayerNormEpsilon);
        _transformer = new Transformer(weights, "visual.transformer", width, v.Layers, v.Heads, v.MlpWidth, v.Activation, v.LayerNormEpsilon);
        _lnPost = weights.LayerNorm("visual.ln_post", width, v.LayerNormEpsilon);
        _projection = weights.Projection("visual.proj", width, config.EmbedDim);
    }

    /// <summary>pixels [batch, 3, R, R] → features [batch, E] (not normalized).</summary>
    public void Forward(ReadOnlySpan<float> pixels, int batch, Span<float> features, int threads) =>
        BatchParts.RunImages(_backend, threads, pixels, 3 * ImageSize * ImageSize, batch, features, EmbedDim, Forward);

    void Forward(Operators ops, ReadOnlySpan<float> pixels, int batch, Span<float> features)
    {
        int width = _config.Width, patch = _config.PatchSize, grid = _config.GridSize, size = _config.ImageSize;
        int patches = grid * grid, tokens = patches + 1;

        var input = ops.Rent(batch * 3 * size * size);                  // [batch, 3, R, R]
        ops.Upload(pixels, input);
        var columns = ops.Rent(batch * patches * 3 * patch * patch);    // [batch·g², 3·P·P]
        ops.Patchify(input, batch, size, patch, columns);
        var embedded = ops.Rent(batch * patches * width);               // [batch·g², W]
        ops.Linear(_patchEmbedding, columns, batch * patches, embedded);

        // x = [class; patches] + positional embedding.   [batch, N, W]
        var x = ops.Rent(batch * tokens * width);
        ops.AssembleTokens(_classEmbedding, embedded, _positionalEmbedding, batch, width, x);
        ops.LayerNorm(_lnPre, x, x, batch * tokens);
        _transformer.Forward(ops, x, batch, tokens, causal: false);

        // ln_post and the projection apply to the class token only.   [batch, W] → [batch, E]
        var pooled = ops.Rent(batch * width);
        ops.GatherRows(x, BatchParts.TokenRows(batch, tokens, 0), width, pooled);
        ops.LayerNorm(_lnPost, pooled, pooled, batch);
        var output = ops.Rent(batch * EmbedDim);
        ops.Linear(_projection, pooled, batch, output);
        ops.Download(output, features);
    }
}
