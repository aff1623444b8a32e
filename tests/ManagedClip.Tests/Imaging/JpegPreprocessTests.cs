using System.Text.Json;
using ManagedClip.Imaging;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// JPEG files through the whole preprocessing, against Pillow 9.4 running the OpenAI and Hugging Face pipelines
/// (tests/fixtures/imaging/make_jpeg_preprocess_cases.py → jpeg_preprocess_cases.json): exactly decoded, with
/// Pillow's draft (ReducedSizeDecoding), and with the EXIF orientation applied. The uint8 crop must be bit-exact.
/// </summary>
public class JpegPreprocessTests
{
    public static IEnumerable<object[]> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "jpeg_preprocess_cases.json")));
        foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
            yield return
            [
                c.GetProperty("file").GetString()!, c.GetProperty("pipeline").GetString()!, c.GetProperty("R").GetInt32(),
                c.GetProperty("mode").GetString()!, c.GetProperty("opened")[0].GetInt32(), c.GetProperty("opened")[1].GetInt32(),
                c.GetProperty("sha256").GetString()!,
            ];
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesPillow(string file, string pipeline, int r, string pillowMode, int openedWidth, int openedHeight, string sha256)
    {
        var options = pipeline.StartsWith("hf", StringComparison.Ordinal) ? PreprocessOptions.HuggingFace(r) : PreprocessOptions.OpenAI(r);
        options = options with
        {
            ReducedSizeDecoding = pipeline.EndsWith("_draft", StringComparison.Ordinal),
            ApplyExifOrientation = pipeline == "openai_exif",
        };
        string path = file.StartsWith("../", StringComparison.Ordinal)
            ? Path.Combine(ImagingTestData.Fixtures, "..", "..", "..", file)
            : Path.Combine(ImagingTestData.Fixtures, file);

        DecodedImage image = ImageLoader.Load(path, options);
        var expectedMode = pillowMode switch { "L" => SourceMode.L, "CMYK" => SourceMode.Cmyk, _ => SourceMode.Rgb };
        Assert.Equal((expectedMode, openedWidth, openedHeight), (image.Mode, image.Width, image.Height));
        Assert.Equal(sha256, ImagingTestData.Sha256Hex(new ImagePreprocessor(options).ResizeAndCropToRgb8(path)));
    }
}
