using System.Diagnostics;
using System.Text.Json;
using ManagedClip.Imaging;
using ManagedClip.Imaging.Jpeg;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// The managed JPEG decoder against Pillow 9.4 (libjpeg-turbo 2.1.5): tests/fixtures/imaging/jpeg-corpus holds the files
/// and, in manifest.json, the SHA-256 of Pillow's Image.open(f).convert("RGB").tobytes() for each (made by
/// make_jpeg_corpus.py). Sequential and progressive Huffman files must decode to exactly those bytes; the others must be refused by name.
/// </summary>
public sealed class JpegDecoderTests(ITestOutputHelper output)
{
    private static string CorpusFolder => Path.Combine(ImagingTestData.Fixtures, "jpeg-corpus");

    private sealed record Entry(string File, string Kind, int Width, int Height, string Sha256)
    {
        public override string ToString() => File;
    }

    private static readonly Lazy<Entry[]> Manifest = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(CorpusFolder, "manifest.json")));
        return doc.RootElement.GetProperty("files").EnumerateArray().Select(e => new Entry(
            e.GetProperty("file").GetString()!, e.GetProperty("kind").GetString()!, e.GetProperty("width").GetInt32(),
            e.GetProperty("height").GetInt32(), e.GetProperty("sha256").GetString()!)).ToArray();
    });

    /// <summary>A corpus file, or a reference image under ../shared (the manifest names those from the repository root).</summary>
    private static string PathOf(Entry e) =>
        e.File.StartsWith("../shared/", StringComparison.Ordinal)
            ? Path.Combine(ImagingTestData.Shared, e.File["../shared/".Length..])
            : Path.Combine(CorpusFolder, e.File);

    public static IEnumerable<object[]> Files(string kind) => Manifest.Value.Where(e => e.Kind == kind).Select(e => new object[] { e.File });

    /// <summary>The manifest's kinds the decoder must match Pillow on; every other file must be refused.</summary>
    private static readonly string[] Supported = ["baseline", "progressive", "progressive-smoothed", "cmyk"];

    private static Entry Find(string file) => Manifest.Value.Single(e => e.File == file);

    [Theory]
    [MemberData(nameof(Files), "baseline")]
    [MemberData(nameof(Files), "progressive")]
    [MemberData(nameof(Files), "progressive-smoothed")]
    [MemberData(nameof(Files), "cmyk")]
    public void SupportedFilesDecodeToPillowsBytes(string file)
    {
        var entry = Find(file);
        var image = JpegDecoder.Decode(File.ReadAllBytes(PathOf(entry)), file, PreprocessOptions.DefaultMaxPixels);
        Assert.Equal((entry.Width, entry.Height), (image.Width, image.Height));
        Assert.Equal(entry.Sha256, ImagingTestData.Sha256Hex(image.Rgb));
    }

    [Theory]
    [InlineData("rgb420_arithmetic_61x45.jpg", "arithmetic-coded JPEG is not supported")]
    public void UnsupportedFilesAreRefusedNamingTheFeature(string file, string feature)
    {
        var entry = Find(file);
        Assert.DoesNotContain(entry.Kind, Supported);
        var ex = Assert.Throws<ImageInputException>(() => JpegDecoder.Decode(File.ReadAllBytes(PathOf(entry)), file, PreprocessOptions.DefaultMaxPixels));
        Assert.Contains(file, ex.Message, StringComparison.Ordinal);
        Assert.Contains(feature, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryUnsupportedCorpusFileHasARefusalCase()
    {
        var covered = typeof(JpegDecoderTests).GetMethod(nameof(UnsupportedFilesAreRefusedNamingTheFeature))!
            .GetCustomAttributes(typeof(InlineDataAttribute), false).Cast<InlineDataAttribute>()
            .Select(a => (string)a.GetData(null!).Single()[0]).ToHashSet();
        Assert.All(Manifest.Value.Where(e => !Supported.Contains(e.Kind)), e => Assert.Contains(e.File, covered));
    }

    [Fact]
    public void DimensionsOverThePixelLimitAreRefusedBeforeDecoding()
    {
        var bytes = File.ReadAllBytes(Path.Combine(CorpusFolder, "rgb420_q90_64x48.jpg"));
        var ex = Assert.Throws<ImageInputException>(() => JpegDecoder.Decode(bytes, "big.jpg", maxPixels: 64 * 48 - 1));
        Assert.Contains("big.jpg", ex.Message, StringComparison.Ordinal);
        Assert.Contains("over the limit of 3071", ex.Message, StringComparison.Ordinal);
        JpegDecoder.Decode(bytes, "big.jpg", maxPixels: 64 * 48);
    }

    /// <summary>Huffman code counts that overflow their lengths (three 1-bit codes) are refused as libjpeg refuses them
    /// (JERR_BAD_HUFF_TABLE, which also rejects an all-ones code), before any code is placed in the lookup table.</summary>
    [Theory]
    [InlineData(3, 0, 3, 1)] // codes 0, 1, 2 of length 1: the third does not fit in 1 bit
    [InlineData(2, 0, 4, 1)] // codes 0 and 1 of length 1: 1 is all ones
    public void HuffmanCountsThatOverflowTheirLengthAreRefused(int length1, int length2, int length3, int length4)
    {
        var bytes = File.ReadAllBytes(Path.Combine(CorpusFolder, "rgb444_q90_64x48.jpg"));
        int dht = bytes.AsSpan().IndexOf([(byte)0xFF, (byte)0xC4]);
        // The first table is Pillow's standard luminance DC table: counts 0, 1, 5, 1, 1, ... (12 codes). The new first
        // four counts keep the total (7), so only the code assignment is wrong.
        var counts = bytes.AsSpan(dht + 5, 4);
        Assert.Equal([0, 1, 5, 1], counts.ToArray());
        new byte[] { (byte)length1, (byte)length2, (byte)length3, (byte)length4 }.CopyTo(counts);
        var ex = Assert.Throws<ImageInputException>(() => JpegDecoder.Decode(bytes, "badtable.jpg", PreprocessOptions.DefaultMaxPixels));
        Assert.Contains("badtable.jpg", ex.Message, StringComparison.Ordinal);
        Assert.Contains("bad Huffman table", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Mutated corpus files (bytes overwritten, cut, spliced; fixed seed): the decoder either returns an image
    /// of the size its header says or throws <see cref="ImageInputException"/> — nothing else, within a time bound.</summary>
    [Fact]
    public void MutatedFilesDecodeOrFailCleanly()
    {
        var sources = Manifest.Value.Where(e => Supported.Contains(e.Kind) && !e.File.StartsWith("../", StringComparison.Ordinal))
            .Select(e => File.ReadAllBytes(PathOf(e))).ToArray();
        var random = new Random(14);
        var clock = Stopwatch.StartNew();
        int decoded = 0, refused = 0, rounds = 0;
        while (rounds < 8000 && clock.Elapsed < TimeSpan.FromSeconds(4))
        {
            rounds++;
            var bytes = (byte[])sources[random.Next(sources.Length)].Clone();
            switch (random.Next(5))
            {
                case 3: // bytes of the headers before the first scan: tables, frame and scan parameters
                {
                    int headers = bytes.AsSpan().IndexOf([(byte)0xFF, (byte)0xDA]) + 12;
                    for (int i = random.Next(1, 4); i > 0; i--) bytes[random.Next(Math.Min(headers, bytes.Length))] = (byte)random.Next(256);
                    break;
                }
                case 0: // a few random bytes anywhere, headers included
                    for (int i = random.Next(1, 6); i > 0; i--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                    break;
                case 1: // cut short
                    bytes = bytes[..random.Next(bytes.Length)];
                    break;
                case 2: // a stretch of random bytes
                {
                    int at = random.Next(bytes.Length), n = Math.Min(random.Next(1, 64), bytes.Length - at);
                    random.NextBytes(bytes.AsSpan(at, n));
                    break;
                }
                default: // markers where the data was
                    for (int i = random.Next(1, 4); i > 0; i--)
                    {
                        int at = random.Next(bytes.Length - 1);
                        bytes[at] = 0xFF;
                        bytes[at + 1] = (byte)random.Next(0xC0, 0x100);
                    }
                    break;
            }
            try
            {
                var image = JpegDecoder.Decode(bytes, "fuzzed.jpg", maxPixels: 1 << 20);
                Assert.Equal((long)image.Width * image.Height * 3, image.Rgb.Length);
                decoded++;
            }
            catch (ImageInputException ex)
            {
                Assert.Contains("fuzzed.jpg", ex.Message, StringComparison.Ordinal);
                refused++;
            }
        }
        output.WriteLine($"{rounds} mutated files in {clock.Elapsed.TotalSeconds:F1} s: {decoded} decoded, {refused} refused");
        Assert.True(rounds >= 200, $"only {rounds} rounds ran");
    }
}
