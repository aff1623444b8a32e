using ManagedClip.Tokenization;

namespace ManagedClip;

public sealed partial class ClipModel
{
    Lazy<ClipTokenizer>? _tokenizer;

    /// <summary>
    /// The tokenizer: <see cref="ClipModelOptions.VocabularyPath"/>, else a vocabulary next to the weights
    /// (vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz). Found on first use; a missing one is a VocabularyException saying where it looked.
    /// </summary>
    public ClipTokenizer Tokenizer =>
        LazyInitializer.EnsureInitialized(ref _tokenizer, () => new Lazy<ClipTokenizer>(() => ClipTokenizer.Discover(_options.VocabularyPath, SourcePath))).Value;

    /// <summary>The number of token positions the text tower takes (77 for the released models): every text is padded or cut to it.</summary>
    public int TextContextLength => Config.Text.ContextLength;

    /// <summary>Texts → one raw feature vector [E] per text, tokenized for the model's context (<see cref="TextContextLength"/>).
    /// Over-long texts are truncated as clip.tokenize(truncate=True) does.</summary>
    /// <exception cref="VocabularyException">No vocabulary was found (<see cref="ClipModelOptions.VocabularyPath"/>, or none beside the weights),
    /// or the vocabulary gives a token id the model does not have.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    /// <example>
    /// <code>
    /// float[][] features = model.EncodeTexts(["a photo of a cat", "a photo of a dog"]);
    /// float[] unit = ClipModel.Normalize(features[0]); // raw features: normalize them for cosine similarity
    /// </code>
    /// </example>
    public float[][] EncodeTexts(IEnumerable<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        using var call = _calls.Enter(this);
        var list = texts as IReadOnlyList<string> ?? texts.ToArray();
        return EncodeTextsEntered(list);
    }

    float[][] EncodeTextsEntered(IReadOnlyList<string> texts)
    {
        var ids = new int[texts.Count][];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = Tokenizer.Tokenize(texts[i], TextContextLength).Ids;
            if (_textTower.Problem(ids[i]) is { } problem)
                throw new VocabularyException($"text '{(texts[i].Length <= 60 ? texts[i] : texts[i][..57] + "...")}': {problem}: vocabulary '{Tokenizer.Source}' does not fit the model '{SourcePath}'");
        }
        return EncodeTokensEntered(ids);
    }

    /// <summary>One text → raw features [E].</summary>
    public float[] EncodeText(string text) => EncodeTexts([text])[0];
}
