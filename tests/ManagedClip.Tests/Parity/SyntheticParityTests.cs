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

    internal void CheckCase(string name, double imageBound, double textBound)
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
        double imageError = TestData.RelativeError(model.EncodeImages(pixels, spec.NumImages), expected.ImageFeatures);
        output.WriteLine($"{name}: image relative error {imageError:E2}, text {textError:E2}");
        Assert.True(imageError < imageBound, $"{name}: image features relative error {imageError:E2} exceeds {imageBound:E0}");
        Assert.True(textError < textBound, $"{name}: text features relative error {textError:E2} exceeds {textBound:E0}");
    }
}
