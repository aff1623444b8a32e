using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace ManagedClip.Checkpoints;

/// <summary>Element types a safetensors header may name. Floating types are up-cast to fp32 for compute; integer tensors are tolerated and ignored.</summary>
public enum TensorDType
{
    /// <summary>64-bit IEEE float.</summary>
    F64,
    /// <summary>32-bit IEEE float.</summary>
    F32,
    /// <summary>16-bit IEEE float (half).</summary>
    F16,
    /// <summary>bfloat16: the upper 16 bits of a float32.</summary>
    BF16,
    /// <summary>64-bit signed integer.</summary>
    I64,
    /// <summary>32-bit signed integer.</summary>
    I32,
    /// <summary>16-bit signed integer.</summary>
    I16,
    /// <summary>8-bit signed integer.</summary>
    I8,
    /// <summary>8-bit unsigned integer.</summary>
    U8,
    /// <summary>Boolean, one byte each.</summary>
    Bool,
}

/// <summary>One tensor's entry in a safetensors header. <see cref="DataOffset"/> is absolute within the file.</summary>
public sealed record TensorEntry(string Name, TensorDType DType, int[] Shape, long DataOffset, long ByteLength, string FilePath)
{
    /// <summary>Elements in the tensor: the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount => Shape.Aggregate(1L, (count, dim) => count * dim);
    /// <summary>Whether the dtype is a float type (F64, F32, F16, BF16), the only ones read as weights.</summary>
    public bool IsFloatingPoint => DType is TensorDType.F64 or TensorDType.F32 or TensorDType.F16 or TensorDType.BF16;
    /// <summary>The shape as text, e.g. "[512, 768]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A safetensors file (format: 8-byte little-endian header length n, n bytes of UTF-8 JSON mapping names to
/// {dtype, shape, data_offsets}, then the raw little-endian data). The header is validated completely before any tensor
/// is read. Tensors are read with positioned reads into the caller's memory, never mapped: once a model has read its
/// weights nothing refers to the file, so truncating or overwriting it on disk cannot reach a loaded model. Every tensor
/// is also hashed (XxHash128 of its stored bytes, for <see cref="Checkpoint.Fingerprint"/>) and its values checked finite,
/// chunk by chunk (<see cref="HashAndCheck"/>).
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Headers of real checkpoints are a few hundred KiB; anything past this is a corrupt or hostile file.</summary>
    public const long DefaultMaxHeaderBytes = 100L * 1024 * 1024;

    readonly SafeFileHandle _handle;
    bool _disposed;

    /// <summary>The file's path, as given to <see cref="Open"/>.</summary>
    public string Path { get; }
    /// <summary>The file's length in bytes (of the file itself, through symbolic links).</summary>
    public long Length { get; }
    /// <summary>Every tensor of the header, by name, validated.</summary>
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }
    /// <summary>The header's <c>__metadata__</c> entries (non-string values as their JSON text); empty when it has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafetensorsFile(string path, long length, SafeFileHandle handle, Dictionary<string, TensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path; Length = length; _handle = handle;
        Tensors = tensors; Metadata = metadata;
    }

    /// <summary>Opens a safetensors file and validates its whole header; no tensor is read yet.</summary>
    /// <param name="path">The .safetensors file.</param>
    /// <param name="maxHeaderBytes">The largest JSON header accepted, in bytes.</param>
    /// <exception cref="CheckpointException">The file is missing or unreadable, is not a safetensors file (a PNG, a ZIP or pickle PyTorch
    /// checkpoint, ...), is truncated, or its header is malformed: the message names the file and what is wrong.</exception>
    /// <example>
    /// <code>
    /// using var file = SafetensorsFile.Open("model.safetensors");
    /// foreach (var tensor in file.Tensors.Values) Console.WriteLine($"{tensor.Name} {tensor.DType} {tensor.ShapeText}");
    /// </code>
    /// </example>
    public static SafetensorsFile Open(string path, long maxHeaderBytes = DefaultMaxHeaderBytes)
    {
        FileInfo info;
        try { info = new FileInfo(path); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        { throw new CheckpointException($"{path}: not a valid file path ({e.Message})", e); }
        if (!info.Exists) throw new CheckpointException($"{path}: file not found");

        SafeFileHandle? handle = null;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
            // The length of the file itself, not FileInfo's: through a symbolic link (the Hugging Face cache links every
            // snapshot file into its blobs) FileInfo.Length is the link's.
            long length = RandomAccess.GetLength(handle);
            if (length < 8) throw new CheckpointException($"{path}: not a safetensors file: {length} bytes is too short for the 8-byte header length");
            Span<byte> prefix = stackalloc byte[(int)Math.Min(length, 16)];
            ReadExactly(handle, path, prefix, 0);
            long headerLength = HeaderLength(path, prefix, length, maxHeaderBytes);
            var header = new byte[headerLength];
            ReadExactly(handle, path, header, 8);
            var (tensors, metadata) = ParseHeader(path, header, length);
            return new SafetensorsFile(path, length, handle, tensors, metadata);
        }
        catch (IOException e)
        {
            handle?.Dispose();
            throw new CheckpointException($"{path}: cannot read the file ({e.Message})", e);
        }
        catch (UnauthorizedAccessException e)
        {
            handle?.Dispose();
            throw new CheckpointException($"{path}: permission denied ({e.Message})", e);
        }
        catch
        {
            handle?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The JSON header's length from the 8-byte prefix, checked against the limit and the file's length before anything is
    /// allocated. <paramref name="prefix"/> is the file's first bytes (8 to 16). A file that is not safetensors at all is
    /// told apart from a damaged one first: its length makes no sense or no '{' follows it, and then its first bytes say
    /// what it is if they can (<see cref="ForeignFormat"/>).
    /// </summary>
    static long HeaderLength(string path, ReadOnlySpan<byte> prefix, long fileLength, long maxHeaderBytes)
    {
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        bool opensJson = prefix.Length > 8 && prefix[8] == (byte)'{';
        bool plausible = headerLength > 0 && headerLength <= (ulong)maxHeaderBytes && headerLength <= (ulong)(fileLength - 8);
        if (!plausible || !opensJson)
        {
            // Only a file that cannot be safetensors is named by its signature: a real header can start with any 8 bytes.
            if (ForeignFormat(prefix) is { } format)
                throw new CheckpointException($"{path}: not a safetensors file (it starts like {format})");
            if (!plausible && !opensJson)
                throw new CheckpointException($"{path}: not a safetensors file (its first 8 bytes, read as the header length, say {headerLength} bytes, " +
                    $"and no JSON header follows them; the file has {fileLength} bytes)");
        }
        if (headerLength == 0) throw new CheckpointException($"{path}: corrupt safetensors header: header length is 0");
        if (headerLength > (ulong)maxHeaderBytes)
            throw new CheckpointException($"{path}: corrupt safetensors header: header length {headerLength} bytes exceeds the limit of {maxHeaderBytes} bytes");
        if (headerLength > (ulong)(fileLength - 8))
            throw new CheckpointException($"{path}: truncated or corrupt safetensors file: header length {headerLength} bytes runs past the end of the {fileLength}-byte file");
        return (long)headerLength;
    }

    /// <summary>What a file's first bytes say it is, for the formats people mistake for a checkpoint; null when none matches.</summary>
    static string? ForeignFormat(ReadOnlySpan<byte> start)
    {
        if (start.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A])) return "a PNG image";
        if (start.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "a JPEG image";
        if (start.StartsWith("GIF87a"u8) || start.StartsWith("GIF89a"u8)) return "a GIF image";
        if (start.Length >= 12 && start.StartsWith("RIFF"u8) && start.Slice(8, 4).SequenceEqual("WEBP"u8)) return "a WebP image";
        if (start.StartsWith("PK\u0003\u0004"u8) || start.StartsWith("PK\u0005\u0006"u8))
            return "a ZIP archive, as PyTorch .pt/.bin checkpoints are; convert it to safetensors";
        if (start.StartsWith((ReadOnlySpan<byte>)[0x1F, 0x8B])) return "a gzip file";
        if (start[0] == 0x80 && start[1] is >= 2 and <= 5)
            return "a Python pickle, as legacy PyTorch checkpoints are; convert it to safetensors";
        return null;
    }

    /// <summary>Validates the JSON header (the bytes after the length prefix): well-formed JSON, known dtypes, sizes matching shapes, ranges inside the data section and disjoint.</summary>
    static (Dictionary<string, TensorEntry>, Dictionary<string, string>) ParseHeader(string path, ReadOnlyMemory<byte> headerBytes, long fileLength)
    {
        long dataStart = 8 + headerBytes.Length;
        long dataLength = fileLength - dataStart;
        var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes.Span))
            throw new CheckpointException($"{path}: corrupt safetensors header: the JSON header is not valid UTF-8");
        try
        {
            using var document = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { MaxDepth = 16 });
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
        if (!IsInt64(offsetsElement[0], out long begin) || !IsInt64(offsetsElement[1], out long end) || begin < 0 || end < begin)
            throw new CheckpointException($"{where}: data_offsets {offsetsElement.GetRawText()} are not an ordered pair of non-negative integers");
        if (end > dataLength)
            throw new CheckpointException($"{where}: data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes; file truncated?)");
        long elementSize = SizeOf(dtype);
        if (elements > long.MaxValue / elementSize || elements * elementSize != end - begin)
            throw new CheckpointException($"{where}: {end - begin} bytes of data do not match shape {Format(shape)} of {dtypeText} ({elements} × {elementSize} bytes)");
        return new TensorEntry(name, dtype, shape, dataStart + begin, end - begin, path);
    }

    static bool IsInt64(JsonElement element, out long value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value);
    }

    static string Format(int[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Bytes per element of a dtype (8, 4, 2 or 1).</summary>
    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        TensorDType.F64 or TensorDType.I64 => 8,
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 or TensorDType.I16 => 2,
        _ => 1,
    };

    /// <summary>A copy of the tensor's raw little-endian bytes, read from the file now.</summary>
    public byte[] GetBytes(TensorEntry entry)
    {
        CheckReadable(entry);
        if (entry.ByteLength > Array.MaxLength)
            throw new CheckpointException($"{Path}: tensor '{entry.Name}' is {entry.ByteLength} bytes; tensors over 2 GiB are not supported");
        var bytes = new byte[entry.ByteLength];
        ReadExactly(_handle, Path, bytes, entry.DataOffset);
        return bytes;
    }

    /// <summary>
    /// Reads a floating tensor into <paramref name="destination"/>, up-casting F16/BF16/F64 to fp32, chunk by chunk: F32 lands
    /// straight in the destination, other dtypes pass through a pooled buffer. Hashing and the finite check are not done
    /// here but by <see cref="HashAndCheck"/>, which <see cref="Checkpoint"/> runs beside the loading thread.
    /// </summary>
    public void ReadSingles(TensorEntry entry, Span<float> destination)
    {
        if (destination.Length != entry.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} values, tensor '{entry.Name}' has {entry.ElementCount}", nameof(destination));
        CheckReadable(entry);
        string what = $"{Path}: tensor '{entry.Name}'";
        if (!entry.IsFloatingPoint) throw new CheckpointException($"{what}: dtype {entry.DType} is not a floating-point type");
        if (entry.DType == TensorDType.F32 && BitConverter.IsLittleEndian)
        {
            ReadExactly(_handle, Path, MemoryMarshal.AsBytes(destination), entry.DataOffset);
            return;
        }
        int elementSize = SizeOf(entry.DType);
        int chunkElements = ChunkBytes / elementSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            for (int start = 0; start < destination.Length; start += chunkElements)
            {
                var values = destination.Slice(start, Math.Min(chunkElements, destination.Length - start));
                var bytes = buffer.AsSpan(0, values.Length * elementSize);
                ReadExactly(_handle, Path, bytes, entry.DataOffset + (long)start * elementSize);
                FloatConversion.ToSingle(bytes, entry.DType, values, what);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>
    /// Reads the tensor's stored bytes once, in chunks: their XxHash128 (for <see cref="Checkpoint.Fingerprint"/>) and, for a
    /// floating tensor, every value as the model sees it in fp32 checked finite while the chunk is in cache. A NaN or infinity
    /// is a CheckpointException naming the tensor: such a weight would turn every output into NaN.
    /// </summary>
    /// <param name="entry">A tensor of this file.</param>
    /// <param name="buffer">Scratch of <see cref="ChunkBytes"/> bytes.</param>
    /// <param name="values">Scratch of <see cref="ChunkBytes"/> / 2 floats (the up-cast of a chunk of 2-byte elements).</param>
    /// <param name="cancellation">Checked between chunks: a load that failed stops the read.</param>
    internal UInt128 HashAndCheck(TensorEntry entry, byte[] buffer, float[] values, CancellationToken cancellation)
    {
        CheckReadable(entry);
        string what = $"{Path}: tensor '{entry.Name}'";
        int elementSize = SizeOf(entry.DType);
        var hash = new XxHash128();
        for (long start = 0; start < entry.ByteLength; start += ChunkBytes)
        {
            cancellation.ThrowIfCancellationRequested();
            var bytes = buffer.AsSpan(0, (int)Math.Min(ChunkBytes, entry.ByteLength - start));
            ReadExactly(_handle, Path, bytes, entry.DataOffset + start);
            hash.Append(bytes);
            if (!entry.IsFloatingPoint) continue;
            ReadOnlySpan<float> chunk;
            if (entry.DType == TensorDType.F32 && BitConverter.IsLittleEndian) chunk = MemoryMarshal.Cast<byte, float>(bytes);
            else
            {
                var converted = values.AsSpan(0, bytes.Length / elementSize);
                FloatConversion.ToSingle(bytes, entry.DType, converted, what);
                chunk = converted;
            }
            if (!TensorPrimitives.IsFiniteAll(chunk)) throw NonFinite(what, chunk, start / elementSize);
        }
        return hash.GetCurrentHashAsUInt128();
    }

    /// <summary>Bytes per positioned read of <see cref="HashAndCheck"/>: its scratch sizes.</summary>
    internal const int ChunkBytes = 1 << 18;

    static CheckpointException NonFinite(string what, ReadOnlySpan<float> chunk, long chunkStart)
    {
        int at = 0;
        while (float.IsFinite(chunk[at])) at++;
        string value = chunk[at].ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new CheckpointException($"{what}: holds a non-finite value ({value}) at element {chunkStart + at}; weights must be finite numbers");
    }

    void CheckReadable(TensorEntry entry)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!ReferenceEquals(Tensors.GetValueOrDefault(entry.Name), entry))
            throw new ArgumentException($"tensor '{entry.Name}' does not belong to {Path}", nameof(entry));
    }

    static void ReadExactly(SafeFileHandle handle, string path, Span<byte> destination, long offset)
    {
        try
        {
            while (!destination.IsEmpty)
            {
                int read = RandomAccess.Read(handle, destination, offset);
                if (read <= 0) throw new CheckpointException($"{path}: the file ended while reading at byte {offset} (was it truncated after opening?)");
                destination = destination[read..];
                offset += read;
            }
        }
        catch (IOException e) { throw new CheckpointException($"{path}: cannot read the file ({e.Message})", e); }
    }

    /// <summary>Closes the file; tensors can no longer be read (<see cref="ObjectDisposedException"/>). Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _handle.Dispose();
    }
}
