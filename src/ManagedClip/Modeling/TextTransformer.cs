using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// The text tower (<c>clip/model.py CLIP.encode_text</c>): token + positional embedding, causal transformer, ln_final, the hidden state at
/// the end-of-text token, projection. Runs only the first (last EOT position + 1) positions of a batch:
/// the causal mask makes later positions invisible to the pooled state, so the result is bit-identical.
/// </summary>
internal sealed class TextTransformer
{
    readonly TextConfig _config;
    readonly float[] _tokenEmbedding;          // [vocab, T]
    readonly float[] _positionalEmbedding;     // [context, T]
    readonly Transformer _transformer;
    readonly LayerNormLayer _lnFinal;
    readonly Linear _projection;               // [T] → [E]

    public int EmbedDim => _projection.OutFeatures;
    public TextConfig Config => _config;

    public TextTransformer(Checkpoint checkpoint, ClipConfig config)
    {
        var t = _config = config.Text;
        _tokenEmbedding = checkpoint.Read("token_embedding.weight", t.VocabSize, t.Width);
        _positionalEmbedding = checkpoint.Read("positional_embedding", t.ContextLength, t.Width);
        _transformer = new Transformer(checkpoint, "transformer", t.Width, t.Layers, t.Heads, t.MlpWidth, t.Activation, t.LayerNormEpsilon);
        _lnFinal = LayerNormLayer.Load(checkpoint, "ln_final", t.Width, t.LayerNormEpsilon);
        _projection = Linear.LoadProjection(checkpoint, "text_projection", t.Width, config.EmbedDim);
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

    /// <summary>ids [batch][≤ context] → features [batch, E] (not normalized).</summary>
    public unsafe void Forward(IReadOnlyList<int[]> ids, Span<float> features, KernelContext kernels, bool fullContext = false)
    {
        int batch = ids.Count, e = EmbedDim;
        if (BatchParallel.Parts(batch, kernels.Threads) == 1) { ForwardBatch(ids, features, kernels, fullContext); return; }
        fixed (float* pf = features)
        {
            float* f = pf;
            long featuresLength = features.Length;
            BatchParallel.Run(batch, kernels, (start, count, partKernels) =>
            {
                var part = new int[count][];
                for (int b = 0; b < count; b++) part[b] = ids[start + b];
                ForwardBatch(part, new Span<float>(f, (int)featuresLength).Slice(start * e, count * e), partKernels, fullContext);
            });
        }
    }

    void ForwardBatch(IReadOnlyList<int[]> ids, Span<float> features, KernelContext kernels, bool fullContext)
    {
        int batch = ids.Count, width = _config.Width;
        var pool = new int[batch];
        int length = 0;
        for (int b = 0; b < batch; b++)
        {
            var row = ids[b];
            if (Problem(row) is { } problem) throw new ArgumentException($"text {b}: {problem}"); // callers check first, naming the row
            pool[b] = PoolingPosition(row);
            length = Math.Max(length, pool[b] + 1);
        }
        if (fullContext) length = _config.ContextLength;

        // x[b, i] = token_embedding[ids[b][i]] + positional_embedding[i], i < length; ids shorter than length read as padding 0.   [batch, L, T]
        using var workspace = new Workspace(batch * length, width, _transformer.MlpWidth, kernels);
        var x = workspace.Rent(batch * length * width);
        ReadOnlySpan<float> table = _tokenEmbedding;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < length; i++)
            {
                int id = i < ids[b].Length ? ids[b][i] : 0;
                System.Numerics.Tensors.TensorPrimitives.Add(table.Slice(id * width, width), _positionalEmbedding.AsSpan(i * width, width),
                    x.AsSpan((b * length + i) * width, width));
            }
        _transformer.Forward(x, batch, length, causal: true, workspace);

        // ln_final is per token, so applying it to the pooled rows only is the same.   [batch, T] → [batch, E]
        var pooled = workspace.Rent(batch * width);
        for (int b = 0; b < batch; b++) x.AsSpan((b * length + pool[b]) * width, width).CopyTo(pooled.AsSpan(b * width));
        _lnFinal.Forward(pooled, pooled, batch, kernels);
        _projection.Forward(pooled, batch, features, kernels);
    }
}
