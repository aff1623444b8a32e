using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace ManagedClip.Tests.Support;

/// <summary>One tensor to write: its name, safetensors dtype ("F32", "F16", "BF16", "I64"), shape and a
/// producer of its little-endian bytes (called once, in file order, so huge checkpoints stream).</summary>
public sealed record SafetensorsEntry(string Name, string DType, int[] Shape, Func<byte[]> Bytes)
{
    public long ByteLength => ElementCount(Shape) * DTypeSize(DType);

    public static long ElementCount(int[] shape)
    {
        long n = 1;
        foreach (var s in shape)
        {
            n *= s;
        }

        return n;
    }

    public static int DTypeSize(string dtype) => dtype switch
    {
        "F32" or "I32" => 4,
        "F16" or "BF16" => 2,
        "I64" or "F64" => 8,
        _ => throw new ArgumentException($"unsupported dtype {dtype}", nameof(dtype)),
    };
}

/// <summary>
/// Minimal safetensors writer in the canonical layout shared with tests/fixtures/clip_reference.py
/// (write_safetensors), so both produce byte-identical files: header = compact JSON with
/// <c>"__metadata__":{"format":"pt"}</c> first, then the tensors sorted by name (ordinal), offsets
/// contiguous in that order; header padded with spaces to a multiple of 8 bytes; 8-byte LE length prefix.
/// </summary>
public static class SafetensorsWriter
{
    public static string BuildHeader(IReadOnlyList<SafetensorsEntry> sortedEntries)
    {
        var sb = new StringBuilder();
        sb.Append("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        foreach (var e in sortedEntries)
        {
            long end = offset + e.ByteLength;
            sb.Append(",\"").Append(e.Name).Append("\":{\"dtype\":\"").Append(e.DType).Append("\",\"shape\":[")
              .Append(string.Join(",", e.Shape.Select(s => s.ToString(CultureInfo.InvariantCulture))))
              .Append("],\"data_offsets\":[")
              .Append(offset.ToString(CultureInfo.InvariantCulture)).Append(',')
              .Append(end.ToString(CultureInfo.InvariantCulture)).Append("]}");
            offset = end;
        }

        sb.Append('}');
        int pad = (8 - (Encoding.UTF8.GetByteCount(sb.ToString()) % 8)) % 8;
        sb.Append(' ', pad);
        return sb.ToString();
    }

    public static void Write(Stream output, IEnumerable<SafetensorsEntry> entries)
    {
        var sorted = entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            if (sorted[i].Name == sorted[i - 1].Name)
            {
                throw new ArgumentException($"duplicate tensor name {sorted[i].Name}", nameof(entries));
            }
        }

        byte[] header = Encoding.UTF8.GetBytes(BuildHeader(sorted));
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        output.Write(len);
        output.Write(header);
        foreach (var e in sorted)
        {
            byte[] data = e.Bytes();
            if (data.LongLength != e.ByteLength)
            {
                throw new InvalidOperationException($"{e.Name}: produced {data.LongLength} bytes, expected {e.ByteLength}");
            }

            output.Write(data);
        }
    }

    public static void Write(string path, IEnumerable<SafetensorsEntry> entries)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(fs, entries);
    }
}
