using ManagedClip.Checkpoints;
using ManagedClip.Tests.Support;
using ManagedClip.Tokenization;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Parity;

/// <summary>
/// Checkpoints the engine has never seen: other widths and head counts, fp16 and bf16 files, HF configs with GELU,
/// and full-size ViT-B/32 and RN50. Weights are regenerated from tests/fixtures (bit-identical to the PyTorch
/// side), the expected features come from the transcription of the original code (tests/fixtures/make_synthetic.py).
/// </summary>
public sealed class SyntheticParityTests(ITestOutputHelper output) : IDisposable
{
    const double Bound = 1e-4;
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-synthetic-").FullName;
    static readonly Lazy<ClipTokenizer> Tokenizer = new(() => ClipTokenizer.FromBpeFile(TestData.BpeVocabulary));

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<string> VitCases => new(SyntheticCases.LoadAll().Where(c => c.Arch == "vit").Select(c => c.Name));

    [Theory, MemberData(nameof(VitCases))]
    public void FeaturesMatchTheReference(string name) => CheckCase(name, Bound, Bound);

    [Fact]
    public void SmallResNetFp16MatchesTheReference() => CheckCase("rn-w32-openai-f16", Bound, Bound);

    /// <summary>
    /// Full-size RN50: 50 layers of convolutions amplify float32 rounding, and random inputs give nearly identical
    /// features (a small spread to divide by); the original's own fp32 output lies ~1e-4 from a float64 evaluation,
    /// so the issue sets the image bound at 1e-3 here. The distance to float64 is printed for the record.
    /// </summary>
    [Fact]
    public void FullSizeResNet50MatchesTheReference()
    {
        var features = CheckCase("rn50-openai-f32", 1e-3, Bound);
        var f64 = SyntheticCases.LoadExpected("rn50-openai-f32").ImageFeaturesF64!;
        double toFloat64 = TestData.RelativeError(features, f64.Select(r => r.Select(v => (float)v).ToArray()).ToArray());
        output.WriteLine($"rn50-openai-f32: engine vs float64 evaluation {toFloat64:E2}");
        Assert.True(toFloat64 < 1e-3, $"engine is {toFloat64:E2} from the float64 evaluation");
    }

    internal float[][] CheckCase(string name, double imageBound, double textBound)
    {
        var spec = SyntheticCases.LoadAll().Single(c => c.Name == name);
        var expected = SyntheticCases.LoadExpected(name);
        string path = SyntheticCheckpoint.Write(spec.Layout == "hf" ? Path.Combine(_folder, name) : Path.Combine(_folder, name + ".safetensors"), spec);
        using var model = ClipModel.Load(spec.Layout == "hf" ? Path.GetDirectoryName(path)! : path);

        // The inferred configuration is the one the fixture was built with.
        var config = model.Config;
        Assert.Equal(spec.EmbedDim, config.EmbedDim);
        Assert.Equal(spec.ImageResolution, config.Vision.ImageSize);
        Assert.Equal(spec.VisionWidth, config.Vision.Width);
        Assert.Equal(spec.VisionHeads, config.Vision.Heads);
        Assert.Equal(spec.TransformerWidth, config.Text.Width);
        Assert.Equal(spec.TransformerHeads, config.Text.Heads);
        Assert.Equal(spec.TransformerLayers, config.Text.Layers);
        Assert.Equal(spec.DType, model.StorageDType.ToString());

        // Tokenizer ids equal the original tokenizer's, then features equal the original model's.
        var ids = spec.Texts.Select(Tokenizer.Value.Encode).ToArray();
        for (int i = 0; i < ids.Length; i++) Assert.Equal(expected.Ids[i], ids[i]);
        double textError = TestData.RelativeError(model.EncodeTokens(ids), expected.TextFeatures);

        var pixels = SyntheticCheckpoint.GenerateImages(spec);
        var imageFeatures = model.EncodeImages(pixels, spec.NumImages);
        double imageError = TestData.RelativeError(imageFeatures, expected.ImageFeatures);
        output.WriteLine($"{name}: image relative error {imageError:E2}, text {textError:E2}");
        Assert.True(imageError < imageBound, $"{name}: image features relative error {imageError:E2} exceeds {imageBound:E0}");
        Assert.True(textError < textBound, $"{name}: text features relative error {textError:E2} exceeds {textBound:E0}");
        return imageFeatures;
    }
}
