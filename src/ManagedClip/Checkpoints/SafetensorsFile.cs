using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace ManagedClip.Checkpoints;

/// <summary>Element types a safetensors header may name. Floating types are up-cast to fp32 for compute; integer tensors are tolerated and ignored.</summary>
public enum TensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool }

/// <summary>One tensor's entry in a safetensors header. <see cref="DataOffset"/> is absolute within the file.</summary>
public sealed record TensorEntry(string Name, TensorDType DType, int[] Shape, long DataOffset, long ByteLength, string FilePath)
{
    public long ElementCount => Shape.Aggregate(1L, (count, dim) => count * dim);
    public bool IsFloatingPoint => DType is TensorDType.F64 or TensorDType.F32 or TensorDType.F16 or TensorDType.BF16;
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A memory-mapped safetensors file (format: 8-byte little-endian header length n, n bytes of UTF-8 JSON
/// mapping names to {dtype, shape, data_offsets}, then the raw little-endian data). The header is validated
/// completely before any tensor is read; tensor bytes are read straight from the mapping, never copied
/// into the managed heap as a whole file.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers of real checkpoints are a few hundred KiB; anything past this is a corrupt or hostile file.</summary>
    public const long DefaultMaxHeaderBytes = 100L * 1024 * 1024;

    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    readonly byte* _base;
    readonly SafeFileHandle _handle;
    bool _disposed;

    public string Path { get; }
    public long Length { get; }
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafetensorsFile(string path, long length, SafeFileHandle handle, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePointer,
        Dictionary<string, TensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path; Length = length; _handle = handle; _map = map; _view = view; _base = basePointer;
        Tensors = tensors; Metadata = metadata;
    }

    public static SafetensorsFile Open(string path, long maxHeaderBytes = DefaultMaxHeaderBytes)
    {
        FileInfo info;
        try { info = new FileInfo(path); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        { throw new CheckpointException($"{path}: not a valid file path ({e.Message})", e); }
        if (!info.Exists) throw new CheckpointException($"{path}: file not found");

        SafeFileHandle? handle = null;
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* basePointer = null;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
            // The length of the file itself, not FileInfo's: through a symbolic link (the Hugging Face cache links every
            // snapshot file into its blobs) FileInfo.Length is the link's.
            long length = RandomAccess.GetLength(handle);
            if (length < 8) throw new CheckpointException($"{path}: not a safetensors file: {length} bytes is too short for the 8-byte header length");
            map = MemoryMappedFile.CreateFromFile(handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
            basePointer += view.PointerOffset;
            var (tensors, metadata) = ParseHeader(path, new ReadOnlySpan<byte>(basePointer, (int)Math.Min(length, int.MaxValue)), length, maxHeaderBytes);
            return new SafetensorsFile(path, length, handle, map, view, basePointer, tensors, metadata);
        }
        catch (IOException e)
        {
            Release(handle, view, map, basePointer);
            throw new CheckpointException($"{path}: cannot read the file ({e.Message})", e);
        }
        catch (UnauthorizedAccessException e)
        {
            Release(handle, view, map, basePointer);
            throw new CheckpointException($"{path}: permission denied ({e.Message})", e);
        }
        catch
        {
            Release(handle, view, map, basePointer);
            throw;
        }
    }

    static void Release(SafeFileHandle? handle, MemoryMappedViewAccessor? view, MemoryMappedFile? map, byte* basePointer)
    {
        if (view is not null && basePointer != null) view.SafeMemoryMappedViewHandle.ReleasePointer();
        view?.Dispose();
        map?.Dispose();
        handle?.Dispose();
    }

    /// <summary>Validates the header: length in range, well-formed JSON, known dtypes, sizes matching shapes, ranges inside the data section and disjoint.</summary>
    internal static (Dictionary<string, TensorEntry>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> file, long fileLength, long maxHeaderBytes)
    {
        ulong headerLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(file[..8]);
        if (headerLength == 0) throw new CheckpointException($"{path}: corrupt safetensors header: header length is 0");
        if (headerLength > (ulong)maxHeaderBytes)
            throw new CheckpointException($"{path}: corrupt safetensors header: header length {headerLength} bytes exceeds the limit of {maxHeaderBytes} bytes");
        if (headerLength > (ulong)(fileLength - 8))
            throw new CheckpointException($"{path}: truncated or corrupt safetensors file: header length {headerLength} bytes runs past the end of the {fileLength}-byte file");

        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var headerBytes = file.Slice(8, (int)headerLength);
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
            throw new CheckpointException($"{path}: corrupt safetensors header: the JSON header is not valid UTF-8");
        try
        {
            using var document = JsonDocument.Parse(headerBytes.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{path}: corrupt safetensors header: the JSON header is not an object");
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (tensors.ContainsKey(property.Name) || (property.Name == "__metadata__" && metadata.Count > 0))
                    throw new CheckpointException($"{path}: corrupt safetensors header: tensor '{property.Name}' is listed twice");
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw new CheckpointException($"{path}: corrupt safetensors header: __metadata__ is not an object");
                    foreach (var item in property.Value.EnumerateObject())
                        metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()! : item.Value.GetRawText();
                    continue;
                }
                tensors.Add(property.Name, ParseEntry(path, property.Name, property.Value, dataStart, dataLength));
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: corrupt safetensors header: the JSON header is not well formed ({e.Message})", e);
        }

        // Ranges must not overlap: two tensors sharing bytes is either corruption or an attempt to alias.
        TensorEntry? previous = null;
        foreach (var entry in tensors.Values.OrderBy(t => t.DataOffset).ThenBy(t => t.ByteLength))
        {
            if (previous is not null && entry.DataOffset < previous.DataOffset + previous.ByteLength)
                throw new CheckpointException($"{path}: corrupt safetensors header: tensors '{previous.Name}' and '{entry.Name}' have overlapping data ranges");
            if (entry.ByteLength > 0) previous = entry;
        }
        return (tensors, metadata);
    }

    static TensorEntry ParseEntry(string path, string name, JsonElement element, long dataStart, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (element.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{where}: header entry is not an object");
        if (!element.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointException($"{where}: header entry has no dtype");
        string dtypeText = dtypeElement.GetString()!;
        TensorDType dtype = dtypeText switch
        {
            "F64" => TensorDType.F64, "F32" => TensorDType.F32, "F16" => TensorDType.F16, "BF16" => TensorDType.BF16,
            "I64" => TensorDType.I64, "I32" => TensorDType.I32, "I16" => TensorDType.I16, "I8" => TensorDType.I8,
            "U8" => TensorDType.U8, "BOOL" => TensorDType.Bool,
            _ => throw new CheckpointException($"{where}: unknown dtype '{dtypeText}' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"),
        };
        if (!element.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointException($"{where}: header entry has no shape");
        var shape = new int[shapeElement.GetArrayLength()];
        if (shape.Length > 8) throw new CheckpointException($"{where}: shape has {shape.Length} dimensions (at most 8 supported)");
        long elements = 1;
        int i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int size) || size < 0)
                throw new CheckpointException($"{where}: shape entry {dim.GetRawText()} is not a non-negative 32-bit integer");
            shape[i++] = size;
            elements = size == 0 ? 0 : (elements > long.MaxValue / size ? throw new CheckpointException($"{where}: shape {Format(shape)} is absurdly large") : elements * size);
        }
        if (!element.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array || offsetsElement.GetArrayLength() != 2)
            throw new CheckpointException($"{where}: header entry has no data_offsets [begin, end]");
        if (!offsetsElement[0].TryGetInt64(out long begin) || !offsetsElement[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new CheckpointException($"{where}: data_offsets {offsetsElement.GetRawText()} are not an ordered pair of non-negative integers");
        if (end > dataLength)
            throw new CheckpointException($"{where}: data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes; file truncated?)");
        long elementSize = SizeOf(dtype);
        if (elements > long.MaxValue / elementSize || elements * elementSize != end - begin)
            throw new CheckpointException($"{where}: {end - begin} bytes of data do not match shape {Format(shape)} of {dtypeText} ({elements} × {elementSize} bytes)");
        return new TensorEntry(name, dtype, shape, dataStart + begin, end - begin, path);
    }

    static string Format(int[] shape) => "[" + string.Join(", ", shape) + "]";

    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        TensorDType.F64 or TensorDType.I64 => 8,
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 or TensorDType.I16 => 2,
        _ => 1,
    };

    /// <summary>The tensor's raw little-endian bytes, straight from the mapping (valid until this file is disposed).</summary>
    public ReadOnlySpan<byte> GetBytes(TensorEntry entry)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!ReferenceEquals(Tensors.GetValueOrDefault(entry.Name), entry))
            throw new ArgumentException($"tensor '{entry.Name}' does not belong to {Path}", nameof(entry));
        if (entry.ByteLength > int.MaxValue)
            throw new CheckpointException($"{Path}: tensor '{entry.Name}' is {entry.ByteLength} bytes; tensors over 2 GiB are not supported");
        return new ReadOnlySpan<byte>(_base + entry.DataOffset, (int)entry.ByteLength);
    }

    /// <summary>The tensor as fp32, when it is stored as F32 on a little-endian machine and suitably aligned: no copy at all.</summary>
    public bool TryGetSingles(TensorEntry entry, out ReadOnlySpan<float> values)
    {
        values = default;
        if (entry.DType != TensorDType.F32 || !BitConverter.IsLittleEndian || entry.DataOffset % 4 != 0) return false;
        values = MemoryMarshal.Cast<byte, float>(GetBytes(entry));
        return true;
    }

    /// <summary>
    /// Reads a floating tensor, up-casting F16/BF16/F64 to fp32 into <paramref name="destination"/>.
    /// The bytes come through ordinary positioned reads, not the mapping: pages read through the mapping count towards
    /// the process's resident memory for as long as the file stays mapped, so reading every weight through it would
    /// add the whole checkpoint to the model's footprint on top of the packed copies. Read calls leave them in the page cache only.
    /// </summary>
    public void ReadSingles(TensorEntry entry, Span<float> destination)
    {
        if (destination.Length != entry.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} values, tensor '{entry.Name}' has {entry.ElementCount}", nameof(destination));
        ObjectDisposedException.ThrowIf(_disposed, this);
        string what = $"{Path}: tensor '{entry.Name}'";
        if (entry.DType == TensorDType.F32 && BitConverter.IsLittleEndian)
        {
            ReadExactly(MemoryMarshal.AsBytes(destination), entry.DataOffset);
            return;
        }
        // Other dtypes: convert chunk by chunk through a small buffer (whole elements per chunk).
        int elementSize = (int)(entry.ByteLength / Math.Max(1, entry.ElementCount));
        if (elementSize == 0 || entry.ElementCount == 0) { FloatConversion.ToSingle(GetBytes(entry), entry.DType, destination, what); return; }
        int chunkElements = Math.Max(1, (1 << 20) / elementSize);
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(chunkElements * elementSize);
        try
        {
            for (long start = 0; start < entry.ElementCount; start += chunkElements)
            {
                int count = (int)Math.Min(chunkElements, entry.ElementCount - start);
                Span<byte> bytes = buffer.AsSpan(0, count * elementSize);
                ReadExactly(bytes, entry.DataOffset + start * elementSize);
                FloatConversion.ToSingle(bytes, entry.DType, destination.Slice((int)start, count), what);
            }
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    void ReadExactly(Span<byte> destination, long offset)
    {
        try
        {
            while (!destination.IsEmpty)
            {
                int read = RandomAccess.Read(_handle, destination, offset);
                if (read <= 0) throw new CheckpointException($"{Path}: the file ended while reading at byte {offset} (was it truncated after opening?)");
                destination = destination[read..];
                offset += read;
            }
        }
        catch (IOException e) { throw new CheckpointException($"{Path}: cannot read the file ({e.Message})", e); }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Release(_handle, _view, _map, _base);
    }
}
