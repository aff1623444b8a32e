using System.Buffers.Binary;

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
    // For each 11-bit prefix that holds a whole AC code (of at most LookaheadBits) with a nonzero size and its magnitude
    // bits: (value << 16) | (run << 8) | (code length + size); 0 otherwise (stb_image's fast_ac). 11 bits rather than 9
    // because a quality-90 photo's codes and magnitudes often take 10 or 11.
    private const int FastAcBits = 11;
    private readonly int[] _fastAc = new int[1 << FastAcBits];

    /// <param name="counts">the 16 counts of codes of length 1..16</param>
    /// <param name="symbols">the symbols in code order</param>
    /// <param name="isDc">DC tables may only hold categories 0..15, as libjpeg checks</param>
    /// <param name="describe">names the file for error messages</param>
    public JpegHuffmanTable(ReadOnlySpan<byte> counts, ReadOnlySpan<byte> symbols, bool isDc, string describe)
    {
        _symbols = symbols.ToArray();
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
            foreach (byte s in _symbols)
                if (s > 15) throw new ImageInputException($"{describe}: bad Huffman table (DC category {s} > 15)");
    }

    private void BuildFastAc()
    {
        for (int peek = 0; peek < 1 << FastAcBits; peek++)
        {
            int entry = _lookahead[peek >> (FastAcBits - LookaheadBits)];
            int length = entry >> 8, run = (entry >> 4) & 15, size = entry & 15;
            if (entry == 0 || size == 0 || length + size > FastAcBits) continue;
            int magnitude = (peek >> (FastAcBits - length - size)) & ((1 << size) - 1);
            int value = magnitude < 1 << (size - 1) ? magnitude - (1 << size) + 1 : magnitude; // F.2.2.1 EXTEND
            _fastAc[peek] = (value << 16) | (run << 8) | (length + size);
        }
    }

    /// <summary>The fast AC entry for the next bits (the top bits of <paramref name="buffer"/>): (value &lt;&lt; 16) |
    /// (run &lt;&lt; 8) | bits to consume, or 0 when the code and its magnitude bits do not fit in
    /// 11 bits or the symbol is EOB or ZRL.</summary>
    public int FastAc(ulong buffer) => _fastAc[(int)(buffer >> (64 - FastAcBits))];

    /// <summary>The code at the top of <paramref name="buffer"/> (at least 16 valid bits): (code length &lt;&lt; 8) |
    /// symbol. A bit pattern that is no code (only possible in corrupt data) gives symbol 0 with 16 bits consumed, as
    /// libjpeg does after its JWRN_HUFF_BAD_CODE warning.</summary>
    public int LookupEntry(ulong buffer)
    {
        int entry = _lookahead[(int)(buffer >> (64 - LookaheadBits))];
        return entry != 0 ? entry : LookupLongCode(buffer);
    }

    private int LookupLongCode(ulong buffer)
    {
        int length = LookaheadBits + 1;
        int code = (int)(buffer >> (64 - length));
        while (code > _maxCode[length])
        {
            length++;
            if (length > 16) return 16 << 8;
            code = (int)(buffer >> (64 - length));
        }
        return (length << 8) | _symbols[(_valueOffset[length] + code) & 0xFF];
    }

    /// <summary>Decodes one symbol (see <see cref="LookupEntry"/>).</summary>
    public int Decode(ref JpegBitReader bits)
    {
        int entry = LookupEntry((ulong)(uint)bits.Peek(16) << 48);
        bits.Skip(entry >> 8);
        return entry & 0xFF;
    }
}

/// <summary>
/// Reads entropy-coded bits (F.2.2.5): a 0xFF data byte is followed by a stuffed 0x00; any other byte after 0xFF is a
/// marker, where the data stops. Past the data, zero bits are supplied, as libjpeg does for a segment that ends early
/// (its "Corrupt JPEG data: premature end of data segment" warning).
/// </summary>
internal ref struct JpegBitReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;
    private ulong _buffer; // valid bits are the top _count bits
    private int _count;
    private bool _atMarker;

    public JpegBitReader(ReadOnlySpan<byte> data, int position)
    {
        _data = data;
        _position = position;
    }

    /// <summary>Where the next unread byte of entropy data is (at a marker once the data has ended).</summary>
    public readonly int Position => _position;

    private void Fill()
    {
        // The hot path: 8 bytes ahead and none of them 0xFF (no stuffing, no marker): take the whole bytes that fit.
        if (!_atMarker && _position <= _data.Length - 8)
        {
            ulong word = BinaryPrimitives.ReadUInt64BigEndian(_data[_position..]);
            ulong inverted = ~word;
            if (((inverted - 0x0101010101010101UL) & ~inverted & 0x8080808080808080UL) == 0)
            {
                int bytes = (64 - _count) >> 3;
                if (bytes < 8) word &= ~(ulong.MaxValue >> (8 * bytes));
                _buffer |= word >> _count;
                _count += 8 * bytes;
                _position += bytes;
                return;
            }
        }
        while (_count <= 56)
        {
            int b = 0;
            if (!_atMarker && _position < _data.Length)
            {
                b = _data[_position];
                if (b == 0xFF)
                {
                    // libjpeg skips fill bytes (0xFF 0xFF ...) before deciding between a stuffed 0xFF and a marker.
                    int next = _position + 1;
                    while (next < _data.Length && _data[next] == 0xFF) next++;
                    if (next < _data.Length && _data[next] == 0x00) _position = next + 1;
                    else { _atMarker = true; b = 0; }
                }
                else _position++;
            }
            _buffer |= (ulong)(uint)b << (56 - _count);
            _count += 8;
        }
    }

    /// <summary>The bit buffer for a decoding loop that keeps it in locals: its bits (valid ones at the top) and their
    /// count. Hand it back with <see cref="Refill"/> or <see cref="Put"/>.</summary>
    public readonly (ulong Buffer, int Count) Take() => (_buffer, _count);

    /// <summary>Tops up a buffer taken with <see cref="Take"/> to at least 57 bits, as <see cref="Peek"/> does (zeros
    /// past the data).</summary>
    public (ulong Buffer, int Count) Refill(ulong buffer, int count)
    {
        _buffer = buffer;
        _count = count;
        Fill();
        return (_buffer, _count);
    }

    /// <summary>Hands back a buffer taken with <see cref="Take"/> after its bits were consumed.</summary>
    public void Put(ulong buffer, int count)
    {
        _buffer = buffer;
        _count = count;
    }

    public int Peek(int n)
    {
        if (_count < n) Fill();
        return (int)(_buffer >> (64 - n));
    }

    public void Skip(int n)
    {
        _buffer <<= n;
        _count -= n;
    }

    public int Bits(int n)
    {
        if (n == 0) return 0;
        int v = Peek(n);
        Skip(n);
        return v;
    }

    /// <summary>Reads an n-bit magnitude and extends its sign (F.2.2.1 EXTEND).</summary>
    public int Receive(int n)
    {
        if (n == 0) return 0;
        int v = Bits(n);
        return v < 1 << (n - 1) ? v - (1 << n) + 1 : v;
    }

    /// <summary>At a restart: drops the bits left in the current byte and any fill, and clears the marker state so the
    /// caller can read the RSTn marker at <see cref="Position"/>.</summary>
    public void Reset(int position)
    {
        _position = position;
        _buffer = 0;
        _count = 0;
        _atMarker = false;
    }
}
