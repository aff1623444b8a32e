using System.Numerics.Tensors;
using ManagedClip.Kernels;
using ManagedClip.Modeling;

namespace ManagedClip.Backends.Cpu;

/// <summary>
/// The attention pool's heads on the CPU, first query only (<see cref="AttentionPool2d"/> explains why the keys and values of the
/// tokens are never formed): per head h, Wk_h [hd, D] packed to turn a query q_h [hd] into a D-vector, and Wv_hᵀ [D, hd] packed to
/// take the softmax-weighted mean of the tokens [D] to the head's output [hd].
/// </summary>
internal sealed class CpuAttentionPool : AttentionPoolWeights
{
    readonly PackedMatrix[] _keyRows;        // per head: Wk_h [hd, D], applied on the right: q_h [hd] → [D]
    readonly PackedMatrix[] _valueRows;      // per head: Wv_hᵀ [D, hd]: averaged tokens [D] → [hd]
    readonly float[] _valueBias;             // bv [D]

    public CpuAttentionPool(ReadOnlySpan<float> keyWeight, ReadOnlySpan<float> valueWeight, float[] valueBias, int width, int heads) : base(width, heads)
    {
        _keyRows = PerHead(keyWeight, heads, width, PackedMatrix.FromRowMajor);
        _valueRows = PerHead(valueWeight, heads, width, PackedMatrix.FromLinearWeight);
        _valueBias = valueBias;
    }

    /// <summary>A [D, D] weight [out, in] cut into the heads' row blocks [hd, D], each packed by <paramref name="pack"/>(rows, hd, D).</summary>
    static PackedMatrix[] PerHead(ReadOnlySpan<float> weight, int heads, int width, Func<ReadOnlySpan<float>, int, int, PackedMatrix> pack)
    {
        int headDim = width / heads;
        var packed = new PackedMatrix[heads];
        for (int h = 0; h < heads; h++) packed[h] = pack(weight.Slice(h * headDim * width, headDim * width), headDim, width);
        return packed;
    }

    /// <summary>[H, B, D] turned queries, [H, B, D] averaged tokens, [B, H, n] scores, [H, B, hd] the heads' queries and outputs.</summary>
    public override long ScratchFor(int batch, int tokens) => (long)batch * (2 * Heads * Width + Heads * tokens + 2 * Width);

    /// <summary>query [B, D], tokens [B, n, D] → output [B, D], the heads' outputs side by side (before c_proj).</summary>
    public void Forward(ReadOnlySpan<float> query, ReadOnlySpan<float> tokens, int batch, Span<float> output, Span<float> scratch, KernelContext kernels)
    {
        int d = Width, heads = Heads, hd = d / heads, n = tokens.Length / (batch * d);
        int bd = batch * d, hbd = heads * bd;
        Span<float> turned = scratch[..hbd];                                            // [H, B, D] q_hᵀ Wk_h per head
        Span<float> averaged = scratch.Slice(hbd, hbd);                                 // [H, B, D]
        Span<float> scores = scratch.Slice(2 * hbd, batch * heads * n);                 // [B, H, n]
        Span<float> headIn = scratch.Slice(2 * hbd + batch * heads * n, bd);            // [H, B, hd] the heads' queries
        Span<float> headOut = scratch.Slice(2 * hbd + batch * heads * n + bd, bd);      // [H, B, hd] the heads' outputs

        // The heads are independent: the threads share them out, one fork-join in all (at batch 1 the per-head products are
        // [1, 64] · [64, D] and [1, D] · [D, 64], too small to split, and each head's weights are read once). Each share's
        // products run on its own thread (a batch member's context keeps its team).
        float scale = 1f / MathF.Sqrt(hd);
        var single = kernels.WithThreads(1);
        long workPerHead = 2L * batch * (hd * d + n * d);   // Wk_h and Wv_h products, scores and the weighted mean
        unsafe
        {
            fixed (float* pq = query, pt = tokens, pturned = turned, pavg = averaged, ps = scores, pin = headIn, pout = headOut, po = output)
            {
                float* q = pq, tk = pt, tu = pturned, av = pavg, sc = ps, hi = pin, ho = pout, o = po;
                int tokensLength = tokens.Length;
                kernels.For(heads, workPerHead, (h0, h1) => RunHeads(h0, h1,
                    batch, new Span<float>(q, bd), new Span<float>(tk, tokensLength), new Span<float>(tu, hbd), new Span<float>(av, hbd),
                    new Span<float>(sc, batch * heads * n), new Span<float>(hi, bd), new Span<float>(ho, bd), new Span<float>(o, bd), scale, single));
            }
        }
    }

    /// <summary>
    /// Heads [h0, h1) of the pool, on one thread, for every image: q_h [B, hd] · Wk_h [hd, D] → [B, D] (scaled by 1/√hd as the
    /// scores would be), scores against every token, softmax over tokens, the softmax-weighted mean of the tokens, and
    /// mean [B, D] · Wv_hᵀ [D, hd] + bv_h → that head's columns of <paramref name="output"/>. Scratch is [H, B, ·] per head, so
    /// heads on different threads never share a row.
    /// </summary>
    void RunHeads(int h0, int h1, int batch, ReadOnlySpan<float> query, ReadOnlySpan<float> tokens, Span<float> turned, Span<float> averaged,
        Span<float> scores, Span<float> headIn, Span<float> headOut, Span<float> output, float scale, KernelContext kernels)
    {
        int d = Width, heads = Heads, hd = d / heads, n = tokens.Length / (batch * d), bd = batch * d;
        for (int h = h0; h < h1; h++)
        {
            Span<float> qh = headIn.Slice(h * batch * hd, batch * hd), oh = headOut.Slice(h * batch * hd, batch * hd);   // [B, hd]
            Span<float> turnedHead = turned.Slice(h * bd, bd), meanHead = averaged.Slice(h * bd, bd);                     // [B, D]
            for (int b = 0; b < batch; b++) query.Slice(b * d + h * hd, hd).CopyTo(qh.Slice(b * hd, hd));
            Gemm.Multiply(new ReadOnlyMatrixView(qh, batch, hd), _keyRows[h], new MatrixView(turnedHead, batch, d), default, kernels);
            TensorPrimitives.Multiply(turnedHead, scale, turnedHead);
            for (int b = 0; b < batch; b++)
            {
                ReadOnlySpan<float> sequence = tokens.Slice(b * n * d, n * d);                                          // [n, D]
                ReadOnlySpan<float> turnedQuery = turnedHead.Slice(b * d, d);
                Span<float> p = scores.Slice((b * heads + h) * n, n);                                                   // [n]
                for (int t = 0; t < n; t++) p[t] = TensorPrimitives.Dot(turnedQuery, sequence.Slice(t * d, d));
                TensorPrimitives.SoftMax(p, p);
                Span<float> mean = meanHead.Slice(b * d, d);                                                            // Σ_t p_t x_t   [D]
                TensorPrimitives.Multiply(sequence[..d], p[0], mean);
                for (int t = 1; t < n; t++) TensorPrimitives.MultiplyAdd(sequence.Slice(t * d, d), p[t], mean, mean);
            }
            Gemm.Multiply(new ReadOnlyMatrixView(meanHead, batch, d), _valueRows[h], new MatrixView(oh, batch, hd),
                Epilogue.Of(_valueBias.AsSpan(h * hd, hd)), kernels);
            for (int b = 0; b < batch; b++) oh.Slice(b * hd, hd).CopyTo(output.Slice(b * d + h * hd, hd));
        }
    }
}
