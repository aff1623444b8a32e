using System.Diagnostics;
using ManagedClip;
using ManagedClip.Checkpoints;
using ManagedClip.Imaging;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Parity;

/// <summary>The ModifiedResNet reference checkpoint (rn-tiny-a) against the original OpenAI code's outputs (relative error ≤ 1e-4).</summary>
public class ResNetParityTests(ITestOutputHelper output)
{
    const double Bound = 1e-4;
    const string Model = "rn-tiny-a";

    static string Folder => TestData.ReferenceModel(Model);

    [Fact]
    public void ConfigIsInferredFromTheStateDict()
    {
        using var clip = ClipModel.Load(Folder);
        var vision = clip.Config.Vision;
        Assert.Equal(VisionArchitecture.ModifiedResNet, vision.Architecture);
        Assert.Equal([1, 1, 2, 1], vision.ResNetBlocks);
        Assert.Equal(16, vision.Width);
        Assert.Equal(8, vision.Heads);                 // 32·16/64
        Assert.Equal(64, clip.ImageSize);              // 32·G, G = 2
        Assert.Equal(48, clip.EmbedDim);
    }

    [Fact]
    public void ImageFeaturesFromRandomInputMatch()
    {
        using var expected = TestData.ReadJson(Path.Combine(Folder, "expected.json"));
        var (pixels, shape) = NpyFile.Read(Path.Combine(Folder, "random_input.npy"));
        using var clip = ClipModel.Load(Folder);
        Assert.Equal([shape[0], 3, clip.ImageSize, clip.ImageSize], shape);
        var got = clip.EncodeImages(pixels, shape[0]);
        double error = TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("tensors").GetProperty("random_input.npy")));
        output.WriteLine($"{Model}: random_input relative error {error:E2}");
        Assert.True(error < Bound, $"{Model}: image features relative error {error:E2} exceeds {Bound:E0}");
    }

    [Fact]
    public void ImageFeaturesFromReferenceTensorsMatch()
    {
        using var expected = TestData.ReadJson(Path.Combine(Folder, "expected.json"));
        using var clip = ClipModel.Load(Folder);
        var images = expected.RootElement.GetProperty("images").EnumerateObject().ToArray();
        var pixels = images.SelectMany(image => NpyFile.Read(Path.Combine(TestData.Reference, "images", $"{Path.GetFileNameWithoutExtension(image.Name)}.{clip.ImageSize}.npy")).Data).ToArray();
        var got = clip.EncodeImages(pixels, images.Length);
        double error = TestData.RelativeError(got, images.Select(image => image.Value.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray());
        output.WriteLine($"{Model}: reference image tensors relative error {error:E2}");
        Assert.True(error < Bound, $"{Model}: image features relative error {error:E2} exceeds {Bound:E0}");
    }

    [Fact]
    public void TextFeaturesFromReferenceIdsMatch()
    {
        using var expected = TestData.ReadJson(Path.Combine(Folder, "expected.json"));
        using var cases = TestData.ReadJson(Path.Combine(TestData.Reference, "tokenizer_cases.json"));
        var idsByText = cases.RootElement.EnumerateArray().ToDictionary(c => c.GetProperty("text").GetString()!, c => c.GetProperty("ids").EnumerateArray().Select(v => v.GetInt32()).ToArray());
        var texts = expected.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToArray();
        using var clip = ClipModel.Load(Folder);
        var got = clip.EncodeTokens(texts.Select(t => idsByText[t]).ToArray());
        double error = TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("text_features")));
        output.WriteLine($"{Model}: text relative error {error:E2}");
        Assert.True(error < Bound, $"{Model}: text features relative error {error:E2} exceeds {Bound:E0}");
    }

    [Fact]
    public void BatchSplitAndThreadCountDoNotChangeFeatures()
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(Folder, "random_input.npy"));
        using var whole = ClipModel.Load(Folder, new ClipModelOptions { MaxThreads = 1 });
        using var split = ClipModel.Load(Folder, new ClipModelOptions { MaxThreads = 2, MaxBatch = 2 });
        var one = whole.EncodeImages(pixels, shape[0]);
        var two = split.EncodeImages(pixels, shape[0]);
        for (int i = 0; i < one.Length; i++)
            for (int j = 0; j < one[i].Length; j++) Assert.Equal(one[i][j], two[i][j], 1e-5f);
        var stopwatch = Stopwatch.StartNew();
        int runs = 0;
        while (stopwatch.ElapsedMilliseconds < 500 || runs < 3) { whole.EncodeImage(pixels.AsSpan(0, 3 * 64 * 64)); runs++; }
        output.WriteLine($"{Model}: {stopwatch.Elapsed.TotalMilliseconds / runs:F2} ms per image (batch 1, 1 thread, {runs} runs)");
    }
}
