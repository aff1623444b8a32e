using ManagedClip.Imaging;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Imaging;

/// <summary>shared/reference/images: tensors the original OpenAI pipeline produced at R = 64, matched value for value.</summary>
public class ReferenceImageTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("chelsea.png")]
    [InlineData("immunohistochemistry.png")]
    [InlineData("moon_gray.png")]
    [InlineData("coffee_q95.jpg")]
    [InlineData("rocket_small.jpg")]
    public void MatchesOriginalPipeline(string name)
    {
        string dir = ImagingTestData.ReferenceImages;
        (float[] want, int[] shape) = NpyFile.Read(Path.Combine(dir, Path.GetFileNameWithoutExtension(name) + ".64.npy"));
        Assert.Equal(new[] { 3, 64, 64 }, shape);
        float[] got = new ImagePreprocessor(PreprocessOptions.OpenAI(64)).Preprocess(Path.Combine(dir, name));
        Assert.Equal(want.Length, got.Length);

        // Differences in 8-bit levels: 1 level = 1/255/std_c in normalized units.
        double maxLv = 0, sumLv = 0;
        int plane = 64 * 64, exact = 0;
        for (int i = 0; i < got.Length; i++)
        {
            double lv = Math.Abs(got[i] - want[i]) * 255.0 * PreprocessOptions.ClipStd[i / plane];
            maxLv = Math.Max(maxLv, lv);
            sumLv += lv;
            if (got[i] == want[i]) exact++;
        }
        double meanLv = sumLv / got.Length;
        output.WriteLine($"{name}: max {maxLv:F4} levels, mean {meanLv:F5} levels, {exact}/{got.Length} values bit-identical");
        // PNG and JPEG alike (JPEG through the managed decoder, Pillow's exact pixels): every value is the original's.
        Assert.True(exact == got.Length, $"{name}: {got.Length - exact} values differ, max {maxLv} levels, mean {meanLv} levels");
    }
}
