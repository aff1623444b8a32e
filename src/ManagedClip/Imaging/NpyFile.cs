using System.Buffers.Binary;
using System.Text;

namespace ManagedClip.Imaging;

/// <summary>
/// Minimal NumPy <c>.npy</c> reader/writer for float32 little-endian C-order arrays (format versions 1.0–3.0).
/// Anything else (other dtypes, big-endian, Fortran order, object arrays, truncated data) is an
/// <see cref="ImageInputException"/> naming the file.
/// </summary>
public static class NpyReader
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static (float[] data, int[] shape) Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageInputException($"cannot read .npy file '{path}': {ex.Message}", ex);
        }
        return Parse(bytes, path);
    }

    public static (float[] data, int[] shape) Parse(ReadOnlySpan<byte> bytes, string name)
    {
        string where = $".npy file '{name}'";
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
            throw new ImageInputException($"{where} does not start with the NumPy magic");
        int major = bytes[6];
        int headerLen, headerStart;
        if (major == 1) { headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]); headerStart = 10; }
        else if (major is 2 or 3)
        {
            if (bytes.Length < 12) throw new ImageInputException($"{where} is truncated");
            uint hl = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
            if (hl > int.MaxValue - 12) throw new ImageInputException($"{where} has an absurd header length");
            headerLen = (int)hl; headerStart = 12;
        }
        else throw new ImageInputException($"{where} has unsupported format version {major}.{bytes[7]}");
        if (bytes.Length < headerStart + headerLen) throw new ImageInputException($"{where} is truncated inside its header");
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(bytes.Slice(headerStart, headerLen));

        string descr = DictValue(header, "descr", where).Trim().Trim('\'', '"');
        if (descr is not ("<f4" or "=f4" or "f4"))
            throw new ImageInputException($"{where} has dtype '{descr}', expected little-endian float32 '<f4'");
        string fortran = DictValue(header, "fortran_order", where).Trim();
        if (fortran != "False") throw new ImageInputException($"{where} is in Fortran order; only C order is supported");
        string shapeText = DictValue(header, "shape", where).Trim();
        if (!shapeText.StartsWith('(') || !shapeText.EndsWith(')')) throw new ImageInputException($"{where} has a malformed shape '{shapeText}'");
        var dims = new List<int>();
        long count = 1;
        foreach (string part in shapeText[1..^1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, out int d) || d < 0) throw new ImageInputException($"{where} has a malformed shape '{shapeText}'");
            dims.Add(d);
            count *= d;
            if (count > int.MaxValue / 4) throw new ImageInputException($"{where} is too large ({shapeText})");
        }
        int dataStart = headerStart + headerLen;
        long expected = count * 4;
        if (bytes.Length - dataStart != expected)
            throw new ImageInputException($"{where} holds {bytes.Length - dataStart} data bytes, shape {shapeText} needs {expected}");
        var data = new float[count];
        ReadOnlySpan<byte> raw = bytes[dataStart..];
        for (int i = 0; i < data.Length; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(raw[(4 * i)..]);
        return (data, dims.ToArray());
    }

    /// <summary>Writes a version 1.0 file, float32 little-endian, C order.</summary>
    public static void Write(string path, ReadOnlySpan<float> data, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException("negative dimension", nameof(shape));
            count *= d;
        }
        if (count != data.Length) throw new ArgumentException($"shape holds {count} values, data has {data.Length}", nameof(data));
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {shapeText}, }}";
        int total = 10 + dict.Length + 1;
        int pad = (64 - total % 64) % 64;
        string header = dict + new string(' ', pad) + "\n";
        var buf = new byte[10 + header.Length + 4L * data.Length];
        Magic.CopyTo(buf);
        buf[6] = 1; buf[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(8), (ushort)header.Length);
        Encoding.Latin1.GetBytes(header, buf.AsSpan(10));
        Span<byte> dst = buf.AsSpan(10 + header.Length);
        for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(dst[(4 * i)..], data[i]);
        try { File.WriteAllBytes(path, buf); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ImageInputException($"cannot write .npy file '{path}': {ex.Message}", ex);
        }
    }

    /// <summary>The raw text of one value of the header's Python dict literal.</summary>
    private static string DictValue(string header, string key, string where)
    {
        int k = header.IndexOf($"'{key}'", StringComparison.Ordinal);
        if (k < 0) k = header.IndexOf($"\"{key}\"", StringComparison.Ordinal);
        if (k < 0) throw new ImageInputException($"{where} header lacks '{key}'");
        int colon = header.IndexOf(':', k + key.Length + 2);
        if (colon < 0) throw new ImageInputException($"{where} header is malformed near '{key}'");
        int i = colon + 1, depth = 0;
        var sb = new StringBuilder();
        for (; i < header.Length; i++)
        {
            char c = header[i];
            if (c == '(') depth++;
            else if (c == ')') depth--;
            else if ((c == ',' || c == '}') && depth == 0) break;
            sb.Append(c);
        }
        return sb.ToString();
    }
}
