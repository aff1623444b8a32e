using System.Buffers.Binary;
using System.IO.Compression;

namespace ManagedClip.Imaging;

/// <summary>
/// ImageSharp 2.1 decodes truncated PNG and JPEG files without complaint (missing rows come out gray or black);
/// Pillow refuses them ("image file is truncated"). These structural checks restore Pillow's behaviour:
/// <list type="bullet">
/// <item>PNG: every chunk up to IEND must lie entirely inside the file and there must be IDAT data. A file that ends
/// exactly at a chunk boundary without IEND is accepted only if its zlib stream inflates to the full size IHDR implies
/// (Pillow accepts a missing IEND when the pixel data is complete).</item>
/// <item>JPEG: the marker sequence up to EOI, as libjpeg-turbo behind Pillow's suspending reader needs it (see <see cref="Jpeg"/>).</item>
/// </list>
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

    /// <summary>
    /// Pillow 9.4 (libjpeg-turbo behind a suspending source; tests/fixtures/imaging/make_jpeg_truncation_cases.py records
    /// its verdicts) refuses a JPEG when the decoder runs out of data before it is done, and when the marker sequence is
    /// broken; what follows the EOI marker is never read. Walking the markers from SOI:
    /// <list type="bullet">
    /// <item>every segment up to and including the first scan header must lie inside the file;</item>
    /// <item>a scan's entropy-coded data must end at a marker (FF followed by neither 00, FF nor a restart code). Data that
    /// runs to the end of the file is refused: libjpeg-turbo refills its bit buffer ahead of what it decodes (57 bits), so
    /// Pillow refuses a cut scan and, in nearly every case, a file that lacks only its EOI; which of the latter it accepts
    /// depends on that bit buffer's state in the last few bytes, which this check does not emulate;</item>
    /// <item>after a scan, EOI ends the check; SOI or a frame header (two images spliced without EOI) is refused;</item>
    /// <item>a file that ends after a scan and other complete segments but without EOI is accepted only for a single-scan
    /// sequential image (every row is out when the decoder looks for EOI); a progressive or multi-scan image is decoded
    /// only once EOI is read.</item>
    /// </list>
    /// </summary>
    public static void Jpeg(Stream s, string name)
    {
        long start = s.Position;
        var reader = new ForwardReader(s);
        ImageInputException Truncated(string where) => new($"image '{name}' is truncated ({where})");
        ImageInputException Corrupt(string what) => new($"image '{name}' is corrupt ({what})");
        if (reader.Byte() != 0xFF || reader.Byte() != 0xD8) throw Corrupt("no JPEG start-of-image marker");

        int frameComponents = 0, scans = 0;
        bool progressive = false, singleScan = false, inScanData = false;
        while (true)
        {
            int marker = inScanData ? reader.NextMarkerAfterEntropyData() : reader.NextMarker();
            if (marker < 0)
            {
                if (inScanData) throw Truncated("JPEG scan data runs to the end of the file without an end-of-image marker");
                if (singleScan) break; // every row was decoded before libjpeg looks for EOI
                throw Truncated(scans == 0 ? "JPEG ends before its first scan" : "JPEG ends before its end-of-image marker");
            }
            inScanData = false;
            bool isFrame = marker is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC);
            switch (marker)
            {
                case 0xD9 when scans == 0: throw Truncated("JPEG ends before its first scan");
                case 0xD9: s.Position = start; return;
                case 0x01 or (>= 0xD0 and <= 0xD7): continue; // standalone markers
                case 0xDA or 0xC4 or 0xCC or 0xDB or 0xDC or 0xDD or 0xFE or (>= 0xE0 and <= 0xEF):
                case >= 0xC0 and <= 0xCF when isFrame && frameComponents == 0:
                    break;
                default:
                    throw Corrupt($"JPEG marker FF{marker:X2} where libjpeg refuses it (two images spliced without an end-of-image marker?)");
            }
            // Frame and scan headers are read for their component counts; other segments are skipped.
            byte[]? head = reader.Segment(isFrame || marker == 0xDA ? 6 : 0, out bool complete);
            if (head is null) throw Corrupt($"JPEG segment FF{marker:X2} has a length under 2");
            if (!complete)
            {
                if (singleScan && marker != 0xDA) break; // after the one scan libjpeg suspends here with every row decoded
                throw Truncated($"JPEG segment FF{marker:X2} runs past the end of the file");
            }
            if (isFrame)
            {
                if (head.Length < 6) throw Corrupt("JPEG frame header too short");
                frameComponents = head[5];
                progressive = marker is 0xC2 or 0xC6 or 0xCA or 0xCE;
            }
            else if (marker == 0xDA)
            {
                if (frameComponents == 0 || head.Length < 1) throw Corrupt("JPEG scan header before its frame header, or empty");
                if (singleScan) throw Corrupt("a second scan in a single-scan JPEG");
                // libjpeg decodes row by row only when one scan holds every component of a sequential frame.
                if (scans++ == 0) singleScan = !progressive && head[0] == frameComponents;
                inScanData = true;
            }
        }
        s.Position = start;
    }

    /// <summary>Reads a stream front to back through a 64 KiB buffer: bytes, big-endian lengths, skips, and the marker search.</summary>
    private sealed class ForwardReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[1 << 16];
        private int _at, _count;
        private bool Fill()
        {
            if (_at < _count) return true;
            _count = stream.Read(_buffer);
            _at = 0;
            return _count > 0;
        }

        public int Byte() => Fill() ? _buffer[_at++] : -1;

        /// <summary>
        /// A marker segment: its 2-byte length, then up to <paramref name="keep"/> bytes of its body returned and the rest
        /// skipped. Null when the length is under 2; <paramref name="complete"/> is false when the file ends inside it.
        /// </summary>
        public byte[]? Segment(int keep, out bool complete)
        {
            int hi = Byte(), lo = Byte();
            complete = lo >= 0;
            if (!complete) return [];
            int length = hi << 8 | lo;
            if (length < 2) return null;
            var head = new byte[Math.Min(keep, length - 2)];
            for (int i = 0; i < head.Length; i++)
            {
                int b = Byte();
                if (b < 0) { complete = false; return head[..i]; }
                head[i] = (byte)b;
            }
            complete = Skip(length - 2 - head.Length);
            return head;
        }

        public bool Skip(long n)
        {
            while (n > 0)
            {
                if (!Fill()) return false;
                int step = (int)Math.Min(n, _count - _at);
                _at += step;
                n -= step;
            }
            return true;
        }

        /// <summary>The next marker code between segments (fill bytes FF FF… and stray non-FF bytes are skipped, as libjpeg does), or -1 at the end.</summary>
        public int NextMarker()
        {
            int b;
            do { b = Byte(); } while (b >= 0 && b != 0xFF);
            while (b == 0xFF) b = Byte();
            return b < 0 ? -1 : b == 0 ? NextMarker() : b;
        }

        /// <summary>Skips entropy-coded data (FF 00 is a data byte, FF D0–D7 a restart) to the marker that ends it, or -1 at the end.</summary>
        public int NextMarkerAfterEntropyData()
        {
            while (true)
            {
                if (!Fill()) return -1;
                int ff = _buffer.AsSpan(_at, _count - _at).IndexOf((byte)0xFF);
                if (ff < 0) { _at = _count; continue; }
                _at += ff + 1;
                int b;
                do { b = Byte(); } while (b == 0xFF);
                if (b < 0) return -1;
                if (b == 0x00 || b is >= 0xD0 and <= 0xD7) continue;
                return b;
            }
        }
    }
}
