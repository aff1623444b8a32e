using ManagedClip.Backends;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// Pre-LN transformer block (<c>clip/model.py ResidualAttentionBlock</c>), shared by the image and text towers:
/// x ← x + out_proj(MHA(ln_1(x))); x ← x + c_proj(act(c_fc(ln_2(x)))).
/// </summary>
internal sealed class ResidualAttentionBlock
{
    readonly LayerNormWeights _ln1, _ln2;
    readonly LinearWeights _inProjection, _outProjection, _fc, _projection;
    readonly int _width, _heads;
    readonly Activation _activation;

    public ResidualAttentionBlock(WeightLoader weights, string prefix, int width, int heads, int mlpWidth, Activation activation, float epsilon)
    {
        _width = width; _heads = heads; _activation = activation;
        _ln1 = weights.LayerNorm($"{prefix}.ln_1", width, epsilon);
        // in_proj rows: q (0..d−1), k (d..2d−1), v (2d..3d−1); one GEMM gives [tokens, 3d].
        _inProjection = weights.Linear($"{prefix}.attn.in_proj_weight", $"{prefix}.attn.in_proj_bias", width, 3 * width);
        _outProjection = weights.Linear($"{prefix}.attn.out_proj", width, width);
        _ln2 = weights.LayerNorm($"{prefix}.ln_2", width, epsilon);
        _fc = weights.Linear($"{prefix}.mlp.c_fc", width, mlpWidth);
        _projection = weights.Linear($"{prefix}.mlp.c_proj", mlpWidth, width);
    }

    /// <summary>x [batch·length, width] updated in place.</summary>
    public void Forward(Operators ops, Tensor x, int batch, int length, bool causal, TransformerWorkspace workspace)
    {
        int tokens = batch * length;
        Tensor normed = workspace.Normed, qkv = workspace.Qkv, attended = workspace.Attended, hidden = workspace.Hidden;

        ops.LayerNorm(_ln1, x, normed, tokens);                                  // [tokens, d]
        ops.Linear(_inProjection, normed, tokens, qkv);                          // [tokens, 3d]
        ops.Attention(qkv, attended, _width, new AttentionShape(batch, length, length, _heads, causal));   // [tokens, d]
        ops.LinearAddTo(_outProjection, attended, tokens, x);

        ops.LayerNorm(_ln2, x, normed, tokens);
        ops.Linear(_fc, normed, tokens, hidden, _activation);                    // [tokens, mlp]
        ops.LinearAddTo(_projection, hidden, tokens, x);
    }
}

/// <summary>A stack of residual attention blocks: <c>{prefix}.resblocks.{i}</c>.</summary>
internal sealed class Transformer
{
    readonly ResidualAttentionBlock[] _blocks;

    public int Width { get; }
    public int MlpWidth { get; }

    public Transformer(WeightLoader weights, string prefix, int width, int layers, int heads, int mlpWidth, Activation activation, float epsilon)
    {
        Width = width; MlpWidth = mlpWidth;
        _blocks = Enumerable.Range(0, layers)
            .Select(i => new ResidualAttentionBlock(weights, $"{prefix}.resblocks.{i}", width, heads, mlpWidth, activation, epsilon))
            .ToArray();
    }

    /// <summary>x [batch·length, width] in place.</summary>
    public void Forward(Operators ops, Tensor x, int batch, int length, bool causal)
    {
        var workspace = new TransformerWorkspace(ops, batch * length, Width, MlpWidth);
        foreach (var block in _blocks) block.Forward(ops, x, batch, length, causal, workspace);
    }
}

/// <summary>
/// A transformer's scratch tensors for one forward call, rented from the call's operators once for its batch shape and reused by
/// every block. Each call owns its workspace, which is what makes a model safe to call from several threads at once.
/// </summary>
internal sealed class TransformerWorkspace(Operators operators, int tokens, int width, int mlpWidth)
{
    public Tensor Normed { get; } = operators.Rent(tokens * width);        // [tokens, width]
    public Tensor Qkv { get; } = operators.Rent(tokens * 3 * width);       // [tokens, 3·width]
    public Tensor Attended { get; } = operators.Rent(tokens * width);      // [tokens, width]
    public Tensor Hidden { get; } = operators.Rent(tokens * mlpWidth);     // [tokens, mlp]
}
