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

    /// <summary>Texts → one raw feature vector [E] per text. Over-long texts are truncated as clip.tokenize(truncate=True) does.</summary>
    public float[][] EncodeTexts(IReadOnlyList<string> texts)
    {
        using var call = _calls.Enter(this);
        return EncodeTokensEntered(texts.Select(Tokenizer.Encode).ToArray());
    }

    /// <summary>One text → raw features [E].</summary>
    public float[] EncodeText(string text) => EncodeTexts([text])[0];
}
