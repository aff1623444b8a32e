using System.Buffers.Binary;
using ManagedClip.Kernels;

namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// A decoded image in the mode Pillow opens the file in: <paramref name="Channels"/> 1 is "L" (grayscale), 3 "RGB", 4
/// "CMYK" as Pillow holds it (its JPEG plugin reads every 4-component file as Adobe's inverted "CMYK;I", so these are
/// 255 minus libjpeg's samples). <paramref name="Pixels"/> is Width * Height * Channels bytes, interleaved.
/// </summary>
internal sealed record JpegImage(int Width, int Height, int Channels, byte[] Pixels)
{
    /// <summary>The image as Pillow's <c>convert("RGB")</c> returns it.</summary>
    public byte[] ToRgb()
    {
        if (Channels == 3) return Pixels;
        var rgb = new byte[(long)Width * Height * 3];
        if (Channels == 4) PillowConvert.CmykToRgb(Pixels, rgb);
        else PillowConvert.GrayToRgb(Pixels, rgb);
        return rgb;
    }
}

/// <summary>
/// A managed decoder for Huffman-coded 8-bit JPEGs (SOF0 baseline, SOF1 extended sequential, SOF2 progressive) that
/// returns the pixels Pillow's <c>Image.open(f)</c> holds, in its mode (L, RGB or CMYK; <see cref="JpegImage.ToRgb"/>
/// gives what <c>convert("RGB")</c> returns): libjpeg-turbo 2.1's default decompression, i.e. the islow IDCT
/// (<see cref="JpegIdct"/>), fancy upsampling (<see cref="JpegUpsampler"/>) and fixed-point YCbCr→RGB
/// (<see cref="JpegColor"/>); YCCK becomes CMYK as libjpeg converts it; progressive files whose scans leave
/// low-frequency coefficients incomplete are block-smoothed as libjpeg does (<see cref="JpegBlockSmoothing"/>).
/// Arithmetic-coded, lossless, hierarchical and 12-bit files are refused with an <see cref="ImageInputException"/>
/// naming the feature. A sequential image whose first scan carries every component is transformed MCU row by MCU row as
/// it is decoded (one row of coefficients kept); other images keep the coefficients of all scans (2 bytes per sample)
/// and transform them at the end. Every size is checked before it is allocated, and corrupt data gives an
/// <see cref="ImageInputException"/>. Reduced-size decoding (libjpeg's DCT scaling, as Pillow's draft uses it) is in
/// JpegDecoder.Scaling.cs.
/// </summary>
internal static partial class JpegDecoder
{
    /// <summary>Zigzag index → natural (row-major) index, with 16 extra entries so a corrupt run past coefficient 63
    /// lands on 63 instead of outside the block (as libjpeg's jpeg_natural_order does). A span over constant data, whose
    /// address the JIT knows (no register held for it in the Huffman loop).</summary>
    private static ReadOnlySpan<byte> NaturalOrder =>
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
        63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    ];

    private const int MaxBlocksInMcu = 10; // libjpeg's D_MAX_BLOCKS_IN_MCU

    private sealed class Component
    {
        public int Id, H, V, QuantIndex;
        public int Width, Height;           // downsampled_width and downsampled_height
        public int BlocksWide, BlocksHigh;  // blocks allocated: the MCU grid's, which covers the component
        public short[] Coefficients = [];   // BlocksWide * BlocksHigh blocks of 64, natural order (one MCU row of them when streamed)
        public byte[] Plane = [];           // the IDCT's output: PlaneStride x (BlocksHigh covering Height) * SamplesPerBlock
        public int PlaneStride;
        public bool Streamed;               // a single-scan image: transformed MCU row by MCU row as its scan was decoded
        // The IDCT's output size per block side: libjpeg's DCT_scaled_size, 8 unless the decode is scaled.
        public int SamplesPerBlock = 8;
        public ushort[]? Quant;             // latched at the component's first scan, as jdinput.c does
        public int DcPrediction;
        // Progressive only: per zigzag coefficient, the Al of the last scan that carried it, -1 if none did
        // (libjpeg's coef_bits).
        public readonly int[] CoefficientBits = Enumerable.Repeat(-1, 64).ToArray();
        // The first 10 of those as they were before the last scan that carried the component (libjpeg's second half
        // of coef_bits), for block smoothing below the last row the final scan decoded with data.
        public readonly int[] PreviousCoefficientBits = new int[SmoothedCoefficients + 1];
    }

    private sealed class State(string name, SimdLevel level)
    {
        public readonly string Name = name;
        public readonly SimdLevel Level = level; // the IDCT's, upsampler's and colour converter's path; tests force Scalar
        public Func<int, int, int> ScaleFor = (_, _) => 1; // the scale denominator for the frame's width and height
        public ScaledOutput? Output;             // the output and component sizes at that scale, set with the frame
        public readonly ushort[]?[] QuantTables = new ushort[4][];
        public readonly JpegHuffmanTable?[] DcTables = new JpegHuffmanTable[4], AcTables = new JpegHuffmanTable[4];
        public Component[] Components = [];
        public int Width, Height, MaxH, MaxV, McusWide, McusHigh, RestartInterval, Scans;
        public bool Progressive;
        // libjpeg's has_multiple_scans, fixed at the first scan: such a file is decoded only once its EOI is read. A
        // single-scan sequential file is complete when its scan is (Pillow then stops whatever follows).
        public bool MultiScan, OutputComplete;
        // End (exclusive) of the bytes Pillow has handed libjpeg: its ImageFile.load reads 65536-byte blocks from the
        // file's start and calls the decoder again after each.
        public int BufferEnd;
        // libjpeg's last_good_iMCU_row: the last iMCU row at which the latest scan still had data.
        public int LastGoodImcuRow;
        public bool SawJfif, SawAdobe;
        public int AdobeTransform;

        public ImageInputException Error(string what) => new($"image '{Name}': {what}");
    }

    /// <summary>Pillow's ImageFile.load block size (decodermaxblock): what each decoder call adds to libjpeg's buffer.</summary>
    private const int PillowReadSize = 65536;

    /// <summary>
    /// Decodes <paramref name="data"/>; <paramref name="name"/> names it in errors; images of more than
    /// <paramref name="maxPixels"/> pixels are refused before anything of their size is allocated. Malformed files are
    /// decoded or refused as Pillow 9.4 decides: libjpeg-turbo reads through a source that suspends when the bytes
    /// handed to it so far run out, and Pillow refuses the image ("image file is truncated") if that happens at the end
    /// of the file before every row is out; a single-scan sequential file needs no EOI once its scan is complete, a
    /// multi-scan (progressive) file is decoded only at its EOI; a marker libjpeg refuses is refused. The image is scaled
    /// by 1/<paramref name="scaleDenominator"/> (1, 2, 4 or 8) as libjpeg does with scale_num 1 and that scale_denom,
    /// which is what Pillow's draft asks for (see <see cref="DraftScale"/>): ceil(width / scale) x ceil(height / scale)
    /// pixels; the pixel limit applies to the full frame, as without scaling. <paramref name="level"/> picks the SIMD
    /// path (default <see cref="Simd.Best"/>; every path gives the same bytes).
    /// </summary>
    public static JpegImage Decode(ReadOnlySpan<byte> data, string name, long maxPixels, int scaleDenominator = 1, SimdLevel? level = null)
    {
        if (scaleDenominator is not (1 or 2 or 4 or 8))
            throw new ArgumentOutOfRangeException(nameof(scaleDenominator), scaleDenominator, "the JPEG scale denominator is 1, 2, 4 or 8");
        return Decode(data, name, maxPixels, (_, _) => scaleDenominator, level ?? Simd.Best);
    }

    /// <summary>Decodes <paramref name="data"/> as Pillow does after <c>draft("RGB", (R, R))</c> with R =
    /// <paramref name="requestedSize"/>: at the scale <see cref="DraftScale"/> picks for the frame's size, which the
    /// decoder knows once it has read the frame header.</summary>
    public static JpegImage DecodeDraft(ReadOnlySpan<byte> data, string name, long maxPixels, int requestedSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(requestedSize);
        return Decode(data, name, maxPixels, (width, height) => DraftScale(width, height, requestedSize), Simd.Best);
    }

    private static JpegImage Decode(ReadOnlySpan<byte> data, string name, long maxPixels, Func<int, int, int> scaleFor, SimdLevel level)
    {
        var st = new State(name, level) { ScaleFor = scaleFor };
        if (data.Length < 2 || data[0] != 0xFF || data[1] != 0xD8) throw st.Error("not a JPEG file (no SOI marker)");
        st.BufferEnd = Math.Min(PillowReadSize, data.Length);
        int pos = 2, pendingMarker = 0;
        while (true)
        {
            int marker = pendingMarker;
            pendingMarker = 0;
            if (marker == 0)
            {
                marker = NextMarker(data, ref pos);
                if (marker < 0) return EndOfFile(st, "before its end-of-image marker");
            }
            if (marker == 0xD9)
            {
                if (st.Scans == 0) throw st.Error(st.Components.Length == 0 ? "JPEG file has no image (no SOF marker before its end)" : "JPEG file ends before its first scan");
                return Finish(st);
            }
            // Pillow's header parser (JpegImagePlugin) knows no TEM marker: "no marker found" before the first scan.
            if (marker == 0x01 && st.Scans == 0 && !st.MultiScan) throw st.Error("corrupt JPEG (a TEM marker before the first scan, which Pillow refuses)");
            if (marker is >= 0xD0 and <= 0xD7 or 0x01) continue; // RSTn or TEM outside a scan: no parameters
            if (marker == 0xD8) throw st.Error("corrupt JPEG (a second SOI marker)");
            // jdmarker.c read_markers refuses these before reading a length: JPG, JPGn, DHP, EXP and the reserved codes.
            if (marker is 0xC8 or (>= 0xF0 and <= 0xFD) or 0xDE or 0xDF or < 0xC0)
                throw st.Error($"corrupt JPEG (marker 0x{marker:X2}, which libjpeg does not accept)");
            // jdmarker.c get_sof refuses a second frame header before reading its length.
            if (marker is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC) && st.Components.Length != 0)
                throw st.Error("corrupt JPEG (a second SOF marker)");
            if (pos + 2 > data.Length) return EndOfFile(st, "in a marker's length");
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[pos..]);
            if (length < 2) throw st.Error($"corrupt JPEG (segment 0x{marker:X2} at byte {pos - 2} has length {length})");
            if (pos + length > data.Length)
            {
                // libjpeg reads a segment byte by byte: what it refuses in the part the file holds is refused before it
                // suspends at the end (which a complete single-scan image survives).
                CheckSegmentStart(st, marker, data[pos..]);
                return EndOfFile(st, $"in segment 0x{marker:X2} at byte {pos - 2}");
            }
            if (marker == 0xCC) CheckSegmentStart(st, marker, data.Slice(pos, length)); // DAC: only checked, not used
            Need(st, pos + length);
            var segment = data.Slice(pos + 2, length - 2);
            pos += length;
            switch (marker)
            {
                case 0xC0: case 0xC1: ReadFrame(st, segment, maxPixels); break;
                case 0xC2: ReadFrame(st, segment, maxPixels); st.Progressive = true; break;
                case 0xC3: throw st.Error("lossless JPEG is not supported by the managed decoder");
                case 0xC5: case 0xC6: case 0xC7: throw st.Error("hierarchical (differential) JPEG is not supported by the managed decoder");
                case 0xC9: case 0xCA: case 0xCB: case 0xCD: case 0xCE: case 0xCF:
                    throw st.Error("arithmetic-coded JPEG is not supported by the managed decoder");
                case 0xC4: ReadHuffmanTables(st, segment); break;
                case 0xDB: ReadQuantTables(st, segment); break;
                case 0xDD:
                    if (segment.Length != 2) throw st.Error("corrupt JPEG (DRI segment of the wrong length)"); // jdmarker.c get_dri
                    st.RestartInterval = BinaryPrimitives.ReadUInt16BigEndian(segment);
                    break;
                case 0xDA:
                    // jdinput.c consume_markers: a second scan in a single-scan file is JERR_EOI_EXPECTED.
                    if (st.Scans > 0 && !st.MultiScan) throw st.Error("corrupt JPEG (a scan after the only scan of a sequential image)");
                    (pos, pendingMarker) = ReadScan(st, data, segment, pos);
                    break;
                case 0xE0:
                    if (segment.StartsWith("JFIF\0"u8)) st.SawJfif = true;
                    break;
                case 0xEE:
                    if (segment.Length >= 12 && segment.StartsWith("Adobe"u8)) { st.SawAdobe = true; st.AdobeTransform = segment[11]; }
                    break;
                default: break; // APPn, COM, DNL, DAC: nothing the decoder needs
            }
        }
    }

    /// <summary>
    /// The checks jdmarker.c makes while it reads a DHT, DQT, SOS, DRI or DAC segment, on the bytes of it the file holds
    /// (<paramref name="segment"/> starts at its length field): each check runs only once the bytes it looks at have been
    /// read, so a segment cut by the end of the file is refused only for what its first bytes show. Throws where
    /// libjpeg's get_dht, get_dqt, get_sos, get_dri or get_dac would; returns where they would suspend or succeed.
    /// </summary>
    private static void CheckSegmentStart(State st, int marker, ReadOnlySpan<byte> segment)
    {
        if (segment.Length < 2) return;
        int left = BinaryPrimitives.ReadUInt16BigEndian(segment) - 2, at = 2;
        ImageInputException Bad(string what) => st.Error($"corrupt JPEG ({what} in segment 0x{marker:X2})");
        switch (marker)
        {
            case 0xC4:
                while (left > 16)
                {
                    if (at + 17 > segment.Length) return;
                    int count = 0;
                    foreach (byte n in segment.Slice(at + 1, 16)) count += n;
                    int index = segment[at];
                    left -= 17;
                    if (count > 256 || count > left) throw Bad("Huffman code counts larger than the table");
                    if (at + 17 + count > segment.Length) return;
                    if ((index & ~0x10) > 3) throw Bad($"Huffman table index {index}");
                    at += 17 + count;
                    left -= count;
                }
                if (left != 0) throw Bad("a length that does not match the tables");
                break;
            case 0xDB:
                while (left > 0)
                {
                    left--;
                    if (at >= segment.Length) return;
                    int precision = segment[at] >> 4, index = segment[at] & 15;
                    if (index > 3) throw Bad($"quantization table index {index}");
                    int count = precision != 0 ? Math.Min(left >> 1, 64) : Math.Min(left, 64);
                    int bytes = precision != 0 ? 2 * count : count;
                    if (at + 1 + bytes > segment.Length) return;
                    at += 1 + bytes;
                    left -= bytes;
                }
                if (left != 0) throw Bad("a length that does not match the tables");
                break;
            case 0xDA:
                if (segment.Length < 3) return;
                int components = segment[2];
                if (left + 2 != components * 2 + 6 || components is < 1 or > 4) throw Bad("a length that does not match its components");
                for (int i = 0; i < components && 3 + 2 * i < segment.Length; i++)
                {
                    int id = segment[3 + 2 * i];
                    if (!st.Components.Any(c => c.Id == id)) throw Bad($"component {id}, which the frame does not have");
                }
                if (st.Scans > 0 && !st.MultiScan) throw st.Error("corrupt JPEG (a scan after the only scan of a sequential image)");
                break;
            case 0xDD:
                if (left != 2) throw Bad("a length other than 4");
                break;
            case 0xCC:
                for (; left > 0; left -= 2, at += 2)
                {
                    if (at + 2 > segment.Length) return;
                    int index = segment[at], value = segment[at + 1];
                    if (index >= 32) throw Bad($"arithmetic table index {index}");
                    if (index < 16 && (value & 15) > value >> 4) throw Bad($"arithmetic DC conditioning {value}");
                }
                if (left != 0) throw Bad("a length that does not match the tables");
                break;
        }
    }

    /// <summary>libjpeg needs bytes up to <paramref name="end"/>: Pillow hands it more 65536-byte blocks until they are
    /// in its buffer (the caller has checked that the file holds them).</summary>
    private static void Need(State st, int end)
    {
        while (end > st.BufferEnd) st.BufferEnd += PillowReadSize;
    }

    /// <summary>libjpeg wants bytes past the end of the file: Pillow's load stops there. A single-scan sequential image
    /// whose rows are all out is returned (jpeg_finish_decompress suspending is ignored); anything else is truncated.</summary>
    private static JpegImage EndOfFile(State st, string where)
    {
        if (st.OutputComplete) return Finish(st);
        throw st.Error($"image file is truncated (JPEG ends {where})");
    }

    /// <summary>Finds the next marker from <paramref name="pos"/> as libjpeg's next_marker does: bytes that are not
    /// 0xFF are skipped, as are fill 0xFF bytes and stuffed 0xFF 0x00 pairs. Returns the marker code with
    /// <paramref name="pos"/> just after it, or -1 at the end of the data.</summary>
    private static int NextMarker(ReadOnlySpan<byte> data, ref int pos)
    {
        while (pos < data.Length)
        {
            if (data[pos] != 0xFF) { pos++; continue; }
            while (pos < data.Length && data[pos] == 0xFF) pos++;
            if (pos >= data.Length) return -1;
            int code = data[pos++];
            if (code != 0) return code;
        }
        return -1;
    }

    private static void ReadFrame(State st, ReadOnlySpan<byte> s, long maxPixels)
    {
        if (st.Components.Length != 0) throw st.Error("corrupt JPEG (a second SOF marker)");
        if (s.Length < 6) throw st.Error("JPEG SOF segment is too short");
        int precision = s[0], height = BinaryPrimitives.ReadUInt16BigEndian(s[1..]), width = BinaryPrimitives.ReadUInt16BigEndian(s[3..]);
        int count = s[5];
        if (precision != 8) throw st.Error($"{precision}-bit JPEG is not supported by the managed decoder (8-bit only)");
        // jdinput.c initial_setup: JERR_IMAGE_TOO_BIG above JPEG_MAX_DIMENSION.
        if (width > 65500 || height > 65500) throw st.Error($"JPEG frame {width}x{height} is larger than libjpeg accepts (65500 a side)");
        if (width == 0 || height == 0) throw st.Error($"JPEG frame is {width}x{height} (an empty image, or a height defined by a DNL marker, which is not supported)");
        if (count is not (1 or 3 or 4)) throw st.Error($"JPEG with {count} components is not supported (1, 3 or 4)");
        if (s.Length < 6 + 3 * count) throw st.Error("JPEG SOF segment is too short for its components");
        long pixels = (long)width * height;
        if (pixels > maxPixels)
            throw st.Error($"image is {width}x{height} = {pixels} pixels, over the limit of {maxPixels} (possible decompression bomb; raise PreprocessOptions.MaxPixels to allow it)");
        var components = new Component[count];
        for (int i = 0; i < count; i++)
        {
            var c = s.Slice(6 + 3 * i, 3);
            components[i] = new Component { Id = c[0], H = c[1] >> 4, V = c[1] & 15, QuantIndex = c[2] };
            if (components[i].H is < 1 or > 4 || components[i].V is < 1 or > 4)
                throw st.Error($"corrupt JPEG (component {c[0]} has sampling factors {components[i].H}x{components[i].V})");
            if (components[i].QuantIndex > 3) throw st.Error($"corrupt JPEG (component {c[0]} uses quantization table {c[2]})");
        }
        st.Width = width; st.Height = height;
        st.MaxH = components.Max(c => c.H);
        st.MaxV = components.Max(c => c.V);
        st.McusWide = (width + 8 * st.MaxH - 1) / (8 * st.MaxH);
        st.McusHigh = (height + 8 * st.MaxV - 1) / (8 * st.MaxV);
        foreach (var c in components)
        {
            c.Width = (int)((width * (long)c.H + st.MaxH - 1) / st.MaxH);
            c.Height = (int)((height * (long)c.V + st.MaxV - 1) / st.MaxV);
            c.BlocksWide = st.McusWide * c.H;
            c.BlocksHigh = st.McusHigh * c.V;
        }
        // Bounded by the pixel limit: at most 16 x (1 + 8x8 padding) coefficients per pixel in the worst sampling.
        // Allocated at the first scan (AllocateCoefficients): a single-scan image needs only one MCU row of them.
        foreach (var c in components)
            if ((long)c.BlocksWide * c.BlocksHigh * 64 > Array.MaxLength) throw st.Error($"JPEG frame {width}x{height} is too large for the managed decoder");
        st.Components = components;
        // The sizes at the requested scale are known from the frame alone; the IDCT writes SamplesPerBlock per block side.
        st.Output = ScaledSizes(st, st.ScaleFor(width, height));
        for (int i = 0; i < components.Length; i++) components[i].SamplesPerBlock = st.Output.Components[i].DctSize;
    }

    private static void ReadQuantTables(State st, ReadOnlySpan<byte> s)
    {
        while (s.Length > 0)
        {
            int precision = s[0] >> 4, index = s[0] & 15;
            // Any nonzero precision nibble means 16-bit entries, for Pillow's header parser and libjpeg's get_dqt alike.
            if (index > 3) throw st.Error($"corrupt JPEG (DQT table {index})");
            int size = precision == 0 ? 64 : 128;
            if (s.Length < 1 + size) throw st.Error("JPEG DQT segment is too short");
            var table = new ushort[64];
            for (int k = 0; k < 64; k++)
                table[NaturalOrder[k]] = precision == 0 ? s[1 + k] : BinaryPrimitives.ReadUInt16BigEndian(s[(1 + 2 * k)..]);
            st.QuantTables[index] = table;
            s = s[(1 + size)..];
        }
    }

    private static void ReadHuffmanTables(State st, ReadOnlySpan<byte> s)
    {
        while (s.Length > 0)
        {
            if (s.Length < 17) throw st.Error("JPEG DHT segment is too short");
            int cls = s[0] >> 4, index = s[0] & 15;
            if (cls > 1 || index > 3) throw st.Error($"corrupt JPEG (DHT class {cls} index {index})");
            var counts = s.Slice(1, 16);
            int total = 0;
            foreach (byte n in counts) total += n;
            if (total > 256 || s.Length < 17 + total) throw st.Error("corrupt JPEG (DHT segment shorter than its code counts, or more than 256 codes)");
            var table = new JpegHuffmanTable(counts, s.Slice(17, total), cls == 0, $"image '{st.Name}'");
            (cls == 0 ? st.DcTables : st.AcTables)[index] = table;
            s = s[(17 + total)..];
        }
    }

    /// <summary>Reads the SOS header and decodes the scan's entropy-coded data that starts at <paramref name="pos"/>;
    /// returns where libjpeg's marker reader goes on and the marker the data ended at if the entropy decoder met it
    /// (libjpeg's unread_marker, with the position after it), else 0.</summary>
    private static (int Position, int UnreadMarker) ReadScan(State st, ReadOnlySpan<byte> data, ReadOnlySpan<byte> s, int pos)
    {
        if (st.Components.Length == 0) throw st.Error("corrupt JPEG (a scan before the frame header)");
        if (s.Length < 1) throw st.Error("JPEG SOS segment is too short");
        int count = s[0];
        if (count < 1 || count > st.Components.Length || s.Length < 1 + 2 * count + 3)
            throw st.Error($"corrupt JPEG (scan with {count} components)");
        var scan = new Scan { Start = s[1 + 2 * count], End = s[2 + 2 * count], High = s[3 + 2 * count] >> 4, Low = s[3 + 2 * count] & 15 };
        var kind = ScanKind.Sequential;
        if (st.Progressive)
        {
            // jdphuff.c start_pass_phuff_decoder's hard checks (JERR_BAD_PROGRESSION); an Ah that does not follow the
            // previous Al is only a warning there.
            bool isDc = scan.Start == 0;
            if (isDc ? scan.End != 0 : scan.End < scan.Start || scan.End > 63 || count != 1)
                throw st.Error($"corrupt progressive JPEG (scan of coefficients {scan.Start}..{scan.End} over {count} components)");
            if (scan.High != 0 && scan.Low != scan.High - 1 || scan.Low > 13) throw st.Error($"corrupt progressive JPEG (successive approximation bit {scan.Low})");
            kind = (isDc, scan.High != 0) switch
            {
                (true, false) => ScanKind.DcFirst,
                (true, true) => ScanKind.DcRefine,
                (false, false) => ScanKind.AcFirst,
                _ => ScanKind.AcRefine,
            };
        }
        var comps = new Component[count];
        var dc = new JpegHuffmanTable?[count];
        var ac = new JpegHuffmanTable?[count];
        for (int i = 0; i < count; i++)
        {
            int id = s[1 + 2 * i], tables = s[2 + 2 * i];
            var c = Array.Find(st.Components, x => x.Id == id) ?? throw st.Error($"corrupt JPEG (scan names component {id}, which the frame does not have)");
            if (Array.IndexOf(comps, c) >= 0) throw st.Error($"corrupt JPEG (scan names component {id} twice)");
            comps[i] = c;
            // Only the tables the scan codes with must exist (jdphuff.c: a DC refinement scan has none, an AC scan no DC table).
            if (kind is ScanKind.Sequential or ScanKind.DcFirst)
                dc[i] = ((tables >> 4) < 4 ? st.DcTables[tables >> 4] : null) ?? throw st.Error($"corrupt JPEG (scan uses DC Huffman table {tables >> 4}, which is not defined)");
            if (kind is ScanKind.Sequential or ScanKind.AcFirst or ScanKind.AcRefine)
                ac[i] = ((tables & 15) < 4 ? st.AcTables[tables & 15] : null) ?? throw st.Error($"corrupt JPEG (scan uses AC Huffman table {tables & 15}, which is not defined)");
            c.Quant ??= st.QuantTables[c.QuantIndex] ?? throw st.Error($"corrupt JPEG (component {id} uses quantization table {c.QuantIndex}, which is not defined)");
        }
        if (st.Progressive)
            foreach (var c in comps)
            {
                // jdphuff.c start_pass_phuff_decoder: the previous bits are saved over min(Ss, 1)..max(Se, 9) (0 in the
                // first scan), then the scan's coefficients get its Al.
                for (int k = Math.Min(scan.Start, 1); k <= SmoothedCoefficients; k++)
                    c.PreviousCoefficientBits[k] = st.Scans == 0 ? 0 : c.CoefficientBits[k];
                for (int k = scan.Start; k <= scan.End; k++) c.CoefficientBits[k] = scan.Low;
            }
        int blocksInMcu = 0;
        foreach (var c in comps) blocksInMcu += count == 1 ? 1 : c.H * c.V;
        if (blocksInMcu > MaxBlocksInMcu) throw st.Error($"corrupt JPEG (an MCU of {blocksInMcu} blocks; at most {MaxBlocksInMcu})");

        int mcusWide, mcusHigh;
        if (count == 1)
        {
            // A non-interleaved scan codes only the blocks that cover the component (A.2.2).
            mcusWide = (comps[0].Width + 7) / 8;
            mcusHigh = (comps[0].Height + 7) / 8;
        }
        else { mcusWide = st.McusWide; mcusHigh = st.McusHigh; }

        if (st.Scans == 0) st.MultiScan = st.Progressive || count < st.Components.Length;
        // A sequential image whose first scan carries every component has no other scan (libjpeg's single-pass mode):
        // its blocks are transformed MCU row by MCU row and only one row of coefficients is kept.
        bool stream = st.Scans == 0 && !st.MultiScan;
        foreach (var c in comps)
        {
            AllocateCoefficients(c, stream ? count == 1 ? 1 : c.V : c.BlocksHigh);
            if (stream) { c.Streamed = true; AllocatePlane(c); }
        }
        foreach (var c in comps) c.DcPrediction = 0;
        var bits = new JpegBitReader(data, pos, st.BufferEnd);
        int restartsLeft = st.RestartInterval, nextRestart = 0;
        long totalMcus = (long)mcusWide * mcusHigh;
        Span<int> savedDc = stackalloc int[count];
        Span<short> savedBlock = stackalloc short[64];
        for (long mcu = 0; mcu < totalMcus; mcu++)
        {
            int mx = (int)(mcu % mcusWide), my = (int)(mcu / mcusWide);
            // jdcoefct.c consume_data, before each MCU (so before a restart can clear the flag).
            if (!bits.InsufficientData) st.LastGoodImcuRow = count == 1 ? my / comps[0].V : my;
            if (st.RestartInterval != 0)
            {
                if (restartsLeft == 0)
                {
                    while (true)
                    {
                        var before = bits;
                        try { Restart(data, ref bits, nextRestart); break; }
                        catch (JpegSuspendedException) { bits = before; MoreData(st, ref bits); }
                    }
                    nextRestart = (nextRestart + 1) & 7;
                    foreach (var c in comps) c.DcPrediction = 0;
                    scan.EndOfBandRun = 0;
                    restartsLeft = st.RestartInterval;
                }
                restartsLeft--;
            }
            // jdhuff.c decode_mcu / jdphuff.c: once a segment has run out of data its remaining MCUs are left as they
            // are (zero, or what earlier scans put there), except DC refinement, which reads zero bits and changes nothing.
            bool skipped = bits.InsufficientData && kind != ScanKind.DcRefine;
            int rowOfMcu = stream ? 0 : my; // a streamed component's coefficients hold the current MCU row only
            if (stream && mx == 0) foreach (var c in comps) Array.Clear(c.Coefficients);
            // decode_mcu_fast runs for sequential scans without restarts when 512 bytes per block are in the buffer
            // and no marker is pending; where it meets a marker, the MCU is decoded again the slow way.
            bool done = skipped;
            if (!done && kind == ScanKind.Sequential && st.RestartInterval == 0 && bits.UnreadMarker == 0
                && bits.BytesInBuffer >= FastMcuBytesPerBlock * blocksInMcu)
            {
                for (int i = 0; i < count; i++) savedDc[i] = comps[i].DcPrediction;
                done = DecodeMcuFast(ref bits, comps, dc, ac, mx, rowOfMcu);
                if (!done) for (int i = 0; i < count; i++) comps[i].DcPrediction = savedDc[i];
            }
            while (!done)
            {
                // A suspended MCU is decoded again from its starting state once Pillow has handed over more data.
                var before = bits;
                for (int i = 0; i < count; i++) savedDc[i] = comps[i].DcPrediction;
                int savedRun = scan.EndOfBandRun;
                var refined = kind == ScanKind.AcRefine ? comps[0].Coefficients.AsSpan((my * comps[0].BlocksWide + mx) * 64, 64) : default;
                refined.CopyTo(savedBlock); // refinement reads a correction bit for every nonzero coefficient: undo new ones
                try
                {
                    DecodeMcu(st, ref bits, kind, scan, comps, dc, ac, mx, rowOfMcu);
                    break;
                }
                catch (JpegSuspendedException)
                {
                    bits = before;
                    MoreData(st, ref bits);
                }
                for (int i = 0; i < count; i++) comps[i].DcPrediction = savedDc[i];
                scan.EndOfBandRun = savedRun;
                savedBlock[..refined.Length].CopyTo(refined);
            }
            if (stream && mx == mcusWide - 1)
                foreach (var c in comps)
                {
                    int blockRows = count == 1 ? 1 : c.V;
                    TransformBlockRows(st, c, my * blockRows, blockRows);
                }
        }
        st.Scans++;
        if (!st.MultiScan) st.OutputComplete = true;
        st.BufferEnd = bits.Limit;
        return (bits.Position, bits.UnreadMarker);
    }

    private static void DecodeMcu(State st, ref JpegBitReader bits, ScanKind kind, Scan scan, Component[] comps,
        JpegHuffmanTable?[] dc, JpegHuffmanTable?[] ac, int mx, int my)
    {
        if (comps.Length == 1)
        {
            var c = comps[0];
            DecodeBlock(st, ref bits, kind, scan, c, dc[0], ac[0], my * c.BlocksWide + mx);
            return;
        }
        for (int i = 0; i < comps.Length; i++)
        {
            var c = comps[i];
            for (int by = 0; by < c.V; by++)
                for (int bx = 0; bx < c.H; bx++)
                    DecodeBlock(st, ref bits, kind, scan, c, dc[i], ac[i], (my * c.V + by) * c.BlocksWide + mx * c.H + bx);
        }
    }

    /// <summary>libjpeg suspended: Pillow reads the next 65536 bytes and calls it again, or, at the end of the file,
    /// refuses the image (not every row is out).</summary>
    private static void MoreData(State st, ref JpegBitReader bits)
    {
        if (bits.Limit >= bits.DataLength) throw st.Error("image file is truncated (JPEG scan data runs to the end of the file)");
        bits.Limit = Math.Min(bits.Limit + PillowReadSize, bits.DataLength);
    }

    /// <summary>
    /// jdhuff.c process_restart and jdmarker.c read_restart_marker / jpeg_resync_to_restart: the bits left are thrown
    /// away; unless the data already stopped at a marker, the next marker is searched for (skipping any other bytes).
    /// The expected RSTn is consumed. Otherwise libjpeg resynchronizes: a marker below SOF0 (not a real one) or one of
    /// the two previous RSTs is skipped and the search goes on; one of the next two RSTs, or any other real marker, is
    /// left unread, so this interval decodes from no data; any other RST is consumed as if it were the expected one.
    /// The out-of-data flag is cleared unless a marker is left unread.
    /// </summary>
    private static void Restart(ReadOnlySpan<byte> data, ref JpegBitReader bits, int expected)
    {
        bits.DiscardBits();
        int marker = bits.UnreadMarker, pos = bits.Position;
        if (marker == 0) marker = NextMarkerSuspending(data, ref pos, bits.Limit);
        while (marker != 0xD0 + expected)
        {
            int ahead = (marker - 0xD0 - expected) & 7;
            bool isRestart = marker is >= 0xD0 and <= 0xD7;
            if (marker < 0xC0 || isRestart && ahead is 6 or 7)
            {
                marker = NextMarkerSuspending(data, ref pos, bits.Limit); // not a real marker, or a prior restart: skip it
                continue;
            }
            if (!isRestart || ahead is 1 or 2)
            {
                bits.SetMarker(pos, marker); // left for later: this interval has no data
                return;
            }
            break; // a restart too far from the expected one: consumed as if it were that one
        }
        bits.SetMarker(pos, 0);
        bits.InsufficientData = false;
    }

    /// <summary>jdmarker.c next_marker behind Pillow's source: as <see cref="NextMarker"/>, but suspends at
    /// <paramref name="limit"/>.</summary>
    private static int NextMarkerSuspending(ReadOnlySpan<byte> data, ref int pos, int limit)
    {
        int marker = NextMarker(data[..limit], ref pos);
        if (marker < 0) throw new JpegSuspendedException();
        return marker;
    }

    private enum ScanKind { Sequential, DcFirst, DcRefine, AcFirst, AcRefine }

    /// <summary>A scan's spectral selection (Ss..Se), successive approximation (Ah, Al) and, for progressive AC scans,
    /// the end-of-band run still to go (G.1.2.2).</summary>
    private sealed class Scan
    {
        public int Start, End, High, Low, EndOfBandRun;
    }

    private static void DecodeBlock(State st, ref JpegBitReader bits, ScanKind kind, Scan scan, Component c,
        JpegHuffmanTable? dc, JpegHuffmanTable? ac, int block)
    {
        var coefficients = c.Coefficients.AsSpan(block * 64, 64);
        switch (kind)
        {
            case ScanKind.Sequential:
                coefficients[0] = (short)NextDc(st, ref bits, c, dc!);
                for (int k = 1; k < 64; k++)
                {
                    int rs = ac!.Decode(ref bits);
                    int run = rs >> 4, size = rs & 15;
                    if (size != 0)
                    {
                        k += run;
                        coefficients[NaturalOrder[k]] = (short)bits.Receive(size);
                    }
                    else
                    {
                        if (run != 15) break;
                        k += 15;
                    }
                }
                break;
            case ScanKind.DcFirst:
                coefficients[0] = (short)(NextDc(st, ref bits, c, dc!) << scan.Low);
                break;
            case ScanKind.DcRefine:
                if (bits.Bits(1) != 0) coefficients[0] |= (short)(1 << scan.Low);
                break;
            case ScanKind.AcFirst:
                AcFirst(ref bits, scan, ac!, coefficients);
                break;
            case ScanKind.AcRefine:
                AcRefine(ref bits, scan, ac!, coefficients);
                break;
        }
    }

    /// <summary>The next DC value of a component: its prediction plus the decoded difference (F.2.2.1). libjpeg-turbo
    /// 2.1.5 lets the int prediction wrap in sequential scans (jdhuff.c) and refuses an overflow in progressive ones
    /// (jdphuff.c JERR_BAD_DCT_COEF).</summary>
    private static int NextDc(State st, ref JpegBitReader bits, Component c, JpegHuffmanTable dc)
    {
        int category = dc.Decode(ref bits);
        long value = (long)c.DcPrediction + bits.Receive(category);
        if (st.Progressive && value is > int.MaxValue or < int.MinValue) throw st.Error("corrupt JPEG (DC coefficient overflow)");
        c.DcPrediction = unchecked((int)value);
        return c.DcPrediction;
    }

    /// <summary>jdphuff.c decode_mcu_AC_first: the first pass over coefficients Ss..Se, scaled by 2^Al, with end-of-band
    /// runs that skip whole blocks.</summary>
    private static void AcFirst(ref JpegBitReader bits, Scan scan, JpegHuffmanTable ac, Span<short> coefficients)
    {
        if (scan.EndOfBandRun > 0) { scan.EndOfBandRun--; return; }
        for (int k = scan.Start; k <= scan.End; k++)
        {
            int rs = ac.Decode(ref bits);
            int run = rs >> 4, size = rs & 15;
            if (size != 0)
            {
                k += run;
                coefficients[NaturalOrder[k]] = (short)(bits.Receive(size) * (1 << scan.Low));
            }
            else if (run == 15) k += 15;
            else
            {
                scan.EndOfBandRun = (1 << run) + bits.Bits(run) - 1;
                break;
            }
        }
    }

    /// <summary>jdphuff.c decode_mcu_AC_refine: one more bit for coefficients already nonzero (a correction bit each),
    /// and new coefficients of magnitude 2^Al placed after skipping <c>run</c> zero-history coefficients.</summary>
    private static void AcRefine(ref JpegBitReader bits, Scan scan, JpegHuffmanTable ac, Span<short> coefficients)
    {
        int plusOne = 1 << scan.Low, minusOne = -1 << scan.Low;
        int k = scan.Start;
        if (scan.EndOfBandRun == 0)
        {
            for (; k <= scan.End; k++)
            {
                int rs = ac.Decode(ref bits);
                int run = rs >> 4, size = rs & 15, value = 0;
                if (size != 0) value = bits.Bits(1) != 0 ? plusOne : minusOne; // size should be 1; libjpeg only warns
                else if (run != 15)
                {
                    scan.EndOfBandRun = (1 << run) + bits.Bits(run);
                    break;
                }
                do
                {
                    ref short coefficient = ref coefficients[NaturalOrder[k]];
                    if (coefficient != 0) Correct(ref bits, ref coefficient, plusOne, minusOne);
                    else if (--run < 0) break; // the zero coefficient the new value goes to
                    k++;
                } while (k <= scan.End);
                if (value != 0) coefficients[NaturalOrder[k]] = (short)value;
            }
        }
        if (scan.EndOfBandRun > 0)
        {
            for (; k <= scan.End; k++)
            {
                ref short coefficient = ref coefficients[NaturalOrder[k]];
                if (coefficient != 0) Correct(ref bits, ref coefficient, plusOne, minusOne);
            }
            scan.EndOfBandRun--;
        }
    }

    /// <summary>A correction bit: adds 2^Al away from zero unless that bit is already set.</summary>
    private static void Correct(ref JpegBitReader bits, ref short coefficient, int plusOne, int minusOne)
    {
        if (bits.Bits(1) != 0 && (coefficient & plusOne) == 0)
            coefficient = (short)(coefficient + (coefficient >= 0 ? plusOne : minusOne));
    }

    /// <summary>Zigzag positions 1..9, whose quantizers and precision jdcoefct.c smoothing_ok looks at.</summary>
    private const int SmoothedCoefficients = 9;

    private static JpegImage Finish(State st)
    {
        var comps = st.Components;
        bool smooth = st.Progressive && WouldSmooth(comps);
        var output = st.Output!;
        var upsamplers = new JpegUpsampler[comps.Length];
        for (int i = 0; i < comps.Length; i++)
        {
            var c = comps[i];
            if (!c.Streamed)
            {
                AllocateCoefficients(c, c.BlocksHigh); // a component no scan carried: zero coefficients, mid-gray
                if (smooth)
                {
                    // jdcoefct.c smoothing_ok latches: the previous bits only count after more than one scan.
                    var previous = c.PreviousCoefficientBits.ToArray();
                    if (st.Scans <= 1) previous.AsSpan().Fill(-1);
                    JpegBlockSmoothing.Apply(c.Coefficients, c.BlocksWide, (c.Width + 7) / 8, (c.Height + 7) / 8, c.V, c.Quant!,
                        c.CoefficientBits.AsSpan(0, SmoothedCoefficients + 1), previous, st.LastGoodImcuRow);
                }
                AllocatePlane(c);
                TransformBlockRows(st, c, 0, c.BlocksHigh);
            }
            c.Coefficients = []; // the plane replaces them
            var scaled = output.Components[i];
            upsamplers[i] = new JpegUpsampler(c.Plane, c.PlaneStride, scaled.Width, scaled.Height, scaled.HInGroup, scaled.VInGroup,
                st.MaxH, st.MaxV, output.FancyUpsampling, st.Name, st.Level);
        }
        int width = output.Width, height = output.Height;
        if (comps.Length == 1)
        {
            var gray = NewOutput((long)width * height);
            for (int y = 0; y < height; y++) upsamplers[0].UpsampleRow(y, gray.AsSpan(y * width, width));
            return new JpegImage(width, height, 1, gray);
        }
        if (comps.Length == 4)
        {
            var cmyk = NewOutput((long)width * height * 4);
            bool isYcck = st.SawAdobe && st.AdobeTransform != 0;
            var planes = new byte[4][];
            for (int i = 0; i < 4; i++) planes[i] = new byte[width];
            for (int y = 0; y < height; y++)
            {
                for (int i = 0; i < 4; i++) upsamplers[i].UpsampleRow(y, planes[i]);
                // libjpeg's guess for 4 components (jdapimin.c): an Adobe marker with a transform other than 0 means YCCK.
                var row = cmyk.AsSpan(y * width * 4, width * 4);
                if (isYcck) JpegColor.YcckToInvertedCmyk(planes[0], planes[1], planes[2], planes[3], row);
                else JpegColor.InterleaveInverted(planes[0], planes[1], planes[2], planes[3], row);
            }
            return new JpegImage(width, height, 4, cmyk);
        }
        var rgb = NewOutput((long)width * height * 3);
        bool isRgb = IsRgb(st);
        for (int y = 0; y < height; y++)
        {
            var r0 = upsamplers[0].UpsampledRow(y, width);
            var r1 = upsamplers[1].UpsampledRow(y, width);
            var r2 = upsamplers[2].UpsampledRow(y, width);
            var row = rgb.AsSpan(y * width * 3, width * 3);
            if (isRgb) JpegColor.Interleave(r0, r1, r2, row);
            else JpegColor.YccToRgb(r0, r1, r2, row, st.Level);
        }
        return new JpegImage(width, height, 3, rgb);
    }

    /// <summary>The decoded image's bytes, left uninitialized (every row is written), where an array can hold them;
    /// zeroing 36 MB for a 12 MP photo only to overwrite it cost a few ms.</summary>
    private static byte[] NewOutput(long length) => length <= Array.MaxLength ? GC.AllocateUninitializedArray<byte>((int)length) : new byte[length];

    /// <summary>Allocates the component's coefficients, <paramref name="blockRows"/> rows of blocks, at its first scan.</summary>
    private static void AllocateCoefficients(Component c, int blockRows)
    {
        if (c.Coefficients.Length == 0) c.Coefficients = new short[c.BlocksWide * blockRows * 64];
    }

    /// <summary>Allocates the plane the IDCT writes: the blocks that cover the component, SamplesPerBlock square each.</summary>
    private static void AllocatePlane(Component c)
    {
        int blocksWide = (c.Width + 7) / 8, blocksHigh = (c.Height + 7) / 8;
        c.PlaneStride = blocksWide * c.SamplesPerBlock;
        c.Plane = new byte[c.PlaneStride * blocksHigh * c.SamplesPerBlock];
    }

    /// <summary>Transforms block rows <paramref name="firstBlockRow"/>.. of the component into its plane, as many as the
    /// coefficients hold from their first row (all of them, or the streamed MCU row) and the plane covers.</summary>
    private static void TransformBlockRows(State st, Component c, int firstBlockRow, int blockRows)
    {
        int blocksWide = (c.Width + 7) / 8, blocksHigh = (c.Height + 7) / 8, size = c.SamplesPerBlock, stride = c.PlaneStride;
        var quant = c.Quant ?? new ushort[64];
        for (int r = 0; r < blockRows && firstBlockRow + r < blocksHigh; r++)
        {
            int coefficientRow = c.Streamed ? r : firstBlockRow + r;
            for (int bx = 0; bx < blocksWide; bx++)
                JpegScaledIdct.Transform(size, c.Coefficients.AsSpan((coefficientRow * c.BlocksWide + bx) * 64, 64), quant, c.Plane,
                    (firstBlockRow + r) * size * stride + bx * size, stride, st.Level);
        }
    }

    /// <summary>
    /// jdcoefct.c smoothing_ok (libjpeg-turbo 2.1, do_block_smoothing on by default): libjpeg smooths a progressive
    /// image's blocks when every component's DC is known, the DC and first 9 AC quantizers are nonzero, and some of those
    /// 9 AC coefficients are missing or short of bits (<see cref="JpegBlockSmoothing"/>). A complete progressive file
    /// (every coefficient refined to Al 0) is decoded without smoothing.
    /// </summary>
    private static bool WouldSmooth(Component[] comps)
    {
        bool useful = false;
        foreach (var c in comps)
        {
            if (c.Quant is null || c.CoefficientBits[0] < 0) return false;
            for (int k = 0; k <= SmoothedCoefficients; k++)
                if (c.Quant[NaturalOrder[k]] == 0) return false;
            for (int k = 1; k <= SmoothedCoefficients; k++)
                if (c.CoefficientBits[k] != 0) useful = true;
        }
        return useful;
    }

    /// <summary>libjpeg's guess of a 3-component file's colour space (jdapimin.c default_decompress_parms): JFIF means
    /// YCbCr; else an Adobe marker's transform 0 means RGB; else components named 'R', 'G', 'B' mean RGB; else YCbCr.</summary>
    private static bool IsRgb(State st)
    {
        if (st.SawJfif) return false;
        if (st.SawAdobe) return st.AdobeTransform == 0;
        var c = st.Components;
        return c[0].Id == 'R' && c[1].Id == 'G' && c[2].Id == 'B';
    }
}
