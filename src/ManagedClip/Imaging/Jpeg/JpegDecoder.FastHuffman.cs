using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ManagedClip.Imaging.Jpeg;

internal static partial class JpegDecoder
{
    /// <summary>
    /// jdhuff.c decode_mcu_fast: one MCU of a sequential scan decoded with the bit buffer, its bit count and the read
    /// position in locals (libjpeg's BITREAD_LOAD_STATE), refilled six bytes at a time whenever 16 bits or fewer are
    /// left (FILL_BIT_BUFFER_FAST, before each code and before each magnitude) and never suspending: the caller has
    /// checked that 512 bytes per block are in Pillow's buffer (<see cref="FastMcuBytesPerBlock"/>), more than an MCU can
    /// read. Where a refill meets a marker, zero bytes are loaded, and this returns false without taking back the bit
    /// state or the DC predictions: libjpeg then decodes the MCU again the slow way, over the coefficients written here.
    /// Reads and refills happen exactly where libjpeg's do, so the state left is libjpeg's and so are the verdicts on
    /// truncated files that depend on it.
    /// </summary>
    private static bool DecodeMcuFast(ref JpegBitReader bits, Component[] comps, JpegHuffmanTable?[] dcTables, JpegHuffmanTable?[] acTables,
        int mx, int my)
    {
        ref byte data = ref MemoryMarshal.GetReference(bits.Data);
        ulong buffer = bits.Buffer;
        int bitsLeft = bits.BitsLeft, position = bits.Position;
        bool hitMarker = false;
        bool interleaved = comps.Length > 1;
        for (int ci = 0; ci < comps.Length; ci++)
        {
            var c = comps[ci];
            ref ushort dcLookahead = ref MemoryMarshal.GetArrayDataReference(dcTables[ci]!.LookaheadTable);
            var ac = acTables[ci]!;
            ref ushort acLookahead = ref MemoryMarshal.GetArrayDataReference(ac.LookaheadTable);
            ref int fastAc = ref MemoryMarshal.GetArrayDataReference(ac.FastAcTable);
            int blocksHigh = interleaved ? c.V : 1, blocksWide = interleaved ? c.H : 1;
            for (int by = 0; by < blocksHigh; by++)
                for (int bx = 0; bx < blocksWide; bx++)
                {
                    int blockIndex = (my * blocksHigh + by) * c.BlocksWide + mx * blocksWide + bx;
                    ref short block = ref MemoryMarshal.GetReference(c.Coefficients.AsSpan(blockIndex * 64, 64));

                    // DC: HUFF_DECODE_FAST, then the magnitude after its own refill.
                    if (bitsLeft <= 16)
                    {
                        ulong next = NextSixBytes(ref data, position);
                        if (HasNoFF(next)) { buffer = (buffer << 48) | next; position += 6; }
                        else (buffer, position, hitMarker) = FillFastBytewise(ref data, buffer, position, hitMarker);
                        bitsLeft += 48;
                    }
                    int entry = Unsafe.Add(ref dcLookahead, ((int)(buffer >> (bitsLeft - 8)) & 0xFF) << 1);
                    if (entry != 0 && entry >> 8 <= 8) bitsLeft -= entry >> 8;
                    else
                    {
                        entry = dcTables[ci]!.DecodeLongCode(buffer, bitsLeft);
                        bitsLeft -= entry >> 8;
                    }
                    int size = entry & 15, diff = 0; // a DC table's symbols are categories 0..15
                    if (size != 0)
                    {
                        if (bitsLeft <= 16)
                        {
                            ulong next = NextSixBytes(ref data, position);
                            if (HasNoFF(next)) { buffer = (buffer << 48) | next; position += 6; }
                            else (buffer, position, hitMarker) = FillFastBytewise(ref data, buffer, position, hitMarker);
                            bitsLeft += 48;
                        }
                        bitsLeft -= size;
                        diff = Extend((int)(buffer >> bitsLeft) & ((1 << size) - 1), size);
                    }
                    c.DcPrediction = unchecked(c.DcPrediction + diff); // sequential scans let the prediction wrap (jdhuff.c)
                    block = (short)c.DcPrediction;

                    for (int k = 1; k < 64; k++)
                    {
                        if (bitsLeft <= 16)
                        {
                            ulong next = NextSixBytes(ref data, position);
                            if (HasNoFF(next)) { buffer = (buffer << 48) | next; position += 6; }
                            else (buffer, position, hitMarker) = FillFastBytewise(ref data, buffer, position, hitMarker);
                            bitsLeft += 48;
                        }
                        // A code and its magnitude in one 11-bit lookup, when libjpeg would not refill between them:
                        // more than 16 bits left after the code.
                        int fast = Unsafe.Add(ref fastAc, (int)(buffer >> (bitsLeft - JpegHuffmanTable.FastAcBits)) & ((1 << JpegHuffmanTable.FastAcBits) - 1));
                        if (fast != 0 && bitsLeft - ((fast >> 16) & 15) > 16)
                        {
                            bitsLeft -= fast & 0xFF;
                            int zeros = (fast >> 8) & 15;
                            if ((fast & JpegHuffmanTable.NoMagnitude) != 0)
                            {
                                if (zeros != 15) break; // end of block
                                k += 15;
                                continue;
                            }
                            k += zeros;
                            Unsafe.Add(ref block, NaturalIndex(k)) = (short)(fast >> 20);
                            continue;
                        }
                        int rs = Unsafe.Add(ref acLookahead, ((int)(buffer >> (bitsLeft - 8)) & 0xFF) << 1);
                        if (rs != 0 && rs >> 8 <= 8) bitsLeft -= rs >> 8;
                        else
                        {
                            rs = ac.DecodeLongCode(buffer, bitsLeft);
                            bitsLeft -= rs >> 8;
                        }
                        int run = (rs >> 4) & 15;
                        size = rs & 15;
                        if (size != 0)
                        {
                            k += run;
                            if (bitsLeft <= 16)
                            {
                                ulong next = NextSixBytes(ref data, position);
                                if (HasNoFF(next)) { buffer = (buffer << 48) | next; position += 6; }
                                else (buffer, position, hitMarker) = FillFastBytewise(ref data, buffer, position, hitMarker);
                                bitsLeft += 48;
                            }
                            bitsLeft -= size;
                            Unsafe.Add(ref block, NaturalIndex(k)) = (short)Extend((int)(buffer >> bitsLeft) & ((1 << size) - 1), size);
                        }
                        else
                        {
                            if (run != 15) break;
                            k += 15;
                        }
                    }
                }
        }
        if (hitMarker) return false;
        bits.SetState(buffer, bitsLeft, position);
        return true;
    }

    /// <summary>Bytes per block of the MCU that must be in Pillow's buffer for <see cref="DecodeMcuFast"/> (libjpeg's
    /// BUFSIZE), which is what keeps its unchecked reads inside the file: a block consumes at most 64 x 31 + 1 bits (a
    /// code of up to 16 bits and up to 15 magnitude bits per coefficient, even with corrupt tables; a bad code, 17 bits,
    /// ends the block), the buffer never holds more than 64 bits beyond what was consumed, and each 48 bits loaded cost
    /// at most 12 bytes (all stuffed 0xFF 0x00), so the last 8-byte read of an n-block MCU ends within 496 n + 12 bytes
    /// of its start.</summary>
    private const int FastMcuBytesPerBlock = 512;

    /// <summary>NaturalOrder[k] (k &lt;= 78: a run may reach 63 + 15) read from its constant address, with no register
    /// held for the table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NaturalIndex(int k) => Unsafe.Add(ref MemoryMarshal.GetReference(NaturalOrder), k);

    /// <summary>HUFF_EXTEND: an n-bit magnitude to its signed value (F.2.2.1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Extend(int v, int n) => v < 1 << (n - 1) ? v - (1 << n) + 1 : v;

    // FILL_BIT_BUFFER_FAST's six GET_BYTEs are written out where the decoder finds 16 bits or fewer left: six bytes
    // with no 0xFF among them, the usual case, are loaded at once, otherwise they go byte by byte (FillFastBytewise).
    // The bit state is passed by value, never by ref, so that the JIT keeps the decoder's locals in registers.

    /// <summary>The six bytes at <paramref name="position"/>, big-endian, in the low 48 bits (the caller's 512-byte
    /// margin covers the 8-byte read).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong NextSixBytes(ref byte data, int position) =>
        BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref data, position))) >> 16;

    /// <summary>No byte of the 48-bit <paramref name="sixBytes"/> is 0xFF: the has-zero-byte test on its complement.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool HasNoFF(ulong sixBytes)
    {
        ulong inverted = ~sixBytes & 0xFFFF_FFFF_FFFF;
        return ((inverted - 0x0101_0101_0101) & ~inverted & 0x8080_8080_8080) == 0;
    }

    /// <summary>GET_BYTE six times: a 0xFF 0x00 pair loads 0xFF; 0xFF followed by anything else is a marker: a zero
    /// byte is loaded instead and the position stays on the 0xFF (so the following GET_BYTEs meet it again).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (ulong Buffer, int Position, bool HitMarker) FillFastBytewise(ref byte data, ulong buffer, int position, bool hitMarker)
    {
        for (int i = 0; i < 6; i++)
        {
            uint c0 = Unsafe.Add(ref data, position++);
            buffer = (buffer << 8) | c0;
            if (c0 == 0xFF)
            {
                uint c1 = Unsafe.Add(ref data, position++);
                if (c1 != 0)
                {
                    hitMarker = true;
                    position -= 2;
                    buffer &= ~0xFFUL;
                }
            }
        }
        return (buffer, position, hitMarker);
    }
}
