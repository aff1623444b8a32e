using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Pbm;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Tiff.Constants;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;

namespace ManagedClip.Imaging;

/// <summary>
/// The Pillow image mode a decoded source corresponds to — the part of it the OpenAI pipeline cares about,
/// because it resizes <em>before</em> converting to RGB.
/// </summary>
public enum SourceMode
{
    /// <summary>8-bit grayscale, 1 channel: bicubic on the one channel, replicated to RGB.</summary>
    L,
    /// <summary>Grayscale + alpha (2 channels): resized premultiplied ("La"), alpha dropped.</summary>
    LA,
    /// <summary>8-bit RGB.</summary>
    Rgb,
    /// <summary>RGB + straight alpha: resized premultiplied ("RGBa"), un-premultiplied, alpha dropped.</summary>
    Rgba,
    /// <summary>Palette ("P"); stored here already expanded to its RGB colours. Pillow forces NEAREST for it.</summary>
    Palette,
    /// <summary>Bilevel ("1"), stored as 0/255 in 1 channel. Pillow forces NEAREST for it.</summary>
    Bilevel,
    /// <summary>32-bit integer ("I"), e.g. 16-bit grayscale PNG: resampled in double, clamped to 0..255 on conversion to RGB.</summary>
    I,
    /// <summary>CMYK (a 4-component JPEG), the 4 channels as Pillow holds them: resized as they are, converted to RGB
    /// with Pillow's cmyk2rgb after the crop (OpenAI order) or before the resize (HF order).</summary>
    Cmyk,
}

/// <summary>A decoded image: interleaved 8-bit channels (<see cref="Bytes"/>) or, for <see cref="SourceMode.I"/>, 32-bit integers (<see cref="Ints"/>).</summary>
public sealed class DecodedImage
{
    /// <summary>The pixel mode, as Pillow would have opened the file.</summary>
    public required SourceMode Mode { get; init; }
    /// <summary>Width in pixels.</summary>
    public required int Width { get; init; }
    /// <summary>Height in pixels.</summary>
    public required int Height { get; init; }
    /// <summary>Interleaved 8-bit pixels, [Height, Width, <see cref="Channels"/>]; null for <see cref="SourceMode.I"/>.</summary>
    public byte[]? Bytes { get; init; }
    /// <summary>32-bit pixels, [Height, Width], for <see cref="SourceMode.I"/> only; otherwise null.</summary>
    public int[]? Ints { get; init; }
    /// <summary>The container format ImageSharp recognised ("PNG", "JPEG", ...).</summary>
    public string Format { get; init; } = "";

    /// <summary>Values per pixel: 1 (L, 1, I), 2 (LA), 3 (RGB, palette expanded) or 4 (RGBA, CMYK).</summary>
    public int Channels => Mode switch
    {
        SourceMode.L or SourceMode.Bilevel or SourceMode.I => 1,
        SourceMode.LA => 2,
        SourceMode.Rgb or SourceMode.Palette => 3,
        _ => 4,
    };
}

/// <summary>
/// Decodes image files into the pixel mode Pillow would open them in (see <see cref="SourceMode"/>): JPEG with the managed
/// decoder (<see cref="Jpeg.JpegDecoder"/>), the other formats with ImageSharp 2.1.
/// The header is identified first and images over <see cref="PreprocessOptions.MaxPixels"/> are refused before any
/// pixel is decoded; ImageSharp allocations are bounded as well. Every failure is an <see cref="ImageInputException"/>
/// naming the file.
/// </summary>
/// <remarks>
/// Mode rules (Pillow 9.4 behaviour each mirrors):
/// PNG: colour type from <see cref="PngMetadata"/> — palette → P (tRNS ignored, as <c>convert("RGB")</c> does); 1-bit gray → "1";
/// 2/4/8-bit gray → L; 16-bit gray → I (full 16-bit values); gray+alpha 8-bit → LA, 16-bit → RGBA from the high bytes;
/// RGB/RGBA 16-bit → high byte of each sample (Pillow's "RGB;16B" unpacker), not ImageSharp's rounding down-scale.
/// GIF: first frame only, mode P. BMP ≤ 8 bpp: P, or L / "1" when the palette is the identity gray ramp (BmpImagePlugin's
/// check). TIFF with palette photometric: P. PBM bilevel: "1". JPEG (the managed decoder, not ImageSharp): L, RGB or
/// CMYK by the number of components, as Pillow, with Pillow's exact pixels.
/// Anything else: RGBA when some pixel has alpha &lt; 255, else RGB — equivalent to Pillow whether it opened the file
/// as RGB or RGBA, because a fully opaque RGBA image resizes exactly like RGB.
/// </remarks>
public static class ImageLoader
{
    /// <summary>Decodes a file. <paramref name="options"/> supplies the pixel limit and EXIF handling.</summary>
    public static DecodedImage Load(string path, PreprocessOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream fs;
        try
        {
            fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageInputException($"cannot open image '{path}': {ex.Message}", ex);
        }
        using (fs) return Load(fs, path, options);
    }

    /// <summary>Decodes from a stream; <paramref name="name"/> is used in error messages.</summary>
    public static DecodedImage Load(Stream stream, string name, PreprocessOptions options)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            if (!stream.CanSeek)
            {
                var ms = new MemoryStream();
                stream.CopyTo(ms);
                ms.Position = 0;
                stream = ms;
            }
            long start = stream.Position;
            if (stream.Length - start <= 0)
                throw new ImageInputException($"image '{name}' is empty (0 bytes)");
            if (IsJpeg(stream, start)) return LoadJpeg(stream, start, name, options);

            Configuration config = CreateConfiguration(options);
            IImageInfo? info = Image.Identify(config, stream, out IImageFormat? format);
            if (info is null || format is null)
                throw new ImageInputException($"image '{name}' is not in a supported format (JPEG, PNG, GIF, BMP, TIFF, WebP, PBM/PGM/PPM, TGA)");
            if (info.Width <= 0 || info.Height <= 0)
                throw new ImageInputException($"image '{name}' has invalid dimensions {info.Width}x{info.Height}");
            long pixels = (long)info.Width * info.Height;
            if (pixels > options.MaxPixels)
                throw new ImageInputException(
                    $"image '{name}' is {info.Width}x{info.Height} = {pixels} pixels, over the limit of {options.MaxPixels} " +
                    "(possible decompression bomb; raise PreprocessOptions.MaxPixels to allow it)");

            stream.Position = start;
            if (format is PngFormat) TruncationCheck.Png(stream, name);
            int orientation = options.ApplyExifOrientation ? ExifOrientation.Read(stream, format) : 1;
            stream.Position = start;
            return ExifOrientation.Apply(Decode(config, stream, name, format, info), orientation);
        }
        catch (ImageInputException) { throw; }
        catch (OperationCanceledException) { throw; }
        catch (InvalidMemoryOperationException ex)
        {
            throw new ImageInputException($"image '{name}' needs more memory to decode than allowed: {ex.Message}", ex);
        }
        catch (UnknownImageFormatException ex)
        {
            throw new ImageInputException($"image '{name}' is not in a supported format: {ex.Message}", ex);
        }
        catch (Exception ex)
        {
            // ImageSharp reports corrupt or truncated data as InvalidImageContentException / ImageFormatException,
            // but malformed input can also surface as NotSupportedException, EndOfStreamException, IndexOutOfRange, etc.
            throw new ImageInputException($"image '{name}' is corrupt, truncated or unsupported: {ex.GetType().Name}: {ex.Message}", ex);
        }
    }

    /// <summary>JPEG files start with SOI and the 0xFF of another marker (Pillow's JpegImagePlugin accepts exactly this).</summary>
    private static bool IsJpeg(Stream stream, long start)
    {
        Span<byte> magic = stackalloc byte[3];
        int read = stream.ReadAtLeast(magic, 3, throwOnEndOfStream: false);
        stream.Position = start;
        return read == 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF;
    }

    /// <summary>
    /// JPEG goes through the managed decoder (<see cref="Jpeg.JpegDecoder"/>), which returns Pillow's pixels exactly, in
    /// Pillow's mode (L, RGB or CMYK); ImageSharp's JPEG decoder was 0.16 levels off them on average and gave CMYK files
    /// as RGB. With <see cref="PreprocessOptions.ReducedSizeDecoding"/>, the scale Pillow's draft("RGB", (Size, Size))
    /// picks. The file is read whole: the decoder works on the compressed bytes in memory, and what it allocates beyond
    /// them is bounded by the frame size, which it checks against the pixel limit first.
    /// </summary>
    private static DecodedImage LoadJpeg(Stream stream, long start, string name, PreprocessOptions options)
    {
        int orientation = options.ApplyExifOrientation ? ExifOrientation.Read(stream, JpegFormat.Instance) : 1;
        long length = stream.Length - start;
        if (length > Array.MaxLength) throw new ImageInputException($"image '{name}' is {length} bytes, too large for a JPEG file");
        var data = new byte[length];
        stream.Position = start;
        stream.ReadExactly(data);
        var image = options.ReducedSizeDecoding
            ? Jpeg.JpegDecoder.DecodeDraft(data, name, options.MaxPixels, options.Size)
            : Jpeg.JpegDecoder.Decode(data, name, options.MaxPixels);
        var mode = image.Channels switch { 1 => SourceMode.L, 4 => SourceMode.Cmyk, _ => SourceMode.Rgb };
        var decoded = new DecodedImage { Mode = mode, Width = image.Width, Height = image.Height, Bytes = image.Pixels, Format = "JPEG" };
        return ExifOrientation.Apply(decoded, orientation);
    }

    /// <summary>
    /// ImageSharp 2.1.13 reads the data type of every TIFF directory entry and EXIF value with Enum.GetValues, which under
    /// Native AOT creates an ExifDataType[] at run time: that array type exists in the binary only if some code allocates one.
    /// This does (without it, a TIFF whose directory holds such an entry failed under AOT with "missing native code").
    /// </summary>
    private static readonly SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifDataType[] ExifDataTypesForAot = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifDataType[1];

    private static Configuration CreateConfiguration(PreprocessOptions options)
    {
        GC.KeepAlive(ExifDataTypesForAot);
        var config = new Configuration(
            new PngConfigurationModule(), new GifConfigurationModule(),
            new BmpConfigurationModule(), new PbmConfigurationModule(), new TgaConfigurationModule(),
            new TiffConfigurationModule(), new WebpConfigurationModule());
        // Metadata stays unread: ImageSharp would inflate every PNG zTXt/iTXt/iCCP chunk whole (a 250 KB file held 250 MB
        // of text) and gather JPEG APPn segments; the EXIF orientation is read on its own (ExifOrientation.Read). Only
        // the first frame of a GIF or TIFF is decoded, as Pillow shows it.
        config.ImageFormatsManager.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
        config.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First, IgnoreMetadata = true });
        config.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First, IgnoreMetadata = true });
        config.ImageFormatsManager.SetDecoder(WebpFormat.Instance, new WebpDecoder { IgnoreMetadata = true });
        // Largest single buffer ImageSharp may allocate: the full frame at 8 bytes/pixel (Rgba64) plus slack.
        long bytes = Math.Max(options.MaxPixels, 1) * 8L + (64L << 20);
        int mb = (int)Math.Clamp(bytes >> 20, 64, int.MaxValue);
        config.MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions { AllocationLimitMegabytes = mb });
        config.PreferContiguousImageBuffers = false;
        return config;
    }

    private static DecodedImage Decode(Configuration config, Stream stream, string name, IImageFormat format, IImageInfo info)
    {
        ImageMetadata meta = info.Metadata;
        string fmt = format.Name;
        if (format is PngFormat)
        {
            PngMetadata png = meta.GetPngMetadata();
            int depth = png.BitDepth is { } bd ? (int)bd : 8;
            switch (png.ColorType)
            {
                case PngColorType.Palette:
                    return Bytes8(LoadRgb24(config, stream), SourceMode.Palette, fmt);
                case PngColorType.Grayscale when depth == 1:
                    return Bytes8(LoadL8(config, stream), SourceMode.Bilevel, fmt);
                case PngColorType.Grayscale when depth == 16:
                    return LoadI16(config, stream, fmt);
                case PngColorType.Grayscale:
                    return Bytes8(LoadL8(config, stream), SourceMode.L, fmt);
                case PngColorType.GrayscaleWithAlpha when depth == 16:
                    return HighBytes(LoadPixels<La32>(config, stream, 4), SourceMode.Rgba, fmt, la16: true);
                case PngColorType.GrayscaleWithAlpha:
                    return Bytes8(LoadPixels<La16>(config, stream, 2), SourceMode.LA, fmt);
                case PngColorType.Rgb when depth == 16:
                    return HighBytes(LoadPixels<Rgb48>(config, stream, 6), SourceMode.Rgb, fmt);
                case PngColorType.Rgb:
                    return Bytes8(LoadRgb24(config, stream), SourceMode.Rgb, fmt);
                case PngColorType.RgbWithAlpha when depth == 16:
                    return HighBytes(LoadPixels<Rgba64>(config, stream, 8), SourceMode.Rgba, fmt);
                case PngColorType.RgbWithAlpha:
                    return Bytes8(LoadPixels<Rgba32>(config, stream, 4), SourceMode.Rgba, fmt);
            }
        }
        else if (format is GifFormat)
        {
            return Bytes8(LoadRgb24(config, stream), SourceMode.Palette, fmt);
        }
        else if (format is BmpFormat)
        {
            BmpMetadata bmp = meta.GetBmpMetadata();
            if ((int)bmp.BitsPerPixel <= 8)
            {
                long pos = stream.Position;
                SourceMode mode = BmpPaletteMode(stream);
                stream.Position = pos;
                return mode == SourceMode.Palette
                    ? Bytes8(LoadRgb24(config, stream), SourceMode.Palette, fmt)
                    : Bytes8(LoadL8(config, stream), mode, fmt);
            }
        }
        else if (format is TiffFormat)
        {
            using Image<Rgba32> tiff = Image.Load<Rgba32>(config, stream);
            var data = new byte[checked((long)tiff.Width * tiff.Height * 4)];
            tiff.CopyPixelDataTo(data);
            var p = new Pixels(data, tiff.Width, tiff.Height);
            if (tiff.Frames.RootFrame.Metadata.GetTiffMetadata().PhotometricInterpretation == TiffPhotometricInterpretation.PaletteColor)
                return Bytes8(new Pixels(DropAlpha(data), p.Width, p.Height), SourceMode.Palette, fmt);
            return RgbOrRgba(p, fmt);
        }
        else if (format is PbmFormat)
        {
            PbmMetadata pbm = meta.GetPbmMetadata();
            if (pbm.ColorType == PbmColorType.BlackAndWhite)
                return Bytes8(LoadL8(config, stream), SourceMode.Bilevel, fmt);
            if (pbm.ColorType == PbmColorType.Grayscale && pbm.ComponentType == PbmComponentType.Byte)
                return Bytes8(LoadL8(config, stream), SourceMode.L, fmt);
        }
        _ = name;
        return RgbOrRgba(LoadPixels<Rgba32>(config, stream, 4), fmt);
    }

    private readonly record struct Pixels(byte[] Data, int Width, int Height);

    private static Pixels LoadPixels<TPixel>(Configuration config, Stream stream, int bytesPerPixel) where TPixel : unmanaged, IPixel<TPixel>
    {
        using Image<TPixel> image = Image.Load<TPixel>(config, stream);
        var data = new byte[checked((long)image.Width * image.Height * bytesPerPixel)];
        image.CopyPixelDataTo(data);
        return new Pixels(data, image.Width, image.Height);
    }

    private static Pixels LoadRgb24(Configuration config, Stream stream) => LoadPixels<Rgb24>(config, stream, 3);
    private static Pixels LoadL8(Configuration config, Stream stream) => LoadPixels<L8>(config, stream, 1);

    private static DecodedImage Bytes8(Pixels p, SourceMode mode, string fmt) =>
        new() { Mode = mode, Width = p.Width, Height = p.Height, Bytes = p.Data, Format = fmt };

    /// <summary>16-bit samples (native little-endian ushorts in ImageSharp) → their high byte, like Pillow's ";16B" unpackers.</summary>
    private static DecodedImage HighBytes(Pixels p, SourceMode mode, string fmt, bool la16 = false)
    {
        int samples = p.Data.Length / 2;
        var hi = new byte[la16 ? samples / 2 * 4 : samples];
        if (!la16)
        {
            for (int i = 0; i < samples; i++) hi[i] = (byte)(BitConverter.ToUInt16(p.Data, 2 * i) >> 8);
        }
        else
        {
            for (int i = 0, n = samples / 2; i < n; i++)
            {
                byte l = (byte)(BitConverter.ToUInt16(p.Data, 4 * i) >> 8);
                byte a = (byte)(BitConverter.ToUInt16(p.Data, 4 * i + 2) >> 8);
                hi[4 * i] = hi[4 * i + 1] = hi[4 * i + 2] = l;
                hi[4 * i + 3] = a;
            }
        }
        return new DecodedImage { Mode = mode, Width = p.Width, Height = p.Height, Bytes = hi, Format = fmt };
    }

    private static DecodedImage LoadI16(Configuration config, Stream stream, string fmt)
    {
        Pixels p = LoadPixels<L16>(config, stream, 2);
        var ints = new int[p.Data.Length / 2];
        for (int i = 0; i < ints.Length; i++) ints[i] = BitConverter.ToUInt16(p.Data, 2 * i);
        return new DecodedImage { Mode = SourceMode.I, Width = p.Width, Height = p.Height, Ints = ints, Format = fmt };
    }

    private static DecodedImage RgbOrRgba(Pixels p, string fmt)
    {
        byte[] d = p.Data;
        bool alpha = false;
        for (int i = 3; i < d.Length; i += 4) if (d[i] != 255) { alpha = true; break; }
        if (alpha) return new DecodedImage { Mode = SourceMode.Rgba, Width = p.Width, Height = p.Height, Bytes = d, Format = fmt };
        return new DecodedImage { Mode = SourceMode.Rgb, Width = p.Width, Height = p.Height, Bytes = DropAlpha(d), Format = fmt };
    }

    private static byte[] DropAlpha(byte[] d)
    {
        var rgb = new byte[d.Length / 4 * 3];
        for (int i = 0, j = 0; i < d.Length; i += 4, j += 3) { rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2]; }
        return rgb;
    }

    /// <summary>
    /// Pillow's BmpImagePlugin: a palette BMP whose palette is the identity gray ramp (entry i = (i,i,i); for 2 colours
    /// (0,0,0),(255,255,255)) opens as "L" (or "1" for 2 colours); otherwise as "P".
    /// </summary>
    private static SourceMode BmpPaletteMode(Stream s)
    {
        Span<byte> head = stackalloc byte[54];
        if (s.Read(head) < 26) return SourceMode.Palette;
        uint hsize = BitConverter.ToUInt32(head.Slice(14, 4));
        int bits, colors, entry;
        if (hsize == 12) { bits = BitConverter.ToUInt16(head.Slice(24, 2)); colors = 0; entry = 3; }
        else if (hsize >= 40) { bits = BitConverter.ToUInt16(head.Slice(28, 2)); colors = (int)BitConverter.ToUInt32(head.Slice(46, 4)); entry = 4; }
        else return SourceMode.Palette;
        if (bits is not (1 or 2 or 4 or 8)) return SourceMode.Palette;
        if (colors <= 0 || colors > (1 << bits)) colors = 1 << bits;
        s.Position = 14 + hsize;
        var pal = new byte[colors * entry];
        if (s.Read(pal) != pal.Length) return SourceMode.Palette;
        for (int i = 0; i < colors; i++)
        {
            int v = colors == 2 ? (i == 0 ? 0 : 255) : i;
            if (pal[i * entry] != v || pal[i * entry + 1] != v || pal[i * entry + 2] != v) return SourceMode.Palette;
        }
        return colors == 2 ? SourceMode.Bilevel : SourceMode.L;
    }
}
