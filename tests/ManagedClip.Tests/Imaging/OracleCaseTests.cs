using System.Text.Json;
using ManagedClip.Imaging;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// Images the engine has never been tuned on, with Pillow 9.4 + numpy as the oracle
/// (tests/fixtures/imaging/make_image_cases.py → cases.json and the .npy tensors): L, LA, RGBA, P (PNG, GIF, BMP),
/// "1", 16-bit gray ("I"), 16-bit RGB and LA, up/downscaling, 400×9 and 7×300 strips, a half-to-even crop.
/// uint8 crops must be bit-exact, tensors within 1e-6.
/// </summary>
public class OracleCaseTests
{
    public static IEnumerable<object[]> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "cases.json")));
        foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
            yield return [c.GetProperty("file").GetString()!, c.GetProperty("pipeline").GetString()!, c.GetProperty("R").GetInt32()];
    }

    private static JsonElement Find(string file, string pipeline, int r)
    {
        var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "cases.json")));
        foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
            if (c.GetProperty("file").GetString() == file && c.GetProperty("pipeline").GetString() == pipeline && c.GetProperty("R").GetInt32() == r)
                return c.Clone();
        throw new KeyNotFoundException(file);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesPillow(string file, string pipeline, int r)
    {
        JsonElement c = Find(file, pipeline, r);
        var opts = pipeline == "hf" ? PreprocessOptions.HuggingFace(r) : PreprocessOptions.OpenAI(r);
        if (pipeline == "openai_exif") opts = opts with { ApplyExifOrientation = true };
        var pre = new ImagePreprocessor(opts);
        string path = Path.Combine(ImagingTestData.Fixtures, file);
        DecodedImage img = ImageLoader.Load(path, opts);

        int[] resized = c.GetProperty("resized").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] crop = c.GetProperty("crop").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal((resized[0], resized[1]), pre.ResizedSize(img.Width, img.Height));
        Assert.Equal(crop[0], ImagePreprocessor.CropOffset(resized[1], r, opts.Crop));
        Assert.Equal(crop[1], ImagePreprocessor.CropOffset(resized[0], r, opts.Crop));

        byte[] u8 = pre.ResizeAndCropToRgb8(path);
        byte[] want = Convert.FromHexString(c.GetProperty("u8_hex").GetString()!);
        if (!want.AsSpan().SequenceEqual(u8))
        {
            int diff = 0, max = 0, first = -1;
            for (int i = 0; i < u8.Length; i++)
                if (u8[i] != want[i]) { diff++; max = Math.Max(max, Math.Abs(u8[i] - want[i])); if (first < 0) first = i; }
            Assert.Fail($"{file} ({img.Mode}) {pipeline}: {diff} of {u8.Length} bytes differ, max {max}, first at pixel {first / 3} ch {first % 3}: got {u8[first]} want {want[first]}");
        }
        Assert.Equal(c.GetProperty("sha256").GetString(), ImagingTestData.Sha256Hex(u8));

        (float[] refT, int[] shape) = NpyFile.Read(Path.Combine(ImagingTestData.Fixtures, c.GetProperty("tensor").GetString()!));
        Assert.Equal(new[] { 3, r, r }, shape);
        float[] t = pre.Preprocess(path);
        for (int i = 0; i < t.Length; i++)
            Assert.True(Math.Abs(t[i] - refT[i]) <= 1e-6f, $"{file} {pipeline}: tensor[{i}] = {t[i]:R}, Pillow pipeline {refT[i]:R}");
    }

    [Theory]
    [InlineData("gray_45x37.png", SourceMode.L)]
    [InlineData("la_53x41.png", SourceMode.LA)]
    [InlineData("rgba_53x41.png", SourceMode.Rgba)]
    [InlineData("palette_77x51.png", SourceMode.Palette)]
    [InlineData("palette_trns_19x13.png", SourceMode.Palette)]
    [InlineData("palette_19x13.gif", SourceMode.Palette)]
    [InlineData("animated_29x23.gif", SourceMode.Palette)]
    [InlineData("bilevel_61x45.png", SourceMode.Bilevel)]
    [InlineData("gray16_47x39.png", SourceMode.I)]
    [InlineData("rgb16_43x35.png", SourceMode.Rgb)]
    [InlineData("la16_43x35.png", SourceMode.Rgba)]
    [InlineData("gray_45x37.bmp", SourceMode.L)]
    [InlineData("palette_77x51.bmp", SourceMode.Palette)]
    [InlineData("tiny_5x3.png", SourceMode.Rgb)]
    public void DecodesInPillowsMode(string file, SourceMode mode)
    {
        DecodedImage img = ImageLoader.Load(Path.Combine(ImagingTestData.Fixtures, file), PreprocessOptions.OpenAI(32));
        Assert.Equal(mode, img.Mode);
    }
}

/// <summary>Pillow's NEAREST index rule (accumulated <c>xo += in/out</c>, truncated) against index tables Pillow produced.</summary>
public class NearestRuleTests
{
    public static IEnumerable<object[]> Tables()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "cases.json")));
        foreach (JsonElement n in doc.RootElement.GetProperty("nearest").EnumerateArray())
            yield return [n.GetProperty("in").GetInt32(), n.GetProperty("out").GetInt32(), n.GetProperty("idx").EnumerateArray().Select(e => e.GetInt32()).ToArray()];
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public void IndicesMatchPillow(int inSize, int outSize, int[] idx) =>
        Assert.Equal(idx, PillowResample.NearestIndices(inSize, outSize));
}
