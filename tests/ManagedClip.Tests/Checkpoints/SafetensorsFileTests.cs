using System.Buffers.Binary;
using System.Text;
using ManagedClip.Checkpoints;

namespace ManagedClip.Tests.Checkpoints;

/// <summary>The reader validates every header field before touching data; every malformed file is a CheckpointException naming it.</summary>
public sealed class SafetensorsFileTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-st-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>A file from a literal header and data bytes, with the length prefix as given (or the true one).</summary>
    string WriteRaw(string header, byte[] data, ulong? declaredLength = null, string name = "test.safetensors")
    {
        // Pad the header with spaces to a multiple of 8, as writers do, so F32 data is aligned.
        var headerBytes = Encoding.UTF8.GetBytes(header.PadRight((header.Length + 7) / 8 * 8));
        var bytes = new byte[8 + headerBytes.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)headerBytes.Length);
        headerBytes.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + headerBytes.Length);
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    CheckpointException Fails(string path)
    {
        var error = Assert.Throws<CheckpointException>(() => { using var _ = SafetensorsFile.Open(path); });
        Assert.Contains(path, error.Message);
        return error;
    }

    [Fact]
    public void ReadsEveryFloatTypeAndToleratesIntegers()
    {
        var data = new List<byte>();
        data.AddRange(Floats(1.5f, -2.25f));                                                       // F32 [2]
        data.AddRange(BitConverter.GetBytes((Half)0.333f)); data.AddRange(BitConverter.GetBytes((Half)(-7f))); // F16 [2]
        data.AddRange(BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(3.5f) >> 16)));  // BF16 [1]
        data.AddRange(BitConverter.GetBytes(0.1));                                                 // F64 [1]
        data.AddRange(BitConverter.GetBytes(42L));                                                 // I64 [1]
        string header = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[1,1],"data_offsets":[12,14]},"d":{"dtype":"F64","shape":[1],"data_offsets":[14,22]},"ids":{"dtype":"I64","shape":[1],"data_offsets":[22,30]}}""";
        using var file = SafetensorsFile.Open(WriteRaw(header, data.ToArray()));
        Assert.Equal("pt", file.Metadata["format"]);
        float[] Read(string name) { var e = file.Tensors[name]; var v = new float[e.ElementCount]; file.ReadSingles(e, v); return v; }
        Assert.Equal([1.5f, -2.25f], Read("a"));
        Assert.Equal([(float)(Half)0.333f, -7f], Read("b"));
        Assert.Equal([3.5f], Read("c"));
        Assert.Equal([0.1f], Read("d"));
        Assert.False(file.Tensors["ids"].IsFloatingPoint);
        Assert.Throws<CheckpointException>(() => Read("ids"));
        Assert.Equal(Floats(1.5f, -2.25f), file.GetBytes(file.Tensors["a"]));
    }

    [Fact]
    public void EmptyAndTooShortFilesAreRefused()
    {
        string empty = Path.Combine(_folder, "empty.safetensors");
        File.WriteAllBytes(empty, []);
        Assert.Contains("too short", Fails(empty).Message);
        string tiny = Path.Combine(_folder, "tiny.safetensors");
        File.WriteAllBytes(tiny, [1, 2, 3]);
        Fails(tiny);
    }

    [Fact]
    public void MissingFileIsNamed() => Assert.Contains("not found", Fails(Path.Combine(_folder, "absent.safetensors")).Message);

    [Fact]
    public void HeaderLengthPastTheEndIsRefused() =>
        Assert.Contains("past the end", Fails(WriteRaw("{}", [], declaredLength: 1000)).Message);

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 40)]
    [InlineData(200UL * 1024 * 1024)]
    public void AbsurdHeaderLengthIsRefusedWithoutAllocating(ulong declared)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var error = Fails(WriteRaw("{}", new byte[16], declaredLength: declared));
        Assert.Contains("exceeds the limit", error.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "refusing a header must not allocate its declared size");
    }

    [Theory]
    [InlineData("{not json", "not well formed")]
    [InlineData("[1,2,3]", "not an object")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", "no dtype")]
    [InlineData("""{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}""", "unknown dtype 'Q4'")]
    [InlineData("""{"a":{"dtype":"F32","data_offsets":[0,4]}}""", "no shape")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "non-negative")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", "do not match shape")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", "ordered pair")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}""", "data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,null]}}""", "data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}""", "overlapping")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", "past the end of the data section")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", "listed twice")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}""", "absurdly large")]
    public void MalformedHeadersAreRefused(string header, string expected)
    {
        var error = Fails(WriteRaw(header, new byte[8]));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void MutatedFilesNeverCrash()
    {
        // A valid two-tensor file, then seeded random byte mutations in the header and length prefix:
        // each must either open (and read back within bounds) or be refused as a CheckpointException.
        string header = """{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]}}""";
        string valid = WriteRaw(header, new byte[22]);
        byte[] original = File.ReadAllBytes(valid);
        var random = new Random(1234);
        string mutant = Path.Combine(_folder, "mutant.safetensors");
        for (int iteration = 0; iteration < 2000; iteration++)
        {
            byte[] bytes = (byte[])original.Clone();
            int edits = random.Next(1, 4);
            for (int e = 0; e < edits; e++) bytes[random.Next(0, 8 + header.Length)] = (byte)random.Next(256);
            if (random.Next(8) == 0) Array.Resize(ref bytes, random.Next(bytes.Length));
            File.WriteAllBytes(mutant, bytes);
            try
            {
                using var file = SafetensorsFile.Open(mutant);
                foreach (var entry in file.Tensors.Values.Where(t => t.IsFloatingPoint))
                    file.ReadSingles(entry, new float[entry.ElementCount]);
            }
            catch (CheckpointException) { }
        }
    }
}
