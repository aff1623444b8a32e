namespace ManagedClip.Imaging.Jpeg;

/// <summary>Reduced-size ("draft") decoding: libjpeg-turbo 2.1's DCT scaling by 1/2, 1/4 or 1/8 (JPEG_LIB_VERSION 62,
/// as Debian builds it for Pillow 9.4), and Pillow's choice of the scale.</summary>
internal static partial class JpegDecoder
{
    /// <summary>
    /// The scale denominator Pillow 9.4's <c>JpegImageFile.draft("RGB", (R, R))</c> chooses for a
    /// <paramref name="width"/> x <paramref name="height"/> JPEG and R = <paramref name="requestedSize"/>: the largest
    /// of 8, 4, 2 and 1 not above min(width / R, height / R) (integer division), i.e. the smallest output that stays at
    /// least R x R where the image allows it. Pillow then passes it as scale_denom with scale_num 1 and leaves the IDCT
    /// method and fancy upsampling as they are (its draft flag stays 0).
    /// </summary>
    public static int DraftScale(int width, int height, int requestedSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(requestedSize);
        int scale = Math.Min(width / requestedSize, height / requestedSize);
        return scale >= 8 ? 8 : scale >= 4 ? 4 : scale >= 2 ? 2 : 1;
    }

    /// <summary>A component's sizes in a scaled decode: <c>DctSize</c> samples per block side (libjpeg's
    /// DCT_scaled_size: 8, 4, 2 or 1), its scaled downsampled_width and downsampled_height, and the input group
    /// (h_in_group x v_in_group samples) that the upsampler turns into max_h x max_v pixels.</summary>
    private readonly record struct ScaledComponent(int DctSize, int Width, int Height, int HInGroup, int VInGroup);

    /// <summary>The output of a scaled decode: its size, whether libjpeg upsamples fancily, and each component's
    /// sizes.</summary>
    private sealed record ScaledOutput(int Width, int Height, bool FancyUpsampling, ScaledComponent[] Components);

    /// <summary>
    /// libjpeg-turbo's sizes for scale_num 1 / scale_denom <paramref name="scaleDenominator"/> (jdmaster.c
    /// jpeg_core_output_dimensions and jpeg_calc_output_dimensions, jdsample.c jinit_upsampler):
    /// <list type="bullet">
    /// <item>min_DCT_scaled_size = 8 / scale; output = ceil(image * min_DCT_scaled_size / 8);</item>
    /// <item>each component's DCT_scaled_size starts at min_DCT_scaled_size and doubles (up to 8) while its sampling
    /// ratio allows, so that subsampled chroma is scaled up by a larger IDCT instead of the upsampler: with 4:2:0 at
    /// 1/2 luma takes the 4x4 IDCT and chroma the full 8x8 one, at 1/8 luma 1x1 and chroma 2x2, and neither is
    /// upsampled;</item>
    /// <item>downsampled_width = ceil(image width * h * DCT_scaled_size / (max h * 8)), likewise for rows;</item>
    /// <item>the upsampler's input group is h * DCT_scaled_size / min_DCT_scaled_size samples (likewise for rows), and
    /// fancy upsampling needs min_DCT_scaled_size &gt; 1, so 1/8 only replicates.</item>
    /// </list>
    /// </summary>
    private static ScaledOutput ScaledSizes(State st, int scaleDenominator)
    {
        int minSize = 8 / scaleDenominator;
        var comps = st.Components;
        var scaled = new ScaledComponent[comps.Length];
        for (int i = 0; i < comps.Length; i++)
        {
            var c = comps[i];
            int size = minSize;
            while (size < 8 && st.MaxH * minSize % (c.H * size * 2) == 0 && st.MaxV * minSize % (c.V * size * 2) == 0)
                size *= 2;
            scaled[i] = new ScaledComponent(size,
                CeilDiv((long)st.Width * c.H * size, st.MaxH * 8),
                CeilDiv((long)st.Height * c.V * size, st.MaxV * 8),
                c.H * size / minSize, c.V * size / minSize);
        }
        return new ScaledOutput(CeilDiv((long)st.Width * minSize, 8), CeilDiv((long)st.Height * minSize, 8), minSize > 1, scaled);
    }

    private static int CeilDiv(long numerator, int denominator) => (int)((numerator + denominator - 1) / denominator);
}
