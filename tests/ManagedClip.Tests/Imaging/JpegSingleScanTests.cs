using ManagedClip.Imaging;
using ManagedClip.Imaging.Jpeg;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// Sequential images whose first scan carries every component are decoded in libjpeg's single-pass mode: transformed
/// MCU row by MCU row, one row of coefficients kept (the corpus tests check their bytes). Such an image has no other
/// scan; libjpeg stops at a second one (JERR_EOI_EXPECTED) and Pillow 9.4 refuses the file ("broken data stream").
/// </summary>
public sealed class JpegSingleScanTests
{
    [Fact]
    public void SecondScanAfterTheScanOfEveryComponentIsRefused()
    {
        var data = File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "jpeg-corpus", "rgb420_q90_64x48.jpg"));
        int sos = data.AsSpan().IndexOf([(byte)0xFF, (byte)0xDA]);
        int eoi = data.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xD9]);
        // The scan (SOS header and its entropy-coded data) twice, then EOI.
        byte[] twice = [.. data.AsSpan(0, eoi), .. data.AsSpan(sos, eoi - sos), .. data.AsSpan(eoi)];
        var error = Assert.Throws<ImageInputException>(() => JpegDecoder.Decode(twice, "twice.jpg", PreprocessOptions.DefaultMaxPixels));
        Assert.Contains("image 'twice.jpg'", error.Message);
        Assert.Contains("a scan after the only scan of a sequential image", error.Message);
    }
}
