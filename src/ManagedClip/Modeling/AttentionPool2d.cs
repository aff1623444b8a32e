using System.Numerics.Tensors;
using ManagedClip.Checkpoints;
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
    readonly float[] _positionalEmbedding;   // [n = G²+1, D]
    readonly Linear _query;                  // D → D, with bias
    readonly PackedMatrix[] _keyRows;        // per head: Wk_h [hd, D], applied on the right: q_h [hd] → [D]
    readonly PackedMatrix[] _valueRows;      // per head: Wv_hᵀ [D, hd]: averaged tokens [D] → [hd]
    readonly float[] _valueBias;             // bv [D]
    readonly Linear _output;                 // c_proj: D → E, with bias
    readonly int _grid, _width, _heads;

    public int OutputDim => _output.OutFeatures;
    public int Tokens => _grid * _grid + 1;

    public AttentionPool2d(Checkpoint checkpoint, string prefix, int grid, int width, int heads, int outputDim)
    {
        _grid = grid; _width = width; _heads = heads;
        int headDim = width / heads;
        _positionalEmbedding = checkpoint.Read($"{prefix}.positional_embedding", grid * grid + 1, width);
        _query = Linear.Load(checkpoint, $"{prefix}.q_proj", width, width);
        // k_proj.bias is not needed (q_h·bk_h is the same for every token, and the softmax removes it), but it is part of the
        // checkpoint's attention pool: read it anyway, so that a file without it is reported like any other missing tensor.
        _ = checkpoint.Read($"{prefix}.k_proj.bias", width);
        _keyRows = Linear.WithScratch(checkpoint, $"{prefix}.k_proj.weight", [width, width], w => PerHead(w, heads, width, PackedMatrix.FromRowMajor));
        _valueRows = Linear.WithScratch(checkpoint, $"{prefix}.v_proj.weight", [width, width], w => PerHead(w, heads, width, PackedMatrix.FromLinearWeight));
        _valueBias = checkpoint.Read($"{prefix}.v_proj.bias", width);
        _output = Linear.Load(checkpoint, $"{prefix}.c_proj", width, outputDim);
    }

    /// <summary>A [D, D] weight [out, in] cut into the heads' row blocks [hd, D], each packed by <paramref name="pack"/>(rows, hd, D).</summary>
    static PackedMatrix[] PerHead(ReadOnlySpan<float> weight, int heads, int width, Func<ReadOnlySpan<float>, int, int, PackedMatrix> pack)
    {
        int headDim = width / heads;
        var packed = new PackedMatrix[heads];
        for (int h = 0; h < heads; h++) packed[h] = pack(weight.Slice(h * headDim * width, headDim * width), headDim, width);
        return packed;
    }

    /// <summary>Scratch this pool needs for a batch, in floats.</summary>
    public long ScratchLength(int batch) => (long)batch * (Tokens * _width + 2 * _heads * _width + _heads * Tokens + 4 * _width);

    /// <summary>
    /// Heads [h0, h1) of the pool, on one thread, for every image: q_h [B, hd] · Wk_h [hd, D] → [B, D] (scaled by 1/√hd as the
    /// scores would be), scores against every token, softmax over tokens, the softmax-weighted mean of the tokens, and
    /// mean [B, D] · Wv_hᵀ [D, hd] + bv_h → that head's columns of <paramref name="first"/>. Scratch is [H, B, ·] per head, so
    /// heads on different threads never share a row.
    /// </summary>
    void Heads(int h0, int h1, int batch, ReadOnlySpan<float> query, ReadOnlySpan<float> tokens, Span<float> turned, Span<float> averaged,
        Span<float> scores, Span<float> headIn, Span<float> headOut, Span<float> first, float scale, KernelContext kernels)
    {
        int d = _width, n = Tokens, hd = d / _heads, bd = batch * d;
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
                Span<float> p = scores.Slice((b * _heads + h) * n, n);                                                  // [n]
                for (int t = 0; t < n; t++) p[t] = TensorPrimitives.Dot(turnedQuery, sequence.Slice(t * d, d));
                TensorPrimitives.SoftMax(p, p);
                Span<float> mean = meanHead.Slice(b * d, d);                                                            // Σ_t p_t x_t   [D]
                TensorPrimitives.Multiply(sequence[..d], p[0], mean);
                for (int t = 1; t < n; t++) TensorPrimitives.MultiplyAdd(sequence.Slice(t * d, d), p[t], mean, mean);
            }
            Gemm.Multiply(new ReadOnlyMatrixView(meanHead, batch, d), _valueRows[h], new MatrixView(oh, batch, hd),
                Epilogue.Of(_valueBias.AsSpan(h * hd, hd)), kernels);
            for (int b = 0; b < batch; b++) oh.Slice(b * hd, hd).CopyTo(first.Slice(b * d + h * hd, hd));
        }
    }

    /// <summary>x [B, G, G, D] (NHWC, i.e. [B, G², D] tokens in row-major pixel order) → features [B, E].</summary>
    public void Forward(ReadOnlySpan<float> x, int batch, Span<float> features, Span<float> scratch, KernelContext kernels)
    {
        int d = _width, n = Tokens, pixels = _grid * _grid, heads = _heads, hd = d / heads;
        int bd = batch * d, hbd = heads * bd;
        Span<float> tokens = scratch[..(batch * n * d)];                               // [B, n, D]
        Span<float> rest = scratch[(batch * n * d)..];
        Span<float> turned = rest[..hbd];                                               // [H, B, D] q_hᵀ Wk_h per head
        Span<float> averaged = rest.Slice(hbd, hbd);                                    // [H, B, D]
        Span<float> scores = rest.Slice(2 * hbd, batch * heads * n);                    // [B, H, n]
        Span<float> first = rest.Slice(2 * hbd + batch * heads * n, bd);                // [B, D] token 0, then the heads' outputs
        Span<float> query = rest.Slice(2 * hbd + batch * heads * n + bd, bd);           // [B, D]
        Span<float> headIn = rest.Slice(2 * hbd + batch * heads * n + 2 * bd, bd);      // [H, B, hd] the heads' queries
        Span<float> headOut = rest.Slice(2 * hbd + batch * heads * n + 3 * bd, bd);     // [H, B, hd] the heads' outputs

        // Token 0 is the mean of the G² pixels (a G×G average pool), then the pixels; all plus the positional embedding.
        Pooling.AveragePool(x, new ImageGeometry(batch, _grid, _grid, d), _grid, first, kernels);   // [B, D] means
        for (int b = 0; b < batch; b++)
        {
            Span<float> sequence = tokens.Slice(b * n * d, n * d);                     // [n, D]
            first.Slice(b * d, d).CopyTo(sequence);
            x.Slice(b * pixels * d, pixels * d).CopyTo(sequence[d..]);
            TensorPrimitives.Add(sequence, _positionalEmbedding, sequence);
            sequence[..d].CopyTo(first.Slice(b * d, d));
        }
        _query.Forward(first, batch, query, kernels);                                 // q, token 0 only   [B, D]

        // The heads are independent: the threads share them out, one fork-join in all (at batch 1 the per-head products are
        // [1, 64] · [64, D] and [1, D] · [D, 64], too small to split, and each head's weights are read once). Each share's
        // products run on its own thread (a batch member's context keeps its team).
        float scale = 1f / MathF.Sqrt(hd);
        var single = kernels.WithThreads(1);
        long workPerHead = 2L * batch * (hd * d + n * d);   // Wk_h and Wv_h products, scores and the weighted mean
        unsafe
        {
            fixed (float* pq = query, pt = tokens, pturned = turned, pavg = averaged, ps = scores, pin = headIn, pout = headOut, pf = first)
            {
                float* q = pq, tk = pt, tu = pturned, av = pavg, sc = ps, hi = pin, ho = pout, f = pf;
                int tokensLength = tokens.Length;
                kernels.For(heads, workPerHead, (h0, h1) => Heads(h0, h1,
                    batch, new Span<float>(q, bd), new Span<float>(tk, tokensLength), new Span<float>(tu, hbd), new Span<float>(av, hbd),
                    new Span<float>(sc, batch * heads * n), new Span<float>(hi, bd), new Span<float>(ho, bd), new Span<float>(f, bd), scale, single));
            }
        }
        _output.Forward(first, batch, features, kernels);                             // c_proj            [B, E]
    }
}
