namespace ManagedClip.Tests.Api;

/// <summary>One image from a stream, from bytes or from a path: the features <see cref="ClipModel.EncodeImageFiles"/> gives the same file, bit for bit.</summary>
public sealed class ImageInputTests
{
    static string Model => TestData.ReferenceModel("vit-tiny-a");

    [Theory]
    [InlineData("chelsea.png")]
    [InlineData("coffee_q95.jpg")]
    [InlineData("moon_gray.png")]
    public void StreamBytesAndPathGiveTheFilesFeatures(string image)
    {
        string path = Path.Combine(TestData.Reference, "images", image);
        using var model = ClipModel.Load(Model);
        var expected = model.EncodeImageFiles([path]).Single().Features!;

        using (var stream = File.OpenRead(path))
        {
            Assert.Equal(expected, model.EncodeImage(stream, image));
            Assert.True(stream.CanRead, "the stream is left open");
        }
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(expected, model.EncodeImage(bytes, image));
        Assert.Equal(expected, model.EncodeImage(new ReadOnlyMemory<byte>([0xFF, .. bytes, 0xFF], 1, bytes.Length), image));   // a slice of a larger array
        Assert.Equal(expected, model.EncodeImageFile(path));
    }

    [Fact]
    public void BytesThatAreNoImageAreAnImageInputErrorNamingTheUpload()
    {
        using var model = ClipModel.Load(Model);
        var error = Assert.Throws<ImageInputException>(() => model.EncodeImage("not an image at all"u8.ToArray(), "upload-17"));
        Assert.Contains("'upload-17'", error.Message);
        string missing = Path.Combine(Path.GetTempPath(), "managedclip-missing-image.png");
        Assert.Contains(missing, Assert.Throws<ImageInputException>(() => model.EncodeImageFile(missing)).Message);
    }
}

/// <summary>Sequences where lists were required: a lazy Directory.EnumerateFiles or a LINQ query goes in as it is.</summary>
public sealed class SequenceInputTests
{
    [Fact]
    public void LazySequencesGiveWhatArraysGive()
    {
        using var model = ClipModel.Load(TestData.ReferenceModel("vit-tiny-a"), new ClipModelOptions { VocabularyPath = TestData.BpeVocabulary });
        var folder = Path.Combine(TestData.Reference, "images");
        var files = Directory.EnumerateFiles(folder, "*.png").Order(StringComparer.Ordinal);
        var fromArray = model.EncodeImageFiles(files.ToArray()).Select(r => r.Features!).ToArray();
        var fromSequence = model.EncodeImageFiles(files).Select(r => r.Features!).ToArray();
        Assert.Equal(fromArray.Length, fromSequence.Length);
        for (int i = 0; i < fromArray.Length; i++) Assert.Equal(fromArray[i], fromSequence[i]);

        var texts = new[] { "a cat", "a dog" };
        var fromQuery = model.EncodeTexts(texts.Select(t => t));
        Assert.Equal(model.EncodeTexts(texts)[1], fromQuery[1]);

        var labels = new[] { "cat", "dog" }.Where(_ => true);
        var classifier = ManagedClip.ZeroShot.ZeroShotClassifier.Create(model, labels, ["a photo of a {}."],
            new ManagedClip.ZeroShot.ZeroShotOptions { Cache = null });
        Assert.Equal(["cat", "dog"], classifier.Labels);
    }
}
