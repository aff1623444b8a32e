using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace ManagedClip.Imaging;

/// <summary>
/// NumPy <c>.npy</c> files of float32 in C order: the preprocessed-tensor format the CLI reads and writes.
/// Format: magic "\x93NUMPY", version byte pair, header length (2 bytes in v1, 4 in v2/v3), an ASCII dict
/// {'descr': '&lt;f4', 'fortran_order': False, 'shape': (…)}, then the raw data.
/// </summary>
public static partial class NpyFile
{
    static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Tensors larger than this are refused before any allocation (1 G floats = 4 GiB).</summary>
    const long MaxElements = 1L << 30;

    public static (float[] Data, int[] Shape) Read(string path)
    {
        byte[] prefix;
        try
        {
            using var stream = File.OpenRead(path);
            prefix = new byte[Math.Min(stream.Length, 12)];
            stream.ReadExactly(prefix);
            if (prefix.Length < 10 || !prefix.AsSpan(0, 6).SequenceEqual(Magic))
                throw new ImageInputException($"{path}: not a .npy file (bad magic)");
            int major = prefix[6];
            int headerLengthSize = major == 1 ? 2 : major is 2 or 3 ? 4 : throw new ImageInputException($"{path}: unsupported .npy version {major}");
            if (prefix.Length < 8 + headerLengthSize) throw new ImageInputException($"{path}: truncated .npy header");
            long headerLength = headerLengthSize == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(prefix.AsSpan(8)) : BinaryPrimitives.ReadUInt32LittleEndian(prefix.AsSpan(8));
            long dataStart = 8 + headerLengthSize + headerLength;
            if (headerLength > 1 << 20 || dataStart > stream.Length) throw new ImageInputException($"{path}: truncated or corrupt .npy header (header length {headerLength})");
            var header = new byte[headerLength];
            stream.Position = 8 + headerLengthSize;
            stream.ReadExactly(header);
            var shape = ParseHeader(path, Encoding.ASCII.GetString(header));
            long elements = shape.Aggregate(1L, (n, d) => n * d);
            if (elements > MaxElements) throw new ImageInputException($"{path}: .npy tensor of {elements} values is too large");
            if (stream.Length - dataStart != elements * 4)
                throw new ImageInputException($"{path}: .npy data is {stream.Length - dataStart} bytes, shape ({string.Join(", ", shape)}) of float32 needs {elements * 4}");
            var data = new float[elements];
            stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < data.Length; i++) data[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(data[i])));
            return (data, shape);
        }
        catch (IOException e) { throw new ImageInputException($"{path}: cannot read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new ImageInputException($"{path}: permission denied", e); }
    }

    static int[] ParseHeader(string path, string header)
    {
        var descr = DescrPattern().Match(header);
        if (!descr.Success || descr.Groups[1].Value is not ("<f4" or "=f4" or "f4"))
            throw new ImageInputException($"{path}: .npy dtype must be little-endian float32 ('<f4'), header says {header.Trim()}");
        if (!FortranPattern().IsMatch(header))
            throw new ImageInputException($"{path}: .npy data must be in C order (fortran_order False)");
        var shape = ShapePattern().Match(header);
        if (!shape.Success) throw new ImageInputException($"{path}: .npy header has no shape");
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return dims.Select(d => int.TryParse(d, out int v) && v >= 0 ? v : throw new ImageInputException($"{path}: bad .npy shape entry '{d}'")).ToArray();
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")] private static partial Regex DescrPattern();
    [GeneratedRegex(@"'fortran_order'\s*:\s*False")] private static partial Regex FortranPattern();
    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")] private static partial Regex ShapePattern();

    /// <summary>Writes float32 C-order data with the given shape (format version 1.0, header padded to 64 bytes as NumPy does).</summary>
    public static void Write(string path, ReadOnlySpan<float> data, int[] shape)
    {
        long elements = shape.Aggregate(1L, (n, d) => n * d);
        if (elements != data.Length) throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds {elements} values, data has {data.Length}");
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {shapeText}, }}";
        int total = 10 + dict.Length + 1;
        int padded = (total + 63) / 64 * 64;
        string header = dict + new string(' ', padded - total) + "\n";
        using var stream = File.Create(path);
        stream.Write(Magic);
        stream.Write([1, 0]);
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)header.Length);
        stream.Write(length);
        stream.Write(Encoding.ASCII.GetBytes(header));
        if (BitConverter.IsLittleEndian) stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
        else
        {
            Span<byte> value = stackalloc byte[4];
            foreach (float v in data) { BinaryPrimitives.WriteSingleLittleEndian(value, v); stream.Write(value); }
        }
    }
}
