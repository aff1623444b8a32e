using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// Pre-LN transformer block (<c>clip/model.py ResidualAttentionBlock</c>), shared by the image and text towers:
/// x ← x + out_proj(MHA(ln_1(x))); x ← x + c_proj(act(c_fc(ln_2(x)))).
/// </summary>
internal sealed class ResidualAttentionBlock
{
    readonly LayerNormLayer _ln1, _ln2;
    readonly Linear _inProjection, _outProjection, _fc, _projection;
    readonly int _width, _heads;
    readonly Activation _activation;

    public ResidualAttentionBlock(Checkpoint checkpoint, string prefix, int width, int heads, int mlpWidth, Activation activation, float epsilon)
    {
        _width = width; _heads = heads; _activation = activation;
        _ln1 = LayerNormLayer.Load(checkpoint, $"{prefix}.ln_1", width, epsilon);
        // in_proj rows: q (0..d−1), k (d..2d−1), v (2d..3d−1); one GEMM gives [tokens, 3d].
        _inProjection = Linear.Load(checkpoint, $"{prefix}.attn.in_proj_weight", $"{prefix}.attn.in_proj_bias", width, 3 * width);
        _outProjection = Linear.Load(checkpoint, $"{prefix}.attn.out_proj", width, width);
        _ln2 = LayerNormLayer.Load(checkpoint, $"{prefix}.ln_2", width, epsilon);
        _fc = Linear.Load(checkpoint, $"{prefix}.mlp.c_fc", width, mlpWidth);
        _projection = Linear.Load(checkpoint, $"{prefix}.mlp.c_proj", mlpWidth, width);
    }

    /// <summary>x [batch·length, width] updated in place.</summary>
    public void Forward(Span<float> x, int batch, int length, bool causal, Workspace workspace)
    {
        int tokens = batch * length, d = _width;
        var kernels = workspace.Kernels;
        // AsSpan, not a range: a range over an array is a copy (RuntimeHelpers.GetSubArray), 5 MiB a layer at ViT-B batch 4.
        Span<float> normed = workspace.Normed.AsSpan(0, tokens * d);       // [tokens, d]
        Span<float> qkv = workspace.Qkv.AsSpan(0, tokens * 3 * d);         // [tokens, 3d]
        Span<float> attended = workspace.Attended.AsSpan(0, tokens * d);   // [tokens, d]
        Span<float> hidden = workspace.Hidden.AsSpan(0, tokens * _fc.OutFeatures); // [tokens, mlp]

        _ln1.Forward(x, normed, tokens, kernels);
        _inProjection.Forward(normed, tokens, qkv, kernels);
        // q, k and v are column blocks of the fused rows: [tokens, d] views with row stride 3d.
        Attention.Forward(new ReadOnlyMatrixView(qkv, tokens, d, 3 * d), new ReadOnlyMatrixView(qkv[d..], tokens, d, 3 * d),
            new ReadOnlyMatrixView(qkv[(2 * d)..], tokens, d, 3 * d), new MatrixView(attended, tokens, d),
            new AttentionShape(batch, length, length, _heads, causal), kernels);
        _outProjection.AddTo(attended, tokens, x, kernels);

        _ln2.Forward(x, normed, tokens, kernels);
        _fc.Forward(normed, tokens, hidden, kernels, _activation);
        _projection.AddTo(hidden, tokens, x, kernels);
    }
}

/// <summary>A stack of residual attention blocks: <c>{prefix}.resblocks.{i}</c>.</summary>
internal sealed class Transformer
{
    readonly ResidualAttentionBlock[] _blocks;

    public int Width { get; }
    public int MlpWidth { get; }

    public Transformer(Checkpoint checkpoint, string prefix, int width, int layers, int heads, int mlpWidth, Activation activation, float epsilon)
    {
        Width = width; MlpWidth = mlpWidth;
        _blocks = Enumerable.Range(0, layers)
            .Select(i => new ResidualAttentionBlock(checkpoint, $"{prefix}.resblocks.{i}", width, heads, mlpWidth, activation, epsilon))
            .ToArray();
    }

    /// <summary>x [batch·length, width] in place.</summary>
    public void Forward(Span<float> x, int batch, int length, bool causal, Workspace workspace)
    {
        foreach (var block in _blocks) block.Forward(x, batch, length, causal, workspace);
    }
}
