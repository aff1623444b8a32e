using System.Buffers.Binary;
using System.Diagnostics;
using ManagedClip.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Imaging;

/// <summary>Every bad input must end as an <see cref="ImageInputException"/> naming the file — never another exception, never a hang.</summary>
public sealed class BadInputTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mclip-imaging-").FullName;
    private readonly ImagePreprocessor _pre = new(PreprocessOptions.OpenAI(32));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, byte[] bytes)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private ImageInputException Refused(string path)
    {
        var ex = Assert.Throws<ImageInputException>(() => _pre.Preprocess(path));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        output.WriteLine(ex.Message);
        return ex;
    }

    private static byte[] Encode(IImageEncoder enc, int w = 64, int h = 48)
    {
        using var img = ImagingTestData.Synthetic(w, h);
        using var ms = new MemoryStream();
        img.Save(ms, enc);
        return ms.ToArray();
    }

    private static byte[] PngChunk(string type, byte[] data)
    {
        var c = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(c, data.Length);
        System.Text.Encoding.ASCII.GetBytes(type, c.AsSpan(4));
        data.CopyTo(c, 8);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(8 + data.Length), Crc32(c.AsSpan(4, 4 + data.Length)));
        return c;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    [Fact] public void ZeroByteFile() => Assert.Contains("empty", Refused(Write("empty.png", [])).Message, StringComparison.Ordinal);

    [Fact] public void MissingFile() => Refused(Path.Combine(_dir, "no-such-file.jpg"));

    [Fact] public void RandomBytes() => Refused(Write("noise.png", Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251)).ToArray()));

    [Fact] public void TextFileNamedJpg() => Refused(Write("notes.jpg", "this is not a picture\n"u8.ToArray()));

    [Fact]
    public void TruncatedPng()
    {
        byte[] png = Encode(new PngEncoder());
        Refused(Write("half.png", png[..(png.Length / 2)]));
        Refused(Write("header-only.png", png[..40]));
    }

    [Fact]
    public void PngWithoutIendIsAcceptedOnlyWhenItsDataIsComplete()
    {
        // Pillow loads a PNG whose IEND is missing but refuses one whose image data stops at a chunk boundary.
        byte[] png = File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "rgb_97x61.png"));
        var chunks = new List<(string Type, byte[] Data)>();
        for (int pos = 8; pos < png.Length;)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            chunks.Add((System.Text.Encoding.ASCII.GetString(png, pos + 4, 4), png[(pos + 8)..(pos + 8 + len)]));
            pos += 12 + len;
        }
        byte[] idat = chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray();
        byte[] sig = png[..8];
        byte[] ihdr = PngChunk("IHDR", chunks.Single(c => c.Type == "IHDR").Data);
        byte[] complete = [.. sig, .. ihdr, .. PngChunk("IDAT", idat[..100]), .. PngChunk("IDAT", idat[100..])];
        byte[] cut = [.. sig, .. ihdr, .. PngChunk("IDAT", idat[..100])];
        var want = _pre.Preprocess(Path.Combine(ImagingTestData.Fixtures, "rgb_97x61.png"));
        Assert.Equal(want, _pre.Preprocess(Write("no-iend.png", complete)));
        Assert.Contains("incomplete", Refused(Write("cut-at-chunk.png", cut)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedJpeg()
    {
        byte[] jpg = Encode(new JpegEncoder { Quality = 90 });
        Refused(Write("half.jpg", jpg[..(jpg.Length / 2)]));
        Refused(Write("soi-only.jpg", jpg[..20]));
    }

    public static IEnumerable<object[]> JpegTruncationCases()
    {
        using var cases = TestData.ReadJson(Path.Combine(ImagingTestData.Fixtures, "jpeg_truncation_cases.json"));
        foreach (var c in cases.RootElement.GetProperty("cases").EnumerateArray())
            yield return [c.GetProperty("name").GetString()!, c.GetProperty("source").GetString()!, c.GetProperty("cut").GetInt32(),
                          c.GetProperty("append_hex").GetString()!, c.GetProperty("pillow").GetString()!, c.GetProperty("data_to_eof").GetBoolean()];
    }

    /// <summary>
    /// Cut, extended and spliced JPEGs (make_jpeg_truncation_cases.py) through the whole pipeline: refused where Pillow
    /// 9.4 refuses, decoded where it decodes, and what follows EOI changes nothing. That includes the sequential scans
    /// whose data runs to the end of the file, where Pillow's verdict hangs on libjpeg-turbo's bit-buffer state (it
    /// accepts 2 of the 20 here): the managed decoder keeps that state as libjpeg does.
    /// </summary>
    [Theory]
    [MemberData(nameof(JpegTruncationCases))]
    public void JpegTruncationMatchesPillow(string name, string source, int cut, string appendHex, string pillow, bool dataToEof)
    {
        byte[] original = File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, source));
        string path = Write("case.jpg", [.. original[..cut], .. Convert.FromHexString(appendHex)]);
        bool pillowAccepts = pillow == "ok";
        output.WriteLine($"{name}: Pillow says {pillow}{(dataToEof ? " (scan data to the end of the file)" : "")}");
        if (pillowAccepts)
        {
            float[] got = _pre.Preprocess(path);
            if (cut == original.Length) Assert.Equal(_pre.Preprocess(Path.Combine(ImagingTestData.Fixtures, source)), got);
        }
        else Refused(path);
    }

    [Fact]
    public void HugeDimensionHeaderIsRefusedBeforeDecoding()
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, 100_000);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), 100_000);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
        byte[] png = [.. new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, .. PngChunk("IHDR", ihdr),
                      .. PngChunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]), .. PngChunk("IEND", [])];
        var sw = Stopwatch.StartNew();
        var ex = Refused(Write("bomb.png", png));
        Assert.Contains("10000000000 pixels", ex.Message, StringComparison.Ordinal);
        Assert.True(sw.ElapsedMilliseconds < 2000, "refusal should not decode anything");
    }

    private static byte[] Deflated(int zeros)
    {
        using var ms = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(ms, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true))
            z.Write(new byte[zeros]);
        return ms.ToArray();
    }

    /// <summary>
    /// PNG text and ICC chunks are zlib streams: 60 zTXt/iTXt chunks and an iCCP chunk that each inflate to 4 MiB (250 MiB
    /// from a 260 KB file) around a 32x32 image. Decoding must not inflate them, with or without EXIF orientation.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PngMetadataBombIsNotInflated(bool exifOrientation)
    {
        byte[] bomb = Deflated(4 << 20);
        byte[] png = Encode(new PngEncoder(), 32, 32);
        var chunks = new List<byte>(png[..33]); // signature + IHDR
        chunks.AddRange(PngChunk("iCCP", [.. "icc\0\0"u8, .. bomb]));
        for (int i = 0; i < 30; i++)
        {
            chunks.AddRange(PngChunk("zTXt", [.. "Comment\0\0"u8, .. bomb]));
            chunks.AddRange(PngChunk("iTXt", [.. "Comment\0\u0001\0\0\0"u8, .. bomb]));
        }
        chunks.AddRange(png[33..]);
        string path = Write("text-bomb.png", [.. chunks]);
        var pre = new ImagePreprocessor(PreprocessOptions.OpenAI(32) with { ApplyExifOrientation = exifOrientation });
        float[] want = pre.Preprocess(new MemoryStream(png), "plain");

        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        float[] got = pre.Preprocess(path);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"{new FileInfo(path).Length} bytes on disk: {allocated} bytes allocated, {watch.ElapsedMilliseconds} ms");
        Assert.Equal(want, got);
        Assert.True(allocated < 16 << 20, $"{allocated} bytes allocated for a 32x32 image");
    }

    /// <summary>The orientation is found by walking the container (the decoders' metadata is off) in every format that carries EXIF.</summary>
    [Theory]
    [InlineData("jpeg")]
    [InlineData("webp")]
    [InlineData("png")]
    public void ExifOrientationIsFoundInEachContainer(string format)
    {
        using var img = ImagingTestData.Synthetic(23, 17);
        img.Metadata.ExifProfile = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile();
        img.Metadata.ExifProfile.SetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation, (ushort)6);
        using var ms = new MemoryStream();
        img.Save(ms, format switch
        {
            "jpeg" => new JpegEncoder { Quality = 95 },
            "webp" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
            _ => (IImageEncoder)new PngEncoder(),
        });
        string path = Write($"exif6.{format}", ms.ToArray());
        var plain = ImageLoader.Load(path, PreprocessOptions.OpenAI(32));
        var turned = ImageLoader.Load(path, PreprocessOptions.OpenAI(32) with { ApplyExifOrientation = true });
        Assert.Equal((17, 23), (turned.Width, turned.Height));
        Assert.Equal(ExifOrientation.Apply(plain, 6).Bytes, turned.Bytes);
    }

    /// <summary>Pillow 9.4's exif_transpose leaves a TIFF with orientation 6 as it is (make_image_cases.py's exif6 PNG saved as TIFF with tag 274 = 6).</summary>
    [Fact]
    public void TiffOrientationTagIsIgnoredAsPillowDoes()
    {
        string path = Path.Combine(ImagingTestData.Fixtures, "exif6_23x17.tif");
        var plain = ImageLoader.Load(path, PreprocessOptions.OpenAI(32));
        var exif = ImageLoader.Load(path, PreprocessOptions.OpenAI(32) with { ApplyExifOrientation = true });
        Assert.Equal((23, 17), (exif.Width, exif.Height));
        Assert.Equal(plain.Bytes, exif.Bytes);
    }

    [Fact]
    public void MaxPixelsIsConfigurable()
    {
        string p = Path.Combine(ImagingTestData.Fixtures, "rgb_97x61.png");
        var strict = new ImagePreprocessor(PreprocessOptions.OpenAI(32) with { MaxPixels = 97 * 61 - 1 });
        Assert.Contains("limit", Assert.Throws<ImageInputException>(() => strict.Preprocess(p)).Message, StringComparison.Ordinal);
        var exact = new ImagePreprocessor(PreprocessOptions.OpenAI(32) with { MaxPixels = 97 * 61 });
        Assert.Equal(3 * 32 * 32, exact.Preprocess(p).Length);
    }

    [Fact]
    public void CmykJpegDecodesAsCmykAsPillowOpensIt()
    {
        string p = Path.Combine(ImagingTestData.Fixtures, "cmyk_48x32.jpg");
        DecodedImage img = ImageLoader.Load(p, PreprocessOptions.OpenAI(32));
        Assert.Equal(SourceMode.Cmyk, img.Mode);
        Assert.Equal((48, 32), (img.Width, img.Height));
        Assert.Equal(3 * 32 * 32, _pre.Preprocess(p).Length);
    }

    [Fact]
    public void NonSeekableStreamWorks()
    {
        byte[] png = File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "rgb_97x61.png"));
        using var pipe = new NonSeekable(png);
        Assert.Equal(_pre.Preprocess(Path.Combine(ImagingTestData.Fixtures, "rgb_97x61.png")), _pre.Preprocess(pipe, "pipe"));
    }

    [Fact]
    public void BadStreamNamesTheStream()
    {
        var ex = Assert.Throws<ImageInputException>(() => _pre.Preprocess(new MemoryStream([1, 2, 3]), "upload #7"));
        Assert.Contains("upload #7", ex.Message, StringComparison.Ordinal);
    }

    public static IEnumerable<object[]> FuzzFormats() =>
    [
        ["png", 3000], ["jpeg", 3000], ["jpeg-progressive", 1500], ["gif", 1000], ["bmp", 1000], ["tiff", 1000], ["webp", 1000],
    ];

    /// <summary>
    /// Seeded byte mutations (flips, overwrites, truncation, insertion, length fields) for a bounded time. Memory per mutant
    /// stays within the README's bound for the largest image a mutated header may claim under the 4 Mpx limit used here.
    /// </summary>
    [Theory]
    [MemberData(nameof(FuzzFormats))]
    public async Task FuzzedBytesDecodeOrFailCleanly(string format, int millis)
    {
        byte[] valid = format switch
        {
            "png" => Encode(new PngEncoder()),
            "jpeg" => Encode(new JpegEncoder { Quality = 80 }),
            "jpeg-progressive" => File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "jpeg_progressive_64x48.jpg")),
            "gif" => Encode(new GifEncoder()),
            "bmp" => Encode(new BmpEncoder()),
            "tiff" => Encode(new TiffEncoder()),
            _ => Encode(new WebpEncoder()),
        };
        var pre = new ImagePreprocessor(PreprocessOptions.OpenAI(32) with { MaxPixels = 4_000_000 });
        var rng = new Random(12345 + format.Length);
        int ok = 0, refused = 0, n = 0;
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < millis)
        {
            byte[] m = Mutate(valid, rng);
            n++;
            var task = Task.Run(() =>
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                try { pre.Preprocess(new MemoryStream(m), "fuzz"); return ((Exception?)null, GC.GetAllocatedBytesForCurrentThread() - before); }
                catch (Exception e) { return (e, GC.GetAllocatedBytesForCurrentThread() - before); }
            });
            Exception? e;
            long allocated;
            try { (e, allocated) = await task.WaitAsync(TimeSpan.FromSeconds(20)); }
            catch (TimeoutException) { Assert.Fail($"{format} iteration {n}: decode hung"); throw; }
            Assert.True(allocated < 28L * 4_000_000 + (40 << 20), $"{format} iteration {n}: {allocated} bytes allocated");
            if (e is null) ok++;
            else if (e is ImageInputException iie) { refused++; Assert.Contains("fuzz", iie.Message, StringComparison.Ordinal); }
            else Assert.Fail($"{format} iteration {n}: {e.GetType().FullName} leaked: {e}");
        }
        output.WriteLine($"{format}: {n} mutants, {ok} decoded, {refused} refused");
        Assert.True(n > 0);
    }

    private static byte[] Mutate(byte[] src, Random rng)
    {
        byte[] m = (byte[])src.Clone();
        switch (rng.Next(5))
        {
            case 4: // a length or size field: a random 16- or 32-bit big- or little-endian value where one may be
                {
                    int at = rng.Next(m.Length - 4);
                    if (rng.Next(2) == 0) BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(at), (ushort)rng.Next(65536));
                    else if (rng.Next(2) == 0) BinaryPrimitives.WriteInt32BigEndian(m.AsSpan(at), rng.Next());
                    else BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(at), rng.Next());
                    return m;
                }
            case 0:
                for (int k = rng.Next(1, 9); k > 0; k--) m[rng.Next(m.Length)] ^= (byte)(1 << rng.Next(8));
                return m;
            case 1:
                for (int k = rng.Next(1, 5); k > 0; k--) m[rng.Next(m.Length)] = (byte)rng.Next(256);
                return m;
            case 2:
                return m[..rng.Next(1, m.Length)];
            default:
                {
                    int at = rng.Next(m.Length);
                    var ins = new byte[rng.Next(1, 16)];
                    rng.NextBytes(ins);
                    return [.. m[..at], .. ins, .. m[at..]];
                }
        }
    }

    private sealed class NonSeekable(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
