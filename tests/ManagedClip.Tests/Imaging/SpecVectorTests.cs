using ManagedClip.Imaging;

namespace ManagedClip.Tests.Imaging;

/// <summary>Every row of shared/docs/clip-spec.md §8.5 (verified against Pillow 9.4.0 there).</summary>
public class SpecVectorTests
{
    public static IEnumerable<object[]> SyntheticRows => new object[][]
    {
        new object[] { 500,375,224,false,298,224,0,37,19163984L, "fec2c4cf45f6b48d11a6e03727b7f14fa37dd29ea6d1abd9eb9e65b072ca724f", new byte[] { 182,44,62 }, new byte[] { 195,53,66 }, new float[] { 1.054431f,-0.956685f,-0.541695f } },
        new object[] { 500,375,224,true,298,224,0,37,19163984L, "fec2c4cf45f6b48d11a6e03727b7f14fa37dd29ea6d1abd9eb9e65b072ca724f", new byte[] { 182,44,62 }, new byte[] { 195,53,66 }, new float[] { 1.054431f,-0.956685f,-0.541695f } },
        new object[] { 305,300,224,false,227,224,0,2,19041724L, "9ba3539ae2f139a75f9add010423270ad9ecae430b9ba2b05eb0bb01da8d8363", new byte[] { 21,1,3 }, new byte[] { 230,121,11 }, new float[] { 1.565376f,0.063843f,-1.323799f } },
        new object[] { 305,300,224,true,227,224,0,1,19036089L, "4cd40f553e47d958003aa1798ad32f7d96c215e7d204055ee8f57df4dbcb2b10", new byte[] { 11,0,1 }, new byte[] { 220,49,2 }, new float[] { 1.419391f,-1.016716f,-1.451780f } },
        new object[] { 100,80,224,false,280,224,0,28,15364922L, "e91ec50b06a9a392832410b881d755855a463b03b27de19eb9b73208b89afd72", new byte[] { 68,13,10 }, new byte[] { 207,131,23 }, new float[] { 1.229612f,0.213921f,-1.153158f } },
        new object[] { 100,80,224,true,280,224,0,28,15364922L, "e91ec50b06a9a392832410b881d755855a463b03b27de19eb9b73208b89afd72", new byte[] { 68,13,10 }, new byte[] { 207,131,23 }, new float[] { 1.229612f,0.213921f,-1.153158f } },
        new object[] { 500,375,336,false,448,336,0,56,43118983L, "2ad50abba22d5b0513cd486f47aea1813096ba6b61bda99536e3a2bfa877567c", new byte[] { 182,47,63 }, new byte[] { 141,240,198 }, new float[] { 0.266116f,1.849767f,1.335353f } },
        new object[] { 500,375,336,true,448,336,0,56,43118983L, "2ad50abba22d5b0513cd486f47aea1813096ba6b61bda99536e3a2bfa877567c", new byte[] { 182,47,63 }, new byte[] { 141,240,198 }, new float[] { 0.266116f,1.849767f,1.335353f } },
        new object[] { 305,300,288,false,292,288,0,2,31474805L, "c57e90d8cacfd7576e7f5eb8e7e8aef76ca3c3e30819f1592287dae8025a5b32", new byte[] { 15,0,2 }, new byte[] { 149,59,3 }, new float[] { 0.382903f,-0.866639f,-1.437560f } },
        new object[] { 305,300,288,true,292,288,0,2,31474805L, "c57e90d8cacfd7576e7f5eb8e7e8aef76ca3c3e30819f1592287dae8025a5b32", new byte[] { 15,0,2 }, new byte[] { 149,59,3 }, new float[] { 0.382903f,-0.866639f,-1.437560f } },
    };

    [Theory]
    [MemberData(nameof(SyntheticRows))]
    public void SyntheticImage(int w, int h, int n, bool hf, int rw, int rh, int top, int left, long sum, string sha, byte[] px00, byte[] px111, float[] x111)
    {
        var pre = new ImagePreprocessor(hf ? PreprocessOptions.HuggingFace(n) : PreprocessOptions.OpenAI(n));
        Assert.Equal((rw, rh), pre.ResizedSize(w, h));
        var crop = hf ? CropRounding.Floor : CropRounding.HalfToEven;
        Assert.Equal(left, ImagePreprocessor.CropOffset(rw, n, crop));
        Assert.Equal(top, ImagePreprocessor.CropOffset(rh, n, crop));

        using var png = ImagingTestData.SyntheticPng(w, h);
        byte[] u8 = pre.ResizeAndCropToRgb8(png, $"synthetic {w}x{h}");
        Assert.Equal(n * n * 3, u8.Length);
        Assert.Equal(sum, u8.Sum(b => (long)b));
        Assert.Equal(sha, ImagingTestData.Sha256Hex(u8));
        Assert.Equal(px00, u8[0..3]);
        int o = (111 * n + 111) * 3;
        Assert.Equal(px111, u8[o..(o + 3)]);

        png.Position = 0;
        float[] t = pre.Preprocess(png, $"synthetic {w}x{h}");
        Assert.Equal(3 * n * n, t.Length);
        for (int c = 0; c < 3; c++) Assert.InRange(t[c * n * n + 111 * n + 111], x111[c] - 1.5e-6f, x111[c] + 1.5e-6f);
    }

    [Theory]
    [InlineData(false, 206, 13899842L, "c96d5fbf8273c7bea132e34850cece46b2b4a3f976fe50c1e9855f55495eddce", -0.458359f, -0.372282f, -0.147678f)]
    [InlineData(true, 205, 13621437L, "229e87d0ba80c5886a165e0e7f01ec586691024613ed058ed08e3b4125230f45", -0.485103f, -0.400131f, -0.174140f)]
    public void ClipPng(bool hf, int left, long sum, string sha, float m0, float m1, float m2)
    {
        string path = ImagingTestData.ClipPng;
        Assert.Equal("308a3ca4503f1c7a07803916c369d78c4ef501e5ab7fc727da9b5e1d2f9ec85b", ImagingTestData.Sha256Hex(File.ReadAllBytes(path)));
        var pre = new ImagePreprocessor(hf ? PreprocessOptions.HuggingFace(224) : PreprocessOptions.OpenAI(224));
        Assert.Equal(SourceMode.Rgba, ImageLoader.Load(path, pre.Options).Mode);
        Assert.Equal((635, 224), pre.ResizedSize(2162, 762));
        Assert.Equal(left, ImagePreprocessor.CropOffset(635, 224, pre.Options.Crop));
        byte[] u8 = pre.ResizeAndCropToRgb8(path);
        Assert.Equal(sum, u8.Sum(b => (long)b));
        Assert.Equal(sha, ImagingTestData.Sha256Hex(u8));
        Assert.Equal(new byte[3], u8[0..3]);
        int o = (111 * 224 + 111) * 3;
        Assert.Equal(new byte[3], u8[o..(o + 3)]);

        float[] t = pre.Preprocess(path);
        float[] black = [-1.792263f, -1.752097f, -1.480220f];
        float[] mean = [m0, m1, m2];
        for (int c = 0; c < 3; c++)
        {
            Assert.InRange(t[c * 224 * 224 + 111 * 224 + 111], black[c] - 1.5e-6f, black[c] + 1.5e-6f);
            double avg = t.AsSpan(c * 224 * 224, 224 * 224).ToArray().Average(v => (double)v);
            Assert.InRange(avg, mean[c] - 1.5e-6, mean[c] + 1.5e-6);
        }
    }
}
