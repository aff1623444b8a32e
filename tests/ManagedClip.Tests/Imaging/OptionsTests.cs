using ManagedClip.Imaging;

namespace ManagedClip.Tests.Imaging;

public sealed class OptionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mclip-opts-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Json(string text)
    {
        string p = Path.Combine(_dir, $"preprocessor_config_{Guid.NewGuid():N}.json");
        File.WriteAllText(p, text);
        return p;
    }

    [Fact]
    public void DefaultsAreOpenAI224()
    {
        var o = new PreprocessOptions();
        Assert.Equal(o, PreprocessOptions.OpenAI(224) with { Mean = o.Mean, Std = o.Std });
        Assert.Equal((224, 224, CropRounding.HalfToEven, false, false, PreprocessOptions.DefaultMaxPixels, PillowFilter.Bicubic),
                     (o.Size, o.CropSize, o.Crop, o.ConvertToRgbFirst, o.ApplyExifOrientation, o.MaxPixels, o.Resample));
        Assert.Null(o.RescaleFactor);
        Assert.Equal(PreprocessOptions.ClipMean, o.Mean);
        Assert.Equal(PreprocessOptions.ClipStd, o.Std);
    }

    [Fact]
    public void LegacyClipConfig()
    {
        // openai/clip-vit-base-patch32 preprocessor_config.json
        var o = PreprocessOptions.FromHuggingFace(Json("""
            {"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
             "feature_extractor_type": "CLIPFeatureExtractor",
             "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
             "resample": 3, "size": 224}
            """), 999);
        Assert.Equal((224, 224, CropRounding.Floor, true, PillowFilter.Bicubic, false), (o.Size, o.CropSize, o.Crop, o.ConvertToRgbFirst, o.Resample, o.ResizeToSquare));
        Assert.Equal(1.0 / 255, o.RescaleFactor);
        Assert.Equal(PreprocessOptions.ClipMean, o.Mean);
        Assert.Equal(PreprocessOptions.ClipStd, o.Std);
    }

    [Fact]
    public void NewStyleConfig()
    {
        var o = PreprocessOptions.FromHuggingFace(Json("""
            {"crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_convert_rgb": true, "do_normalize": true,
             "do_rescale": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25],
             "image_processor_type": "CLIPImageProcessor", "resample": 2, "rescale_factor": 0.00392156862745098,
             "size": {"shortest_edge": 336}}
            """), 224);
        Assert.Equal((336, 336, PillowFilter.Bilinear), (o.Size, o.CropSize, o.Resample));
        Assert.Equal([0.5f, 0.5f, 0.5f], o.Mean);
        Assert.Equal([0.25f, 0.25f, 0.25f], o.Std);
        Assert.Equal(0.00392156862745098, o.RescaleFactor);
    }

    [Fact]
    public void MissingFieldsUseFallbackAndDefaults()
    {
        var o = PreprocessOptions.FromHuggingFace(Json("{}"), 288);
        Assert.Equal(PreprocessOptions.HuggingFace(288) with { Mean = o.Mean, Std = o.Std }, o);
        var sq = PreprocessOptions.FromHuggingFace(Json("""{"size": {"height": 64, "width": 64}, "do_normalize": false, "do_rescale": false}"""), 224);
        Assert.True(sq.ResizeToSquare);
        Assert.Equal((64, 64, 1.0), (sq.Size, sq.CropSize, sq.RescaleFactor!.Value));
        Assert.Equal([0f, 0f, 0f], sq.Mean);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[1, 2]")]
    [InlineData("""{"size": "big"}""")]
    [InlineData("""{"size": -3}""")]
    [InlineData("""{"crop_size": {"height": 224, "width": 256}}""")]
    [InlineData("""{"image_mean": [0.5, 0.5]}""")]
    [InlineData("""{"image_std": [0.5, 0, 0.5]}""")]
    [InlineData("""{"resample": 9}""")]
    [InlineData("""{"do_center_crop": false}""")]
    [InlineData("""{"do_resize": "yes"}""")]
    public void BadConfigsNameTheFile(string text)
    {
        string p = Json(text);
        var ex = Assert.Throws<ImageInputException>(() => PreprocessOptions.FromHuggingFace(p, 224));
        Assert.Contains(p, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingConfigFile()
    {
        string p = Path.Combine(_dir, "nope.json");
        Assert.Contains(p, Assert.Throws<ImageInputException>(() => PreprocessOptions.FromHuggingFace(p, 224)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HfConfigReproducesHfPipeline()
    {
        // The CLIP.png HF row of shared/docs/clip-spec.md §8.5, through options read from a config file.
        var o = PreprocessOptions.FromHuggingFace(Json("""{"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}"""), 224);
        byte[] u8 = new ImagePreprocessor(o).ResizeAndCropToRgb8(ImagingTestData.ClipPng);
        Assert.Equal("229e87d0ba80c5886a165e0e7f01ec586691024613ed058ed08e3b4125230f45", ImagingTestData.Sha256Hex(u8));
    }

    [Theory]
    [InlineData(0, CropRounding.HalfToEven, 0)] [InlineData(1, CropRounding.HalfToEven, 0)] [InlineData(3, CropRounding.HalfToEven, 2)]
    [InlineData(5, CropRounding.HalfToEven, 2)] [InlineData(7, CropRounding.HalfToEven, 4)] [InlineData(411, CropRounding.HalfToEven, 206)]
    [InlineData(3, CropRounding.Floor, 1)] [InlineData(7, CropRounding.Floor, 3)] [InlineData(411, CropRounding.Floor, 205)]
    [InlineData(-3, CropRounding.HalfToEven, -1)] [InlineData(-3, CropRounding.Floor, -2)]
    public void CropOffsets(int diff, CropRounding r, int want) => Assert.Equal(want, ImagePreprocessor.CropOffset(224 + diff, 224, r));

    [Fact]
    public void CropLargerThanResizePadsWithZeros()
    {
        // torchvision pads an image smaller than the crop; with Size 16 and CropSize 20 the border is black (0).
        var pre = new ImagePreprocessor(PreprocessOptions.OpenAI(16) with { CropSize = 20 });
        byte[] u8 = pre.ResizeAndCropToRgb8(Path.Combine(ImagingTestData.Fixtures, "rgb_40x33.png"));
        Assert.Equal(20 * 20 * 3, u8.Length);
        Assert.All(u8[..(20 * 3 * 2)], b => Assert.Equal(0, b)); // two padded rows on top
    }

    [Fact]
    public void NpyRoundTripAndValidation()
    {
        float[] data = Enumerable.Range(0, 24).Select(i => i * 0.5f - 3).ToArray();
        string p = Path.Combine(_dir, "t.npy");
        NpyFile.Write(p, data, [2, 3, 4]);
        (float[] d, int[] s) = NpyFile.Read(p);
        Assert.Equal(data, d);
        Assert.Equal(new[] { 2, 3, 4 }, s);
        Assert.Equal(0, (new FileInfo(p).Length - 24 * 4) % 64);

        byte[] bytes = File.ReadAllBytes(p);
        string bad = Path.Combine(_dir, "bad.npy");
        File.WriteAllBytes(bad, bytes[..^4]);
        Assert.Contains(bad, Assert.Throws<ImageInputException>(() => NpyFile.Read(bad)).Message, StringComparison.Ordinal);
        File.WriteAllBytes(bad, System.Text.Encoding.Latin1.GetBytes(System.Text.Encoding.Latin1.GetString(bytes).Replace("<f4", "<f8")));
        Assert.Contains("dtype", Assert.Throws<ImageInputException>(() => NpyFile.Read(bad)).Message, StringComparison.Ordinal);
        File.WriteAllBytes(bad, [1, 2, 3]);
        Assert.Throws<ImageInputException>(() => NpyFile.Read(bad));
    }

    /// <summary>A checkpoint's preprocessing is read from its header, config and preprocessor_config.json alone, and is what the loaded model uses.</summary>
    [Theory]
    [InlineData("vit-tiny-a")]
    [InlineData("vit-tiny-a-hf")]
    [InlineData("rn-tiny-a")]
    public void CheckpointDefaultsNeedNoWeights(string name)
    {
        string path = TestData.ReferenceModel(name);
        var fromCheckpoint = PreprocessOptions.ForCheckpoint(path);
        using var model = ClipModel.Load(path);
        var fromModel = model.DefaultPreprocessOptions();
        // Mean and Std are arrays (compared by reference in a record): compare them by value, the rest as the record.
        Assert.Equal(fromModel.Mean, fromCheckpoint.Mean);
        Assert.Equal(fromModel.Std, fromCheckpoint.Std);
        Assert.Equal(fromModel with { Mean = fromCheckpoint.Mean, Std = fromCheckpoint.Std }, fromCheckpoint);
        Assert.Equal(model.ImageSize, fromCheckpoint.CropSize);
    }
}
