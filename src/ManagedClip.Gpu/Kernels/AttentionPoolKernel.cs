using ILGPU;
using ILGPU.Algorithms;

namespace ManagedClip.Gpu.Kernels;

/// <summary>Batch, tokens n, width D and heads of one attention-pool launch.</summary>
internal readonly struct AttentionPoolShape(int batch, int tokens, int width, int heads)
{
    public readonly int Batch = batch, Tokens = tokens, Width = width, Heads = heads;
    public int HeadDim => Width / Heads;
}

/// <summary>
/// The ModifiedResNet attention pool's heads (src/ManagedClip/Modeling/AttentionPool2d.cs has the derivation), one group
/// of 256 threads per (image b, head h), with the projected query q [B, D] and the tokens x [B, n, D]:
/// t = (q_h · Wk_h)/√hd ∈ R^D (Wk_h: rows h·hd.. of k_proj.weight [D, D]); p = softmax_j(t·x_j); mean = Σ_j p_j x_j;
/// out[b, h·hd + r] = Wv_h[r]·mean + bv[h·hd + r]. t, p and mean live in the caller's scratch ([B·H, D], [B·H, n],
/// [B·H, D]), which each group writes and reads itself only (a group barrier orders its global writes before its reads).
/// <para>
/// Work per group is 2·hd·D + 2·n·D multiply-adds. The D-long loops (t, mean) have neighbouring threads on neighbouring
/// columns (coalesced); the dot products (scores, the value rows) give each thread one row, read sequentially, which the
/// L1 cache serves line by line; n and hd are small (50 and 64 for RN50), so that leaves most threads idle there: what to
/// split next on a GPU (a warp per row with a shuffle reduction).
/// </para>
/// Sums run in the CPU's orders: t = (Σ_r q_r Wk[r, c])·scale, the softmax as exp(s − max)/Σ, mean from p_0·x_0 on.
/// </summary>
internal static class AttentionPoolKernel
{
    public const int Threads = 256;

    public static void Heads(ArrayView<float> query, ArrayView<float> tokens, ArrayView<float> keyWeight, ArrayView<float> valueWeight,
        ArrayView<float> valueBias, ArrayView<float> scratch, ArrayView<float> output, AttentionPoolShape s)
    {
        int t = Group.IdxX, d = s.Width, n = s.Tokens, hd = s.HeadDim;
        int g = Grid.IdxX, h = g % s.Heads, b = g / s.Heads;
        int turnedAt = g * d, scoresAt = s.Batch * s.Heads * d + g * n, meanAt = s.Batch * s.Heads * (d + n) + g * d;
        float scale = 1f / XMath.Sqrt(hd);

        for (int c = t; c < d; c += Threads)
        {
            float sum = 0f;
            for (int r = 0; r < hd; r++) sum += query[b * d + h * hd + r] * keyWeight[(h * hd + r) * d + c];
            scratch[turnedAt + c] = sum * scale;
        }
        Group.Barrier();

        for (int j = t; j < n; j += Threads)
        {
            float dot = 0f;
            for (int c = 0; c < d; c++) dot += scratch[turnedAt + c] * tokens[(b * n + j) * d + c];
            scratch[scoresAt + j] = dot;
        }
        Group.Barrier();

        // Softmax over the n scores: every thread reads the max and the sum (n is small), each writes its own tokens.
        float max = float.NegativeInfinity;
        for (int j = 0; j < n; j++) max = XMath.Max(max, scratch[scoresAt + j]);
        Group.Barrier();
        for (int j = t; j < n; j += Threads) scratch[scoresAt + j] = XMath.Exp(scratch[scoresAt + j] - max);
        Group.Barrier();
        float total = 0f;
        for (int j = 0; j < n; j++) total += scratch[scoresAt + j];
        Group.Barrier();
        for (int j = t; j < n; j += Threads) scratch[scoresAt + j] /= total;
        Group.Barrier();

        for (int c = t; c < d; c += Threads)
        {
            float mean = 0f;
            for (int j = 0; j < n; j++) mean += scratch[scoresAt + j] * tokens[(b * n + j) * d + c];
            scratch[meanAt + c] = mean;
        }
        Group.Barrier();

        for (int r = t; r < hd; r += Threads)
        {
            int row = h * hd + r;
            float sum = 0f;
            for (int c = 0; c < d; c++) sum += valueWeight[row * d + c] * scratch[meanAt + c];
            output[b * d + row] = sum + valueBias[row];
        }
    }
}
