namespace ManagedClip.Imaging.Jpeg;

/// <summary>
/// A Huffman table from a DHT segment, in the canonical form of JPEG Annex C / F.2.2.3 (libjpeg's jdhuff.c
/// jpeg_make_d_derived_tbl): codes up to <see cref="LookaheadBits"/> bits long are found with one table lookup, longer
/// ones by comparing against the largest code of each length.
/// </summary>
internal sealed class JpegHuffmanTable
{
    public const int LookaheadBits = 9;

    // For each 9-bit prefix: (code length << 8) | symbol, or 0 when the code is longer than 9 bits.
    private readonly ushort[] _lookahead = new ushort[1 << LookaheadBits];
    // _maxCode[l]: the largest code of length l (-1 if none); _valueOffset[l]: index of the first symbol of length l
    // in _symbols minus the first code of that length. _maxCode[17] is a sentinel that ends any search.
    private readonly int[] _maxCode = new int[18];
    private readonly int[] _valueOffset = new int[17];
    private readonly byte[] _symbols;

    /// <param name="counts">the 16 counts of codes of length 1..16</param>
    /// <param name="symbols">the symbols in code order</param>
    /// <param name="isDc">DC tables may only hold categories 0..15, as libjpeg checks</param>
    /// <param name="describe">names the file for error messages</param>
    public JpegHuffmanTable(ReadOnlySpan<byte> counts, ReadOnlySpan<byte> symbols, bool isDc, string describe)
    {
        _symbols = new byte[256]; // indexed with & 0xFF as libjpeg does, so a corrupt code stays inside
        symbols.CopyTo(_symbols);
        int code = 0, index = 0;
        for (int length = 1; length <= 16; length++)
        {
            int n = counts[length - 1];
            _valueOffset[length] = index - code;
            if (n == 0) { _maxCode[length] = -1; }
            else
            {
                for (int i = 0; i < n; i++, code++, index++)
                {
                    // Every code must fit in its length and none may be all ones (libjpeg's JERR_BAD_HUFF_TABLE check,
                    // code >= 2^length after the codes of that length); checked before the code is placed.
                    if (code + 1 >= 1 << length)
                        throw new ImageInputException($"{describe}: bad Huffman table (more codes of length {length} than fit)");
                    if (length <= LookaheadBits)
                    {
                        int shift = LookaheadBits - length, first = code << shift;
                        for (int fill = 0; fill < 1 << shift; fill++)
                            _lookahead[first + fill] = (ushort)((length << 8) | _symbols[index]);
                    }
                }
                _maxCode[length] = code - 1;
            }
            code <<= 1;
        }
        _maxCode[17] = int.MaxValue;
        if (!isDc) BuildFastAc();
        if (isDc)
            foreach (byte s in symbols)
                if (s > 15) throw new ImageInputException($"{describe}: bad Huffman table (DC category {s} > 15)");
    }

    /// <summary>Bits a <see cref="FastAcTable"/> entry looks at: an AC code and its magnitude bits together.</summary>
    public const int FastAcBits = 11;

    // For each 11-bit prefix that starts with an AC code whose magnitude bits also fit: (value << 20) | (code length << 16)
    // | (run << 8) | (code length + magnitude length); for end of block and ZRL, NoMagnitude | (run << 8) | code length
    // (code length field 0: no refill can fall inside); 0 otherwise (longer codes).
    private int[] _fastAc = [];

    /// <summary>Marks a <see cref="FastAcTable"/> entry for a code without magnitude bits: end of block, or ZRL (run 15).</summary>
    public const int NoMagnitude = 1 << 12;

    private void BuildFastAc()
    {
        _fastAc = new int[1 << FastAcBits];
        for (int prefix = 0; prefix < _fastAc.Length; prefix++)
        {
            for (int length = 1; length <= FastAcBits; length++)
            {
                int code = prefix >> (FastAcBits - length);
                if (_maxCode[length] < 0 || code > _maxCode[length]) continue;
                int rs = _symbols[(_valueOffset[length] + code) & 0xFF], size = rs & 15;
                if (size == 0) _fastAc[prefix] = NoMagnitude | ((rs >> 4) << 8) | length; // end of block, or ZRL (run 15)
                else if (length + size <= FastAcBits)
                {
                    int v = (prefix >> (FastAcBits - length - size)) & ((1 << size) - 1);
                    int value = v < 1 << (size - 1) ? v - (1 << size) + 1 : v;
                    _fastAc[prefix] = (value << 20) | (length << 16) | ((rs >> 4) << 8) | (length + size);
                }
                break;
            }
        }
    }

    /// <summary>The <see cref="FastAcBits"/>-bit entries for the next bits of a sequential block's AC data (see
    /// _fastAc), for a caller that makes sure no refill could fall between the code and its magnitude.</summary>
    public int[] FastAcTable => _fastAc;

    /// <summary>The 9-bit lookahead table: (code length &lt;&lt; 8) | symbol, exact for codes of 8 bits or fewer at
    /// index (next 8 bits) &lt;&lt; 1.</summary>
    public ushort[] LookaheadTable => _lookahead;

    /// <summary>
    /// jpeg_huff_decode from 9 bits on, for decode_mcu_fast's codes longer than 8 bits, on the bit buffer as a value:
    /// <paramref name="bitsLeft"/> unread bits (17 or more, which the fast path guarantees) at the low end of
    /// <paramref name="buffer"/>. Returns (bits consumed &lt;&lt; 8) | symbol; a pattern that is no code consumes 17 bits
    /// and gives 0, as <see cref="DecodeBitByBit"/> does.
    /// </summary>
    public int DecodeLongCode(ulong buffer, int bitsLeft)
    {
        int length = LookaheadBits;
        int code = (int)(buffer >> (bitsLeft - length)) & ((1 << length) - 1);
        while (code > _maxCode[length])
        {
            length++;
            code = (code << 1) | (int)((buffer >> (bitsLeft - length)) & 1);
        }
        return (length << 8) | (length > 16 ? 0 : _symbols[(_valueOffset[length] + code) & 0xFF]);
    }

    /// <summary>
    /// Decodes one symbol, reading and refilling exactly as libjpeg-turbo 2.1's HUFF_DECODE (its slow path, decode_mcu_slow;
    /// decode_mcu_fast's is JpegDecoder.DecodeMcuFast), so that the bytes read, and whether Pillow's suspending source
    /// runs dry, are libjpeg's. A bit pattern that is no code (only possible in corrupt data) consumes 17 bits and gives
    /// 0, as libjpeg does after its JWRN_HUFF_BAD_CODE warning.
    /// </summary>
    public int Decode(ref JpegBitReader bits)
    {
        const int lookahead = 8; // libjpeg's HUFF_LOOKAHEAD; this table's 9-bit entries are exact for codes of <= 8 bits
        if (bits.BitsLeft < lookahead)
        {
            bits.Fill(0);
            if (bits.BitsLeft < lookahead) return DecodeBitByBit(ref bits, 1);
        }
        int entry = _lookahead[bits.PeekBits(lookahead) << 1];
        int length = entry >> 8;
        if (entry != 0 && length <= lookahead)
        {
            bits.DropBits(length);
            return entry & 0xFF;
        }
        return DecodeBitByBit(ref bits, lookahead + 1);
    }

    /// <summary>jdhuff.c jpeg_huff_decode: the first <paramref name="minBits"/> bits at once, then one bit at a time
    /// (F.16) until the code is no larger than the largest code of its length; the sentinel at length 17 ends it.</summary>
    private int DecodeBitByBit(ref JpegBitReader bits, int minBits)
    {
        int length = minBits;
        int code = bits.Bits(length);
        while (code > _maxCode[length])
        {
            code = (code << 1) | bits.Bits(1);
            length++;
        }
        return length > 16 ? 0 : _symbols[(_valueOffset[length] + code) & 0xFF];
    }
}

/// <summary>
/// Reads entropy-coded bits as libjpeg-turbo 2.1.5 does behind Pillow 9.4's suspending source (jdhuff.c
/// jpeg_fill_bit_buffer, 64-bit build; decode_mcu_fast's FILL_BIT_BUFFER_FAST works on a copy of the state in
/// JpegDecoder.DecodeMcuFast), keeping its state exactly: a 64-bit
/// buffer whose low <see cref="BitsLeft"/> bits are unread, the next byte libjpeg has not loaded (<see cref="Position"/>),
/// and the end of the bytes Pillow has handed it so far (<see cref="Limit"/>: Pillow's ImageFile.load reads the file in
/// 65536-byte blocks from its start and keeps what libjpeg has not consumed). A 0xFF data byte is followed by a stuffed
/// 0x00; any other byte after 0xFF is a marker (libjpeg's unread_marker), where the data stops and zero bits are
/// supplied (its "premature end of data segment" warning, <see cref="InsufficientData"/> once a real bit is missing).
/// A fill that reaches <see cref="Limit"/> before a marker throws <see cref="JpegSuspendedException"/> as libjpeg
/// suspends; the caller retries the MCU from its starting state with one more block, as libjpeg does on the next call.
/// </summary>
internal ref struct JpegBitReader
{
    /// <summary>Bits a slow fill loads up to: libjpeg's MIN_GET_BITS with a 64-bit bit buffer.</summary>
    private const int MinGetBits = 57;

    private readonly ReadOnlySpan<byte> _data;
    private int _position;
    private ulong _buffer;
    private int _bitsLeft;
    private int _marker;

    /// <summary>The bytes the reader reads (the whole file).</summary>
    public readonly ReadOnlySpan<byte> Data => _data;
    /// <summary>The 64-bit bit buffer; its low <see cref="BitsLeft"/> bits are unread.</summary>
    public readonly ulong Buffer => _buffer;

    /// <summary>Takes back the state decode_mcu_fast kept in locals (<see cref="JpegDecoder"/>'s fast MCU path).</summary>
    public void SetState(ulong buffer, int bitsLeft, int position)
    {
        _buffer = buffer;
        _bitsLeft = bitsLeft;
        _position = position;
    }

    /// <summary>libjpeg's insufficient_data: a bit past the marker was needed; the rest of the segment is left zero.</summary>
    public bool InsufficientData;
    /// <summary>End (exclusive) of the bytes Pillow has handed libjpeg.</summary>
    public int Limit;

    public JpegBitReader(ReadOnlySpan<byte> data, int position, int limit)
    {
        _data = data;
        _position = position;
        Limit = limit;
    }

    /// <summary>libjpeg's next_input_byte: the next byte not yet loaded (just after the marker once one was met).</summary>
    public readonly int Position => _position;
    public readonly int BitsLeft => _bitsLeft;
    /// <summary>The marker code that ended the data (libjpeg's unread_marker), 0 if none.</summary>
    public readonly int UnreadMarker => _marker;
    public readonly int DataLength => _data.Length;
    /// <summary>libjpeg's bytes_in_buffer.</summary>
    public readonly int BytesInBuffer => Limit - _position;

    private int NextByte()
    {
        if (_position >= Limit) throw new JpegSuspendedException();
        return _data[_position++];
    }

    /// <summary>jpeg_fill_bit_buffer: loads bytes until at least 57 bits are held or a marker is met; at a marker, zero
    /// bits stand in for the <paramref name="bitsNeeded"/> that are missing.</summary>
    public void Fill(int bitsNeeded)
    {
        if (_marker == 0)
        {
            while (_bitsLeft < MinGetBits)
            {
                int c = NextByte();
                if (c == 0xFF)
                {
                    // Fill bytes (FF FF ...) are skipped before deciding between a stuffed FF 00 and a marker.
                    do c = NextByte(); while (c == 0xFF);
                    if (c == 0) c = 0xFF;
                    else
                    {
                        _marker = c;
                        break;
                    }
                }
                _buffer = (_buffer << 8) | (uint)c;
                _bitsLeft += 8;
            }
            if (_marker == 0) return;
        }
        if (bitsNeeded > _bitsLeft)
        {
            InsufficientData = true;
            _buffer <<= MinGetBits - _bitsLeft;
            _bitsLeft = MinGetBits;
        }
    }

    public readonly int PeekBits(int n) => (int)(_buffer >> (_bitsLeft - n)) & ((1 << n) - 1);

    public void DropBits(int n) => _bitsLeft -= n;

    /// <summary>CHECK_BIT_BUFFER then GET_BITS.</summary>
    public int Bits(int n)
    {
        if (n == 0) return 0;
        if (_bitsLeft < n) Fill(n);
        _bitsLeft -= n;
        return (int)(_buffer >> _bitsLeft) & ((1 << n) - 1);
    }

    /// <summary>Reads an n-bit magnitude and extends its sign (F.2.2.1 HUFF_EXTEND).</summary>
    public int Receive(int n)
    {
        if (n == 0) return 0;
        int v = Bits(n);
        return v < 1 << (n - 1) ? v - (1 << n) + 1 : v;
    }

    /// <summary>process_restart: the bits left in the buffer are thrown away.</summary>
    public void DiscardBits() => _bitsLeft = 0;

    /// <summary>The marker search and resynchronization at a restart found or consumed a marker: continue after
    /// <paramref name="position"/> with <paramref name="unreadMarker"/> pending (0 if none).</summary>
    public void SetMarker(int position, int unreadMarker)
    {
        _position = position;
        _marker = unreadMarker;
    }
}

/// <summary>libjpeg suspended: it needs bytes beyond what Pillow has handed it (<see cref="JpegBitReader.Limit"/>).
/// Internal to the decoder, which retries with more data or, at the end of the file, refuses the image as Pillow does;
/// thrown at most once per 65536 bytes and at the end (a new instance each time: decoders run on several threads).</summary>
internal sealed class JpegSuspendedException : Exception;
