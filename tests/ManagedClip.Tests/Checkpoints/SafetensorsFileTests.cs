using System.Buffers.Binary;
using System.Text;
using ManagedClip.Checkpoints;
using SixLabors.ImageSharp;

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

    /// <summary>Files people pass as a model by mistake, written as the tools that make them do.</summary>
    static void WriteForeign(string kind, string path)
    {
        switch (kind)
        {
            case "png" or "jpeg" or "gif":
                using (var image = new Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(8, 8))
                {
                    if (kind == "png") image.SaveAsPng(path);
                    else if (kind == "jpeg") image.SaveAsJpeg(path);
                    else image.SaveAsGif(path);
                }
                break;
            case "zip": // a PyTorch .pt/.bin checkpoint is a ZIP archive of pickles and storages
                using (var archive = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
                using (var entry = archive.CreateEntry("archive/data.pkl").Open())
                    entry.Write([0x80, 0x02, (byte)'}', (byte)'.']);
                break;
            case "gzip":
                using (var gzip = new System.IO.Compression.GZipStream(File.Create(path), System.IO.Compression.CompressionLevel.Fastest))
                    gzip.Write(Encoding.UTF8.GetBytes("#version: 0.2\n" + new string('x', 100)));
                break;
            case "pickle": // torch.save's legacy format: a pickle, protocol 2, then the storages
                File.WriteAllBytes(path, [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E, 0x80, 0x02, 0x4D, 0xE9, 0x03]);
                break;
            case "text":
                File.WriteAllText(path, "this is a text file, not a model\n");
                break;
        }
    }

    [Theory]
    [InlineData("png", "it starts like a PNG image")]
    [InlineData("jpeg", "it starts like a JPEG image")]
    [InlineData("gif", "it starts like a GIF image")]
    [InlineData("zip", "it starts like a ZIP archive, as PyTorch .pt/.bin checkpoints are")]
    [InlineData("gzip", "it starts like a gzip file")]
    [InlineData("pickle", "it starts like a Python pickle, as legacy PyTorch checkpoints are")]
    [InlineData("text", "no JSON header follows them")]
    public void OtherFormatsAreNamedNotCalledCorrupt(string kind, string expected)
    {
        string path = Path.Combine(_folder, "model.safetensors");
        WriteForeign(kind, path);
        var error = Fails(path);
        Assert.StartsWith($"{path}: not a safetensors file (", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("corrupt", error.Message, StringComparison.Ordinal);
        // the same from the model's entry point
        Assert.Equal(error.Message, Assert.Throws<CheckpointException>(() => ClipModel.Load(path)).Message);
    }

    [Fact]
    public void AForeignSignatureInsideAValidPrefixIsStillSafetensors()
    {
        // A real header length may begin with any bytes: 640 is 0x80 0x02 (a pickle's first two bytes). With a '{'
        // after the prefix the file is read as safetensors and opens.
        string header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""".PadRight(640);
        using var file = SafetensorsFile.Open(WriteRaw(header, Floats(2.5f)));
        Assert.Equal(640, new FileInfo(file.Path).Length - 8 - 4);
        var values = new float[1];
        file.ReadSingles(file.Tensors["a"], values);
        Assert.Equal(2.5f, values[0]);
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
