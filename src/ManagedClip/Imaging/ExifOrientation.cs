using System.Buffers.Binary;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;

namespace ManagedClip.Imaging;

/// <summary>
/// Applies an EXIF orientation (1..8) the way Pillow's <c>ImageOps.exif_transpose</c> does:
/// 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90
/// (Pillow's rotations are counter-clockwise). Other values leave the image as it is.
/// </summary>
public static class ExifOrientation
{
    /// <summary>The image turned as <paramref name="orientation"/> says; the same image for 1 or an unknown value.</summary>
    /// <param name="img">The decoded image.</param>
    /// <param name="orientation">The EXIF Orientation tag, 1..8.</param>
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

    /// <summary>
    /// The EXIF orientation tag (0x0112) of an image file, 1 when it has none. The decoders run with their metadata off
    /// (PNG text and ICC chunks are zlib streams that ImageSharp would inflate whole), so the EXIF block is found here by
    /// walking the container: PNG eXIf chunk, JPEG APP1 "Exif" or WebP EXIF chunk. Only the first IFD's entries are read
    /// (at most 65535 × 12 bytes), whatever the block's size. A TIFF file's own orientation tag is left alone: Pillow 9.4's
    /// <c>exif_transpose</c> does not turn a TIFF (measured with the exif6_23x17.tif fixture), and neither did ImageSharp.
    /// </summary>
    internal static int Read(Stream stream, IImageFormat format)
    {
        long start = stream.Position;
        try
        {
            (long Offset, long Length)? block = format switch
            {
                PngFormat => FindPngExif(stream, start),
                JpegFormat => FindJpegExif(stream, start),
                WebpFormat => FindWebpExif(stream, start),
                _ => null,
            };
            return block is { } b ? FromTiffStructure(stream, b.Offset, b.Length) : 1;
        }
        catch (EndOfStreamException) { return 1; } // a cut container has no orientation to give; the decoder reports the damage
        finally { stream.Position = start; }
    }

    private static (long, long)? FindPngExif(Stream s, long start)
    {
        Span<byte> head = stackalloc byte[8];
        for (long pos = start + 8; pos + 8 <= s.Length;)
        {
            s.Position = pos;
            s.ReadExactly(head);
            long length = BinaryPrimitives.ReadUInt32BigEndian(head);
            if (head[4..].SequenceEqual("eXIf"u8)) return (pos + 8, length);
            if (head[4..].SequenceEqual("IEND"u8)) break;
            pos += 12 + length;
        }
        return null;
    }

    private static (long, long)? FindJpegExif(Stream s, long start)
    {
        Span<byte> head = stackalloc byte[10];
        for (long pos = start + 2; pos + 4 <= s.Length;)
        {
            s.Position = pos;
            s.ReadExactly(head[..4]);
            if (head[0] != 0xFF || head[1] is 0xDA or 0xD9) break; // the first scan: Pillow and ImageSharp read APPn before it
            int length = BinaryPrimitives.ReadUInt16BigEndian(head[2..]);
            if (head[1] == 0xE1 && length >= 8 && pos + 10 <= s.Length)
            {
                s.ReadExactly(head[4..10]);
                if (head[4..10].SequenceEqual("Exif\0\0"u8)) return (pos + 10, length - 8);
            }
            pos += 2 + length;
        }
        return null;
    }

    private static (long, long)? FindWebpExif(Stream s, long start)
    {
        Span<byte> head = stackalloc byte[8];
        for (long pos = start + 12; pos + 8 <= s.Length;)
        {
            s.Position = pos;
            s.ReadExactly(head);
            long length = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
            if (head[..4].SequenceEqual("EXIF"u8))
            {
                // Some writers keep JPEG's "Exif\0\0" prefix inside the chunk.
                Span<byte> prefix = stackalloc byte[6];
                bool prefixed = length >= 6 && s.Read(prefix) == 6 && prefix.SequenceEqual("Exif\0\0"u8);
                return prefixed ? (pos + 14, length - 6) : (pos + 8, length);
            }
            pos += 8 + length + (length & 1);
        }
        return null;
    }

    /// <summary>Tag 0x0112 of the first IFD of the TIFF structure at <paramref name="origin"/> (offsets inside it are relative to it).</summary>
    private static int FromTiffStructure(Stream s, long origin, long length)
    {
        if (length < 8 || origin + length > s.Length) return 1;
        Span<byte> header = stackalloc byte[8];
        s.Position = origin;
        s.ReadExactly(header);
        bool little = header[0] == 'I' && header[1] == 'I';
        if (!little && !(header[0] == 'M' && header[1] == 'M')) return 1;
        ushort U16(ReadOnlySpan<byte> b) => little ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b);
        uint U32(ReadOnlySpan<byte> b) => little ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b);
        if (U16(header[2..]) != 42) return 1;
        long ifd = U32(header[4..]);
        if (ifd + 2 > length) return 1;
        s.Position = origin + ifd;
        s.ReadExactly(header[..2]);
        int count = U16(header);
        var entries = new byte[(int)Math.Min(count * 12L, length - ifd - 2) / 12 * 12];
        s.ReadExactly(entries);
        for (int e = 0; e < entries.Length; e += 12)
        {
            ReadOnlySpan<byte> entry = entries.AsSpan(e, 12);
            if (U16(entry) != 0x0112) continue;
            return U16(entry[2..]) switch
            {
                3 => U16(entry[8..]),                          // SHORT
                4 => (int)Math.Min(U32(entry[8..]), 9),      // LONG
                _ => 1,
            };
        }
        return 1;
    }
}
