namespace ManagedClip.Imaging;

/// <summary>
/// Turns an image file into the float32 [3, CropSize, CropSize] (CHW) tensor a CLIP image tower takes, reproducing
/// the reference pipeline pixel for pixel (<c>clip/clip.py _transform</c>, transformers <c>CLIPImageProcessor</c>): decode in Pillow's mode, resize with Pillow's resampler (bicubic
/// by default, nearest for palette/bilevel, premultiplied for alpha), center crop, convert to RGB, ToTensor, normalize.
/// Thread-safe: holds only immutable options.
/// </summary>
public sealed class ImagePreprocessor
{
    private readonly PreprocessOptions _o;

    /// <summary>A preprocessor with fixed options; it holds no other state and may be shared between threads.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Size, CropSize or MaxPixels is not positive.</exception>
    /// <exception cref="ArgumentException">Mean or Std does not have 3 values.</exception>
    public ImagePreprocessor(PreprocessOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Size <= 0 || options.CropSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), "Size and CropSize must be positive");
        if (options.Mean is not { Length: 3 } || options.Std is not { Length: 3 })
            throw new ArgumentException("Mean and Std need 3 values (RGB)", nameof(options));
        if (options.MaxPixels <= 0) throw new ArgumentOutOfRangeException(nameof(options), "MaxPixels must be positive");
        _o = options;
    }

    /// <summary>The options given at construction.</summary>
    public PreprocessOptions Options => _o;

    /// <summary>[3, CropSize, CropSize] CHW float32. Any failure is an <see cref="ImageInputException"/> naming the file.</summary>
    public float[] Preprocess(string path) => ToTensor(ResizeAndCropToRgb8(path));

    /// <inheritdoc cref="Preprocess(string)"/>
    public float[] Preprocess(Stream stream, string name) => ToTensor(ResizeAndCropToRgb8(stream, name));

    /// <summary>The uint8 crop (HWC, RGB, row-major) just before ToTensor — what the preprocessing fixtures' sha256 hashes cover (tests/fixtures/imaging).</summary>
    public byte[] ResizeAndCropToRgb8(string path) => ResizeAndCropToRgb8(ImageLoader.Load(path, _o), path);

    /// <inheritdoc cref="ResizeAndCropToRgb8(string)"/>
    public byte[] ResizeAndCropToRgb8(Stream stream, string name) => ResizeAndCropToRgb8(ImageLoader.Load(stream, name, _o), name);

    /// <summary>Resize, crop and convert an already decoded image.</summary>
    public byte[] ResizeAndCropToRgb8(DecodedImage image, string name = "image")
    {
        ArgumentNullException.ThrowIfNull(image);
        DecodedImage img = _o.ConvertToRgbFirst ? ToRgbMode(image) : image;
        (int rw, int rh) = ResizedSize(img.Width, img.Height);
        int n = _o.CropSize;
        int left = CropOffset(rw, n, _o.Crop), top = CropOffset(rh, n, _o.Crop);
        // The part of the crop window that lies on the resized image (all of it unless CropSize > Size).
        int vx0 = Math.Max(0, left), vy0 = Math.Max(0, top);
        int vx1 = Math.Min(rw, left + n), vy1 = Math.Min(rh, top + n);
        var rgb = new byte[n * n * 3];
        if (vx1 <= vx0 || vy1 <= vy0) return rgb;
        int cw = vx1 - vx0, chh = vy1 - vy0;
        int ch = img.Channels;

        PillowFilter filter = img.Mode is SourceMode.Palette or SourceMode.Bilevel ? PillowFilter.Nearest : _o.Resample;
        byte[]? win8 = null;
        int[]? win32 = null;
        try
        {
            if (img.Mode == SourceMode.I)
            {
                win32 = filter == PillowFilter.Nearest
                    ? PillowResample.Nearest<int>(img.Ints, img.Width, img.Height, 1, rw, rh, vx0, vy0, cw, chh)
                    : PillowResample.Resample32I(img.Ints, img.Width, img.Height, rw, rh, filter, vx0, vy0, cw, chh);
            }
            else if (filter == PillowFilter.Nearest)
            {
                win8 = PillowResample.Nearest<byte>(img.Bytes, img.Width, img.Height, ch, rw, rh, vx0, vy0, cw, chh);
            }
            else if (img.Mode is SourceMode.Rgba or SourceMode.LA)
            {
                byte[] pre = Premultiply(img.Bytes!, ch);
                win8 = PillowResample.Resample8(pre, img.Width, img.Height, ch, rw, rh, filter, vx0, vy0, cw, chh);
                Unpremultiply(win8, ch);
            }
            else
            {
                win8 = PillowResample.Resample8(img.Bytes, img.Width, img.Height, ch, rw, rh, filter, vx0, vy0, cw, chh);
            }
        }
        catch (OutOfMemoryException ex)
        {
            throw new ImageInputException($"image '{name}' ({img.Width}x{img.Height}) is too large to resize: {ex.Message}", ex);
        }

        if (img.Mode == SourceMode.Cmyk)
        {
            var converted = new byte[cw * chh * 3];
            PillowConvert.CmykToRgb(win8, converted);
            (win8, ch) = (converted, 3);
        }

        // Convert the window to RGB (Pillow convert("RGB")) and place it in the zero-padded crop.
        int ox = vx0 - left, oy = vy0 - top;
        for (int y = 0; y < chh; y++)
        {
            int d = ((oy + y) * n + ox) * 3;
            for (int x = 0; x < cw; x++, d += 3)
            {
                int s = y * cw + x;
                switch (img.Mode)
                {
                    case SourceMode.I:
                        {
                            int v = win32![s];
                            rgb[d] = rgb[d + 1] = rgb[d + 2] = (byte)(v <= 0 ? 0 : v >= 255 ? 255 : v);
                            break;
                        }
                    case SourceMode.L or SourceMode.Bilevel or SourceMode.LA:
                        rgb[d] = rgb[d + 1] = rgb[d + 2] = win8![s * ch];
                        break;
                    default:
                        rgb[d] = win8![s * ch];
                        rgb[d + 1] = win8[s * ch + 1];
                        rgb[d + 2] = win8[s * ch + 2];
                        break;
                }
            }
        }
        return rgb;
    }

    /// <summary>uint8 HWC RGB crop → float32 CHW, ToTensor then Normalize, in the order and precision of the selected pipeline.</summary>
    public float[] ToTensor(ReadOnlySpan<byte> rgb8)
    {
        int n = _o.CropSize, plane = n * n;
        if (rgb8.Length != plane * 3) throw new ArgumentException($"expected {plane * 3} bytes, got {rgb8.Length}", nameof(rgb8));
        var lut = new float[3][];
        for (int c = 0; c < 3; c++)
        {
            lut[c] = new float[256];
            float m = _o.Mean[c], sd = _o.Std[c];
            for (int v = 0; v < 256; v++)
            {
                float x = _o.RescaleFactor is { } f ? (float)(v * f) : v / 255f;
                lut[c][v] = (x - m) / sd;
            }
        }
        var t = new float[3 * plane];
        for (int i = 0; i < plane; i++)
        {
            t[i] = lut[0][rgb8[3 * i]];
            t[plane + i] = lut[1][rgb8[3 * i + 1]];
            t[2 * plane + i] = lut[2][rgb8[3 * i + 2]];
        }
        return t;
    }

    /// <summary>
    /// Size after the resize: both sides = Size when <see cref="PreprocessOptions.ResizeToSquare"/>; otherwise the shorter
    /// side becomes Size and the longer <c>floor(Size·long/short)</c> (torchvision / HF rule).
    /// </summary>
    public (int Width, int Height) ResizedSize(int width, int height)
    {
        int s = _o.Size;
        if (_o.ResizeToSquare) return (s, s);
        if (width <= height) return (s, (int)Math.Max(1, (long)s * height / width));
        return ((int)Math.Max(1, (long)s * width / height), s);
    }

    /// <summary>
    /// Left/top offset of the crop in the resized image. When the image is smaller than the crop the offset is negative
    /// (zero padding): torchvision pads floor(d/2) before, HF ceil(d/2).
    /// </summary>
    public static int CropOffset(int resized, int crop, CropRounding rounding)
    {
        int d = resized - crop;
        if (d >= 0)
        {
            if (rounding == CropRounding.Floor || (d & 1) == 0) return d / 2;
            int lo = d / 2; // exact half: round to even
            return (lo & 1) == 0 ? lo : lo + 1;
        }
        int p = -d;
        return rounding == CropRounding.Floor ? -((p + 1) / 2) : -(p / 2);
    }

    /// <summary>Pillow <c>convert("RGB")</c> done before resizing (HF order). Results stay in 1 channel where R=G=B.</summary>
    private static DecodedImage ToRgbMode(DecodedImage img)
    {
        switch (img.Mode)
        {
            case SourceMode.Rgb or SourceMode.L:
                return img;
            case SourceMode.Palette:
                return new DecodedImage { Mode = SourceMode.Rgb, Width = img.Width, Height = img.Height, Bytes = img.Bytes, Format = img.Format };
            case SourceMode.Cmyk:
                {
                    var rgb = new byte[(long)img.Width * img.Height * 3];
                    PillowConvert.CmykToRgb(img.Bytes, rgb);
                    return new DecodedImage { Mode = SourceMode.Rgb, Width = img.Width, Height = img.Height, Bytes = rgb, Format = img.Format };
                }
            case SourceMode.Bilevel:
                return new DecodedImage { Mode = SourceMode.L, Width = img.Width, Height = img.Height, Bytes = img.Bytes, Format = img.Format };
            case SourceMode.I:
                {
                    int[] src = img.Ints!;
                    var b = new byte[src.Length];
                    for (int i = 0; i < b.Length; i++) b[i] = (byte)(src[i] <= 0 ? 0 : src[i] >= 255 ? 255 : src[i]);
                    return new DecodedImage { Mode = SourceMode.L, Width = img.Width, Height = img.Height, Bytes = b, Format = img.Format };
                }
            default:
                {
                    int ch = img.Channels, keep = ch == 2 ? 1 : 3;
                    byte[] src = img.Bytes!;
                    int px = src.Length / ch;
                    var b = new byte[px * keep];
                    for (int i = 0; i < px; i++)
                        for (int c = 0; c < keep; c++) b[i * keep + c] = src[i * ch + c];
                    return new DecodedImage { Mode = keep == 1 ? SourceMode.L : SourceMode.Rgb, Width = img.Width, Height = img.Height, Bytes = b, Format = img.Format };
                }
        }
    }

    /// <summary>Pillow rgbA2rgba / lA2la: <c>c' = ((t &gt;&gt; 8) + t) &gt;&gt; 8</c> with <c>t = c·α + 128</c>; alpha kept.</summary>
    private static byte[] Premultiply(byte[] src, int ch)
    {
        var dst = new byte[src.Length];
        int a = ch - 1;
        for (int i = 0; i < src.Length; i += ch)
        {
            int alpha = src[i + a];
            for (int c = 0; c < a; c++) dst[i + c] = (byte)PillowConvert.MulDiv255(src[i + c], alpha);
            dst[i + a] = (byte)alpha;
        }
        return dst;
    }

    /// <summary>Pillow rgba2rgbA / la2lA: α ∈ {0, 255} keeps c', else <c>min(255, 255·c' / α)</c> (integer division).</summary>
    private static void Unpremultiply(byte[] px, int ch)
    {
        int a = ch - 1;
        for (int i = 0; i < px.Length; i += ch)
        {
            int alpha = px[i + a];
            if (alpha == 0 || alpha == 255) continue;
            for (int c = 0; c < a; c++) px[i + c] = (byte)Math.Min(255, 255 * px[i + c] / alpha);
        }
    }
}
