using ManagedClip.Tests.Cli;
using ManagedClip.Tests.Support;
using ManagedClip.Tokenization;
using ManagedClip.ZeroShot;

namespace ManagedClip.Tests.Modeling;

/// <summary>
/// A model whose context is shorter than 77 (vit-tiny-a with its first 16 positional embeddings): texts are padded or
/// truncated to the model's context by one rule, for embed-text, classify and the library alike.
/// </summary>
public sealed class TextContextTests : IDisposable
{
    const int Context = 16;
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-context-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string ShortContextModel() => CheckpointRewriter.Rewrite(TestData.ReferenceModel("vit-tiny-a"), Path.Combine(_folder, "short"), (file, entry) =>
    {
        if (entry.Name != "positional_embedding") return CheckpointRewriter.Keep(file, entry);
        var rows = file.GetBytes(entry)[..(Context * entry.Shape[1] * sizeof(float))].ToArray();
        return new SafetensorsEntry(entry.Name, "F32", [Context, entry.Shape[1]], () => rows);
    });

    [Fact]
    public void TextsArePaddedOrTruncatedToTheModelsContext()
    {
        using var model = ClipModel.Load(ShortContextModel(), new ClipModelOptions { VocabularyPath = TestData.BpeVocabulary, MaxThreads = 2 });
        Assert.Equal(Context, model.Config.Text.ContextLength);
        string shortText = "a photo of a cat", longText = string.Join(' ', Enumerable.Repeat("cat", 40));
        var features = model.EncodeTexts([shortText, longText]);

        // clip.tokenize(text, context_length=16, truncate=True): the first 14 ids between start and end, zero padding.
        var tokenizer = ClipTokenizer.FromBpeFile(TestData.BpeVocabulary);
        int[] Tokenize(string text)
        {
            var bpe = tokenizer.EncodeWithoutSpecialTokens(text).Take(Context - 2).ToArray();
            var ids = new int[Context];
            ids[0] = tokenizer.StartOfTextId;
            bpe.CopyTo(ids, 1);
            ids[bpe.Length + 1] = tokenizer.EndOfTextId;
            return ids;
        }
        var expected = model.EncodeTokens([Tokenize(shortText), Tokenize(longText)]);
        Assert.Equal(expected[0], features[0]);
        Assert.Equal(expected[1], features[1]);

        // The zero-shot classifier follows the same rule: a prompt that fits is encoded, one that does not is refused.
        var classifier = ZeroShotClassifier.Create(model, ["cat"], ["{}"]);
        Assert.Equal(ClipModel.Normalize(model.EncodeText("cat")), classifier.ClassEmbeddings.ToArray());
        var tooLong = Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, [string.Join(' ', Enumerable.Repeat("cat", 15))], ["{}"]));
        Assert.Contains($"context holds {Context}", tooLong.Message);
    }

    [Fact]
    public void EmbedTextWorksOnAShortContextModel()
    {
        string model = ShortContextModel();
        var result = CliRunner.Run("embed-text", "--model", model, "--vocab", TestData.BpeVocabulary, "--json", "--", "a photo of a cat", string.Join(' ', Enumerable.Repeat("cat", 40)));
        Assert.Equal("", result.Stderr);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(2, result.JsonLines.Length);
        using var loaded = ClipModel.Load(model, new ClipModelOptions { VocabularyPath = TestData.BpeVocabulary });
        var expected = ClipModel.Normalize(loaded.EncodeText("a photo of a cat"));
        Assert.Equal(expected, result.JsonLines[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()));

        var classify = CliRunner.Run("classify", "--model", model, "--vocab", TestData.BpeVocabulary, "--no-cache", "--labels", "cat,dog", "--json",
            Path.Combine(TestData.Reference, "images", "chelsea.png"));
        Assert.Equal(0, classify.ExitCode);
    }
}
