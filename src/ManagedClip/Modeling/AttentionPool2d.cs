using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// The ModifiedResNet's final pooling (spec §4.5): the G² feature vectors become tokens, their mean is prepended,
/// positional embeddings are added, and one multi-head attention with the mean token as its only query gives the
/// output, projected to E. Only that query row is ever used, so q is computed for token 0 alone; k and v for all tokens.
/// </summary>
internal sealed class AttentionPool2d
{
    readonly float[] _positionalEmbedding;   // [n = G²+1, D]
    readonly Linear _query, _key, _value;    // D → D, with bias
    readonly Linear _output;                 // c_proj: D → E, with bias
    readonly int _grid, _width, _heads;

    public int OutputDim => _output.OutFeatures;
    public int Tokens => _grid * _grid + 1;

    public AttentionPool2d(Checkpoint checkpoint, string prefix, int grid, int width, int heads, int outputDim)
    {
        _grid = grid; _width = width; _heads = heads;
        _positionalEmbedding = checkpoint.Read($"{prefix}.positional_embedding", grid * grid + 1, width);
        _query = Linear.Load(checkpoint, $"{prefix}.q_proj", width, width);
        _key = Linear.Load(checkpoint, $"{prefix}.k_proj", width, width);
        _value = Linear.Load(checkpoint, $"{prefix}.v_proj", width, width);
        _output = Linear.Load(checkpoint, $"{prefix}.c_proj", width, outputDim);
    }

    /// <summary>Scratch this pool needs for a batch, in floats.</summary>
    public long ScratchLength(int batch) => (long)batch * (3 * Tokens * _width + 2 * _width);

    /// <summary>x [B, G, G, D] (NHWC, i.e. [B, G², D] tokens in row-major pixel order) → features [B, E].</summary>
    public void Forward(ReadOnlySpan<float> x, int batch, Span<float> features, Span<float> scratch, int threads)
    {
        int d = _width, n = Tokens, pixels = _grid * _grid;
        Span<float> tokens = scratch[..(batch * n * d)];                              // [B, n, D]
        Span<float> keys = scratch.Slice(batch * n * d, batch * n * d);                // [B, n, D]
        Span<float> values = scratch.Slice(2 * batch * n * d, batch * n * d);          // [B, n, D]
        Span<float> first = scratch.Slice(3 * batch * n * d, batch * d);               // [B, D] token 0 of each image
        Span<float> query = scratch.Slice(3 * batch * n * d + batch * d, batch * d);   // [B, D]

        // Token 0 is the mean of the G² pixels (a G×G average pool), then the pixels; all plus the positional embedding.
        Pooling.AveragePool(x, batch, _grid, _grid, d, _grid, first, threads);         // [B, D] means
        for (int b = 0; b < batch; b++)
        {
            Span<float> sequence = tokens.Slice(b * n * d, n * d);                     // [n, D]
            first.Slice(b * d, d).CopyTo(sequence);
            x.Slice(b * pixels * d, pixels * d).CopyTo(sequence[d..]);
            System.Numerics.Tensors.TensorPrimitives.Add(sequence, _positionalEmbedding, sequence);
            sequence[..d].CopyTo(first.Slice(b * d, d));
        }

        _query.Forward(first, batch, query, threads);                                 // q, token 0 only   [B, D]
        _key.Forward(tokens, batch * n, keys, threads);                               // k                 [B·n, D]
        _value.Forward(tokens, batch * n, values, threads);                           // v                 [B·n, D]
        // softmax(q·kᵀ/√64)·v per head, one query row per image, into the rows `first` no longer needs.   [B, D]
        Attention.Forward(query, d, keys, values, d, first, d, batch, 1, n, _heads, d / _heads, causal: false, threads);
        _output.Forward(first, batch, features, threads);                             // c_proj            [B, E]
    }
}
