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

/// <summary>Token ids a model cannot take are errors naming the row or the text, the model's file and, for texts, the vocabulary's.</summary>
public sealed class TokenIdErrorTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-ids-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static int[] Row(params int[] ids) => [49406, .. ids, 49407];

    [Fact]
    public void BadRowsOfEncodeTokensAreNamedByTheirIndexInTheCall()
    {
        using var model = ClipModel.Load(TestData.ReferenceModel("vit-tiny-a"), new ClipModelOptions { MaxThreads = 2 });
        // Row 19 is in the second chunk of 16: its index in the call is what a caller can find.
        var rows = Enumerable.Range(0, 20).Select(i => Row(320, 2368)).ToArray();
        rows[19] = Row(320, 99_999);
        var outside = Assert.Throws<ArgumentException>(() => model.EncodeTokens(rows));
        Assert.Contains("row 19", outside.Message);
        Assert.Contains("99999", outside.Message);
        Assert.Contains(model.SourcePath, outside.Message);

        rows[19] = Row(Enumerable.Repeat(320, 80).ToArray());
        var tooLong = Assert.Throws<ArgumentException>(() => model.EncodeTokens(rows));
        Assert.Contains("row 19", tooLong.Message);
        Assert.Contains("82 token ids", tooLong.Message);
        Assert.Contains(model.SourcePath, tooLong.Message);
    }

    [Fact]
    public void ATextWhoseIdsTheModelLacksNamesTheTextTheVocabularyAndTheModel()
    {
        // A model with a 1000-entry token table and OpenAI's 49408-entry vocabulary (start of text is id 49406).
        string folder = CheckpointRewriter.Rewrite(TestData.ReferenceModel("vit-tiny-a"), Path.Combine(_folder, "small-vocab"), (file, entry) =>
        {
            if (entry.Name != "token_embedding.weight") return CheckpointRewriter.Keep(file, entry);
            var rows = file.GetBytes(entry)[..(1000 * entry.Shape[1] * sizeof(float))].ToArray();
            return new SafetensorsEntry(entry.Name, "F32", [1000, entry.Shape[1]], () => rows);
        });
        using var model = ClipModel.Load(folder, new ClipModelOptions { VocabularyPath = TestData.BpeVocabulary });
        var error = Assert.Throws<VocabularyException>(() => model.EncodeTexts(["a photo of a cat"]));
        Assert.Contains("'a photo of a cat'", error.Message);
        Assert.Contains("49406", error.Message);
        Assert.Contains(TestData.BpeVocabulary, error.Message);
        Assert.Contains(model.SourcePath, error.Message);

        var cli = CliRunner.Run("embed-text", "--model", folder, "--vocab", TestData.BpeVocabulary, "--", "a photo of a cat");
        CliRunner.AssertCleanError(cli, 1, "a photo of a cat");
    }
}
