using ManagedClip;
using ManagedClip.Imaging;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Parity;

/// <summary>Features of the shared reference checkpoints against the original OpenAI code's outputs (relative error ≤ 1e-4).</summary>
public class ReferenceParityTests(ITestOutputHelper output)
{
    const double Bound = 1e-4;

    public static TheoryData<string> Models => new() { "vit-tiny-a", "vit-tiny-a-hf", "rn-tiny-a" };

    [Theory, MemberData(nameof(Models))]
    public void TextFeaturesFromReferenceIdsMatch(string model)
    {
        using var expected = TestData.ReadJson(Path.Combine(TestData.ReferenceModel(model), "expected.json"));
        using var cases = TestData.ReadJson(Path.Combine(TestData.Reference, "tokenizer_cases.json"));
        var idsByText = cases.RootElement.EnumerateArray().ToDictionary(c => c.GetProperty("text").GetString()!, c => c.GetProperty("ids").EnumerateArray().Select(v => v.GetInt32()).ToArray());
        var texts = expected.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToArray();
        using var clip = ClipModel.Load(TestData.ReferenceModel(model));
        var got = clip.EncodeTokens(texts.Select(t => idsByText[t]).ToArray());
        double error = TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("text_features")));
        output.WriteLine($"{model}: text relative error {error:E2}");
        Assert.True(error < Bound, $"{model}: text features relative error {error:E2} exceeds {Bound:E0}");
    }

    [Theory, MemberData(nameof(Models))]
    public void ImageFeaturesFromRandomInputMatch(string model)
    {
        using var expected = TestData.ReadJson(Path.Combine(TestData.ReferenceModel(model), "expected.json"));
        var (pixels, shape) = NpyFile.Read(Path.Combine(TestData.ReferenceModel(model), "random_input.npy"));
        using var clip = ClipModel.Load(TestData.ReferenceModel(model));
        Assert.Equal([shape[0], 3, clip.ImageSize, clip.ImageSize], shape);
        var got = clip.EncodeImages(pixels, shape[0]);
        double error = TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("tensors").GetProperty("random_input.npy")));
        output.WriteLine($"{model}: random_input relative error {error:E2}");
        Assert.True(error < Bound, $"{model}: image features relative error {error:E2} exceeds {Bound:E0}");
    }

    [Theory, MemberData(nameof(Models))]
    public void ImageFeaturesFromReferenceTensorsMatch(string model)
    {
        using var expected = TestData.ReadJson(Path.Combine(TestData.ReferenceModel(model), "expected.json"));
        using var clip = ClipModel.Load(TestData.ReferenceModel(model));
        var images = expected.RootElement.GetProperty("images").EnumerateObject().ToArray();
        var pixels = images.SelectMany(image => NpyFile.Read(Path.Combine(TestData.Reference, "images", $"{Path.GetFileNameWithoutExtension(image.Name)}.{clip.ImageSize}.npy")).Data).ToArray();
        var got = clip.EncodeImages(pixels, images.Length);
        double error = TestData.RelativeError(got, images.Select(image => image.Value.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray());
        output.WriteLine($"{model}: reference image tensors relative error {error:E2}");
        Assert.True(error < Bound, $"{model}: image features relative error {error:E2} exceeds {Bound:E0}");
    }
}
