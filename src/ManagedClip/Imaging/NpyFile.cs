using System.Buffers.Binary;
using System.Text;

namespace ManagedClip.Imaging;

/// <summary>
/// NumPy <c>.npy</c> files of float32 in C order: the preprocessed-tensor format the CLI reads and writes.
/// Format: magic "\x93NUMPY", version byte pair, header length (2 bytes in v1, 4 in v2/v3), an ASCII dict
/// {'descr': '&lt;f4', 'fortran_order': False, 'shape': (…)}, then the raw data.
/// </summary>
public static class NpyFile
{
    static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Tensors larger than this are refused before any allocation (1 G floats = 4 GiB).</summary>
    const long MaxElements = 1L << 30;

    /// <summary>Reads a little-endian float32 C-order .npy file: its values and shape.</summary>
    /// <exception cref="ImageInputException">The file is missing or unreadable, is not a .npy file, holds another dtype or Fortran order, or is truncated.</exception>
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
            var shape = ParseHeader(path, Encoding.Latin1.GetString(header));
            long elements = ElementCount(path, shape);
            // The shape is checked against the file's length before anything is allocated for it.
            if (stream.Length - dataStart != elements * 4)
                throw new ImageInputException($"{path}: .npy data is {stream.Length - dataStart} bytes, shape ({string.Join(", ", shape)}) of float32 needs {elements * 4}");
            var data = new float[elements];
            stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < data.Length; i++) data[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(data[i])));
            RequireFinite(path, data, shape);
            return (data, shape);
        }
        catch (IOException e) { throw new ImageInputException($"{path}: cannot read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new ImageInputException($"{path}: permission denied", e); }
    }

    /// <summary>The product of the dimensions, refused above <see cref="MaxElements"/> without ever overflowing (65536⁴ wraps a long to 0).</summary>
    static long ElementCount(string path, int[] shape)
    {
        if (shape.Contains(0)) return 0;
        long elements = 1;
        foreach (int d in shape)
        {
            if (elements > MaxElements / d)
                throw new ImageInputException($"{path}: .npy shape ({string.Join(", ", shape)}) holds more than {MaxElements} values, too large");
            elements *= d;
        }
        return elements;
    }

    /// <summary>A preprocessed image is normalized pixels: a NaN or infinity there is a broken file, and would only surface as a NaN embedding.</summary>
    static void RequireFinite(string path, float[] data, int[] shape)
    {
        // Vectorized first; the scan below only names the first bad value. (IsFiniteAll is false for no values at all.)
        if (data.Length == 0 || System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(data)) return;
        int bad = Array.FindIndex(data, v => !float.IsFinite(v));
        var index = new long[shape.Length];
        long rest = bad;
        for (int axis = shape.Length - 1; axis >= 0; axis--) { index[axis] = rest % shape[axis]; rest /= shape[axis]; }
        throw new ImageInputException(
            $"{path}: .npy holds {data[bad].ToString(System.Globalization.CultureInfo.InvariantCulture)} at [{string.Join(", ", index)}]; a preprocessed image must be finite");
    }

    /// <summary>
    /// The header dict as NumPy reads it (<c>ast.literal_eval</c>, then a check of the keys): exactly the keys descr,
    /// fortran_order and shape, a duplicate key keeping its last value; descr little-endian float32; fortran_order False;
    /// shape a tuple of non-negative ints (<c>(2)</c> is an int in Python, not a tuple). Only the Python literals NumPy
    /// writes are understood (quoted strings without escapes, True/False/None, decimal ints, tuples); anything else is
    /// refused, which NumPy also does for every other literal in these three places.
    /// </summary>
    static int[] ParseHeader(string path, string header)
    {
        var dict = new NpyHeaderParser(path, header).Dict();
        if (dict.Count != 3 || !dict.ContainsKey("descr") || !dict.ContainsKey("fortran_order") || !dict.ContainsKey("shape"))
            throw new ImageInputException($"{path}: .npy header must have exactly the keys descr, fortran_order and shape, it has {string.Join(", ", dict.Keys.Order(StringComparer.Ordinal))}");
        if (dict["descr"] is not ("<f4" or "=f4" or "f4"))
            throw new ImageInputException($"{path}: .npy dtype must be little-endian float32 ('<f4'), header says {header.Trim()}");
        if (dict["fortran_order"] is not false)
            throw new ImageInputException($"{path}: .npy data must be in C order (fortran_order False)");
        if (dict["shape"] is not long[] dims)
            throw new ImageInputException($"{path}: .npy shape must be a tuple of ints, header says {header.Trim()}");
        return dims.Select(d => d is >= 0 and <= int.MaxValue ? (int)d : throw new ImageInputException($"{path}: bad .npy shape entry '{d}'")).ToArray();
    }

    /// <summary>Reads the Python literal subset of an .npy header: values are string, bool, null (None), long, or long[] (a tuple of ints).</summary>
    private sealed class NpyHeaderParser(string path, string text)
    {
        private int _at;

        public Dictionary<string, object?> Dict()
        {
            var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
            Expect('{');
            while (Peek() != '}')
            {
                string key = Value() as string ?? throw Error("a dict key that is not a string");
                Expect(':');
                dict[key] = Value(); // a repeated key keeps its last value, as in a Python dict literal
                if (Peek() == ',') _at++;
                else if (Peek() != '}') throw Error("a missing comma");
            }
            _at++;
            Peek();
            if (_at < text.Length) throw Error("text after the dict");
            return dict;
        }

        private object? Value()
        {
            char c = Peek();
            if (c is '\'' or '"')
            {
                int end = text.IndexOf(c, ++_at);
                if (end < 0 || text.AsSpan(_at, end - _at).ContainsAny('\\', '\n')) throw Error("an unterminated or escaped string");
                string s = text[_at..end];
                _at = end + 1;
                return s;
            }
            if (c == '(')
            {
                _at++;
                var items = new List<long>();
                bool comma = false;
                while (Peek() != ')')
                {
                    items.Add(Value() is long n ? n : throw Error("a tuple item that is not an int"));
                    comma = Peek() == ',';
                    if (comma) _at++;
                    else if (Peek() != ')') throw Error("a missing comma");
                }
                _at++;
                // (2) is the int 2; only (), (2,) and (2, 3) are tuples.
                return items.Count == 1 && !comma ? items[0] : items.ToArray();
            }
            if (c is '-' or '+' || char.IsAsciiDigit(c))
            {
                int start = _at++;
                while (_at < text.Length && char.IsAsciiDigit(text[_at])) _at++;
                return long.TryParse(text.AsSpan(start, _at - start), System.Globalization.NumberStyles.AllowLeadingSign,
                    System.Globalization.CultureInfo.InvariantCulture, out long v) ? v : throw Error("an int out of range");
            }
            foreach (var (word, value) in new (string, object?)[] { ("True", true), ("False", false), ("None", null) })
                if (text.AsSpan(_at).StartsWith(word, StringComparison.Ordinal)) { _at += word.Length; return value; }
            throw Error("an unsupported value");
        }

        /// <summary>The next character after blanks, or '\0' at the end.</summary>
        private char Peek()
        {
            while (_at < text.Length && text[_at] is ' ' or '\t' or '\n' or '\r') _at++;
            return _at < text.Length ? text[_at] : '\0';
        }

        private void Expect(char c)
        {
            if (Peek() != c) throw Error($"'{c}' missing");
            _at++;
        }

        private ImageInputException Error(string what) =>
            new($"{path}: cannot parse the .npy header ({what} at character {_at}): {text.Trim()}");
    }

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
