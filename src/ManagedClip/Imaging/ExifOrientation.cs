namespace ManagedClip.Imaging;

/// <summary>
/// Applies an EXIF orientation (1..8) the way Pillow's <c>ImageOps.exif_transpose</c> does:
/// 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90
/// (Pillow's rotations are counter-clockwise). Other values leave the image as it is.
/// </summary>
public static class ExifOrientation
{
    public static DecodedImage Apply(DecodedImage img, int orientation)
    {
        ArgumentNullException.ThrowIfNull(img);
        if (orientation is < 2 or > 8) return img;
        int w = img.Width, h = img.Height;
        bool swap = orientation >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        int ch = img.Channels;
        byte[]? bytes = img.Bytes is null ? null : new byte[img.Bytes.Length];
        int[]? ints = img.Ints is null ? null : new int[img.Ints.Length];
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
            {
                (int sx, int sy) = orientation switch
                {
                    2 => (w - 1 - ox, oy),
                    3 => (w - 1 - ox, h - 1 - oy),
                    4 => (ox, h - 1 - oy),
                    5 => (oy, ox),
                    6 => (oy, h - 1 - ox),
                    7 => (w - 1 - oy, h - 1 - ox),
                    _ => (w - 1 - oy, ox),
                };
                int s = sy * w + sx, d = oy * ow + ox;
                if (bytes is not null)
                    for (int c = 0; c < ch; c++) bytes[d * ch + c] = img.Bytes![s * ch + c];
                if (ints is not null) ints[d] = img.Ints![s];
            }
        return new DecodedImage { Mode = img.Mode, Width = ow, Height = oh, Bytes = bytes, Ints = ints, Format = img.Format };
    }
}
