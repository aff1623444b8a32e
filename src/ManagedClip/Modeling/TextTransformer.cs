using ManagedClip.Backends;
using ManagedClip.Checkpoints;

namespace ManagedClip.Modeling;

/// <summary>
/// The text tower (<c>clip/model.py CLIP.encode_text</c>): token + positional embedding, causal transformer, ln_final, the hidden state at
/// the end-of-text token, projection. Runs only the first (last EOT position + 1) positions of a batch:
/// the causal mask makes later positions invisible to the pooled state, so the result is bit-identical.
/// </summary>
internal sealed class TextTransformer
{
    readonly TextConfig _config;
    readonly ComputeBackend _backend;
    readonly Tensor _tokenEmbedding;           // [vocab, T]
    readonly Tensor _positionalEmbedding;      // [context, T]
    readonly Transformer _transformer;
    readonly LayerNormWeights _lnFinal;
    readonly LinearWeights _projection;        // [T] → [E]

    public int EmbedDim => _projection.OutFeatures;
    public TextConfig Config => _config;

    public TextTransformer(WeightLoader weights, ClipConfig config)
    {
        var t = _config = config.Text;
        _backend = weights.Backend;
        _tokenEmbedding = weights.Constant("token_embedding.weight", t.VocabSize, t.Width);
        _positionalEmbedding = weights.Constant("positional_embedding", t.ContextLength, t.Width);
        _transformer = new Transformer(weights, "transformer", t.Width, t.Layers, t.Heads, t.MlpWidth, t.Activation, t.LayerNormEpsilon);
        _lnFinal = weights.LayerNorm("ln_final", t.Width, t.LayerNormEpsilon);
        _projection = weights.Projection("text_projection", t.Width, config.EmbedDim);
    }

    /// <summary>Why the tower cannot take this row of ids (its length, an id past the vocabulary, no end-of-text id), or null.</summary>
    public string? Problem(ReadOnlySpan<int> row)
    {
        if (row.Length == 0 || row.Length > _config.ContextLength)
            return $"{row.Length} token ids, the model's context holds 1..{_config.ContextLength}";
        foreach (int id in row)
            if ((uint)id >= (uint)_config.VocabSize) return $"token id {id} is outside the model's vocabulary of {_config.VocabSize}";
        if (_config.Pooling != Checkpoints.TextPooling.ArgMax && !row.Contains(_config.EndOfTextId))
            return $"token ids hold no end-of-text id {_config.EndOfTextId}";
        return null;
    }

    /// <summary>The position the pooled state is taken from: argmax of the ids (OpenAI), or the first end-of-text id.</summary>
    public int PoolingPosition(ReadOnlySpan<int> ids)
    {
        int position = _config.Pooling == Checkpoints.TextPooling.ArgMax ? ArgMax(ids) : ids.IndexOf(_config.EndOfTextId);
        if (position < 0) throw new ArgumentException($"token ids hold no end-of-text id {_config.EndOfTextId}");
        return position;
    }

    static int ArgMax(ReadOnlySpan<int> ids)
    {
        int best = 0;
        for (int i = 1; i < ids.Length; i++) if (ids[i] > ids[best]) best = i; // first maximal index, as torch.argmax
        return best;
    }

    /// <summary>ids [batch][≤ context] → features [batch, E] (not normalized), on at most <paramref name="threads"/> host threads.</summary>
    public void Forward(IReadOnlyList<int[]> ids, Span<float> features, int threads, bool fullContext = false) =>
        BatchParts.Run(_backend, threads, ids.Count, features, EmbedDim, (ops, start, count, part) => Forward(ops, ids, start, count, part, fullContext));

    /// <summary>Texts [start, start + count) of <paramref name="ids"/> → features [count, E].</summary>
    void Forward(Operators ops, IReadOnlyList<int[]> ids, int start, int count, Span<float> features, bool fullContext)
    {
        int batch = count, width = _config.Width;
        var pool = new int[batch];
        int length = 0;
        for (int b = 0; b < batch; b++)
        {
            var row = ids[start + b];
            if (Problem(row) is { } problem) throw new ArgumentException($"text {start + b}: {problem}"); // callers check first, naming the row
            pool[b] = PoolingPosition(row);
            length = Math.Max(length, pool[b] + 1);
        }
        if (fullContext) length = _config.ContextLength;

        // x[b, i] = token_embedding[ids[b][i]] + positional_embedding[i], i < length; ids shorter than length read as padding 0.   [batch, L, T]
        var tokens = new int[batch * length];
        for (int b = 0; b < batch; b++)
        {
            var row = ids[start + b];
            row.AsSpan(0, Math.Min(row.Length, length)).CopyTo(tokens.AsSpan(b * length, length));
        }
        var x = ops.Rent(batch * length * width);
        ops.EmbedTokens(_tokenEmbedding, tokens, length, _positionalEmbedding, width, x);
        _transformer.Forward(ops, x, batch, length, causal: true);

        // ln_final is per token, so applying it to the pooled rows only is the same.   [batch, T] → [batch, E]
        for (int b = 0; b < batch; b++) pool[b] += b * length;
        var pooled = ops.Rent(batch * width);
        ops.GatherRows(x, pool, width, pooled);
        ops.LayerNorm(_lnFinal, pooled, pooled, batch);
        var output = ops.Rent(batch * EmbedDim);
        ops.Linear(_projection, pooled, batch, output);
        ops.Download(output, features);
    }
}
