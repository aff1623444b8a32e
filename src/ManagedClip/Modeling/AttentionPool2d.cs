using ManagedClip.Backends;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// The ModifiedResNet's final pooling (<c>clip/model.py AttentionPool2d</c>): the G² feature vectors become tokens, their mean is prepended,
/// positional embeddings are added, and one multi-head attention with the mean token as its only query gives the
/// output, projected to E.
/// <para>
/// Only that query row is ever used, so the keys and values of the n = G² + 1 tokens are never formed. For head h, with
/// x_t the tokens: q_h·k_t = q_h·(Wk_h x_t + bk_h) = (q_hᵀ Wk_h)·x_t + q_h·bk_h, and the last term is the same for every
/// token, so the softmax cancels it; and Σ_t p_t (Wv_h x_t + bv_h) = Wv_h (Σ_t p_t x_t) + bv_h since Σ_t p_t = 1. So each
/// head turns its query into a D-vector through its 64 rows of Wk, scores the tokens against it, averages the tokens with
/// the softmax weights, and only then applies its 64 rows of Wv: RN50's k and v projections of 50 tokens (0.84 GFLOP per
/// image) become 2·D² multiply-adds per image (17 MFLOP), and the weights read are the same.
/// </para>
/// </summary>
internal sealed class AttentionPool2d
{
    readonly Tensor _positionalEmbedding;       // [n = G²+1, D]
    readonly LinearWeights _query;              // q_proj: D → D, with bias
    readonly AttentionPoolWeights _keysValues;  // k_proj, v_proj: what the heads turn the query and the averaged tokens by
    readonly LinearWeights _output;             // c_proj: D → E, with bias
    readonly int _grid, _width;

    public int OutputDim => _output.OutFeatures;
    public int Tokens => _grid * _grid + 1;

    public AttentionPool2d(WeightLoader weights, string prefix, int grid, int width, int heads, int outputDim)
    {
        _grid = grid; _width = width;
        _positionalEmbedding = weights.Constant($"{prefix}.positional_embedding", grid * grid + 1, width);
        _query = weights.Linear($"{prefix}.q_proj", width, width);
        _keysValues = weights.AttentionPool(prefix, width, heads);
        _output = weights.Linear($"{prefix}.c_proj", width, outputDim);
    }

    /// <summary>Scratch this pool needs for a batch, in floats: the tokens, token 0, the query, and the heads' own.</summary>
    public long ScratchLength(int batch) => (long)batch * (Tokens * _width + 2 * _width) + _keysValues.ScratchFor(batch, Tokens);

    /// <summary>x [B, G, G, D] (NHWC, i.e. [B, G², D] tokens in row-major pixel order) → features [B, E].</summary>
    public void Forward(Operators ops, Tensor x, int batch, Tensor features, Tensor scratch)
    {
        int d = _width, n = Tokens, bd = batch * d;
        Tensor tokens = scratch[..(batch * n * d)];                                    // [B, n, D]
        Tensor first = scratch.Slice(batch * n * d, bd);                               // [B, D] token 0, then the heads' outputs
        Tensor query = scratch.Slice(batch * n * d + bd, bd);                          // [B, D]
        Tensor heads = scratch.Slice(batch * n * d + 2 * bd);

        // Token 0 is the mean of the G² pixels (a G×G average pool), then the pixels; all plus the positional embedding.
        ops.AveragePool(x, new ImageGeometry(batch, _grid, _grid, d), _grid, first);      // [B, D] means
        ops.AssembleTokens(first, x[..(batch * (n - 1) * d)], _positionalEmbedding, batch, d, tokens);
        ops.GatherRows(tokens, BatchParts.TokenRows(batch, n, 0), d, first);             // token 0 with its positional embedding
        ops.Linear(_query, first, batch, query);                                        // q, token 0 only   [B, D]
        ops.AttentionPool(_keysValues, query, tokens, batch, first, heads);              // the heads' outputs   [B, D]
        ops.Linear(_output, first, batch, features[..(batch * OutputDim)]);             // c_proj            [B, E]
    }
}
