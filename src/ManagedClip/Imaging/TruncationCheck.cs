using System.Buffers.Binary;
using System.IO.Compression;

namespace ManagedClip.Imaging;

/// <summary>
/// ImageSharp 2.1 decodes truncated PNG files without complaint (missing rows come out gray or black); Pillow refuses
/// them ("image file is truncated"). This structural check restores Pillow's behaviour: every chunk up to IEND must lie
/// entirely inside the file and there must be IDAT data. A file that ends exactly at a chunk boundary without IEND is
/// accepted only if its zlib stream inflates to the full size IHDR implies (Pillow accepts a missing IEND when the pixel
/// data is complete). JPEG files go through the managed decoder, which decides truncation as Pillow does itself.
/// </summary>
internal static class TruncationCheck
{
    public static void Png(Stream s, string name)
    {
        long start = s.Position, end = s.Length;
        long pos = start + 8;
        Span<byte> head = stackalloc byte[8];
        Span<byte> ihdr = stackalloc byte[13];
        bool sawIdat = false, sawIend = false;
        int width = 0, height = 0, depth = 0, colorType = 0, interlace = 0;
        var idat = new List<(long Offset, int Length)>();
        while (pos + 8 <= end)
        {
            s.Position = pos;
            s.ReadExactly(head);
            long len = BinaryPrimitives.ReadUInt32BigEndian(head);
            uint type = BinaryPrimitives.ReadUInt32BigEndian(head[4..]);
            if (len > int.MaxValue || pos + 12 + len > end)
                throw new ImageInputException($"image '{name}' is truncated (PNG chunk at byte {pos - start} runs past the end of the file)");
            if (type == 0x49484452 && len >= 13) // IHDR
            {
                s.ReadExactly(ihdr);
                width = BinaryPrimitives.ReadInt32BigEndian(ihdr);
                height = BinaryPrimitives.ReadInt32BigEndian(ihdr[4..]);
                depth = ihdr[8]; colorType = ihdr[9]; interlace = ihdr[12];
            }
            else if (type == 0x49444154) { sawIdat = true; idat.Add((pos + 8, (int)len)); } // IDAT
            else if (type == 0x49454E44) { sawIend = true; break; } // IEND
            pos += 12 + len;
        }
        if (!sawIdat) throw new ImageInputException($"image '{name}' is truncated or corrupt (PNG without image data)");
        if (!sawIend && pos != end)
            throw new ImageInputException($"image '{name}' is truncated (PNG ends inside a chunk header)");
        if (!sawIend && !InflatesTo(s, idat, RawSize(width, height, depth, colorType, interlace)))
            throw new ImageInputException($"image '{name}' is truncated (PNG image data incomplete)");
        s.Position = start;
    }

    /// <summary>Whether the IDAT data inflates to at least <paramref name="needed"/> bytes; inflating stops there (an IDAT bomb is not run to its end).</summary>
    private static bool InflatesTo(Stream s, List<(long Offset, int Length)> idat, long needed)
    {
        var ms = new MemoryStream();
        foreach ((long off, int len) in idat)
        {
            s.Position = off;
            var buf = new byte[len];
            s.ReadExactly(buf);
            ms.Write(buf);
        }
        ms.Position = 0;
        long total = 0;
        try
        {
            using var z = new ZLibStream(ms, CompressionMode.Decompress);
            var tmp = new byte[1 << 16];
            int n;
            while (total < needed && (n = z.Read(tmp)) > 0) total += n;
        }
        catch (InvalidDataException) { return false; }
        return total >= needed;
    }

    private static long RawSize(int w, int h, int depth, int colorType, int interlace)
    {
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 1 };
        long bits = (long)depth * channels;
        long Rows(long pw, long ph) => pw > 0 && ph > 0 ? ph * (1 + (pw * bits + 7) / 8) : 0;
        if (interlace == 0) return Rows(w, h);
        ReadOnlySpan<int> p = [0, 0, 8, 8, 4, 0, 8, 8, 0, 4, 4, 8, 2, 0, 4, 4, 0, 2, 2, 4, 1, 0, 2, 2, 0, 1, 1, 2];
        long total = 0;
        for (int i = 0; i < 28; i += 4)
            total += Rows((w - p[i] + p[i + 2] - 1) / p[i + 2], (h - p[i + 1] + p[i + 3] - 1) / p[i + 3]);
        return total;
    }
}
