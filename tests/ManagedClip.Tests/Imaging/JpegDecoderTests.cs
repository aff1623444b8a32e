using System.Diagnostics;
using System.Text.Json;
using ManagedClip.Imaging;
using ManagedClip.Imaging.Jpeg;
using ManagedClip.Kernels;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// The managed JPEG decoder against Pillow 9.4 (libjpeg-turbo 2.1.5): tests/fixtures/imaging/jpeg-corpus holds the files
/// and, in manifest.json, the SHA-256 of Pillow's Image.open(f).convert("RGB").tobytes() for each (made by
/// make_jpeg_corpus.py). Sequential and progressive Huffman files must decode to exactly those bytes, full size and with
/// Pillow's draft (reduced-size decoding) at each recorded request; the others must be refused by name.
/// </summary>
public sealed class JpegDecoderTests(ITestOutputHelper output)
{
    private static string CorpusFolder => Path.Combine(ImagingTestData.Fixtures, "jpeg-corpus");

    private sealed record Entry(string File, string Kind, int Width, int Height, string Sha256, Draft[] Drafts)
    {
        public override string ToString() => File;
    }

    /// <summary>Pillow's im.draft("RGB", (Request, Request)): the scale it chose and the image it then decoded.</summary>
    private sealed record Draft(int Request, int Scale, int Width, int Height, string Sha256);

    private static readonly Lazy<Entry[]> Manifest = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(CorpusFolder, "manifest.json")));
        return doc.RootElement.GetProperty("files").EnumerateArray().Select(e => new Entry(
            e.GetProperty("file").GetString()!, e.GetProperty("kind").GetString()!, e.GetProperty("width").GetInt32(),
            e.GetProperty("height").GetInt32(), e.GetProperty("sha256").GetString()!,
            e.GetProperty("draft").EnumerateArray().Select(d => new Draft(d.GetProperty("request").GetInt32(),
                d.GetProperty("scale").GetInt32(), d.GetProperty("width").GetInt32(), d.GetProperty("height").GetInt32(),
                d.GetProperty("sha256").GetString()!)).ToArray())).ToArray();
    });

    /// <summary>A corpus file, or a reference image under ../shared (the manifest names those from the repository root).</summary>
    private static string PathOf(Entry e) =>
        e.File.StartsWith("../shared/", StringComparison.Ordinal)
            ? Path.Combine(ImagingTestData.Shared, e.File["../shared/".Length..])
            : Path.Combine(CorpusFolder, e.File);

    /// <summary>Every file the decoder must match Pillow on, with the SIMD paths (IDCT, upsampling, colour conversion) on
    /// and forced off: the scalar twins must give Pillow's bytes too.</summary>
    public static IEnumerable<object[]> SupportedFilesOnEveryPath() =>
        Manifest.Value.Where(e => Supported.Contains(e.Kind))
            .SelectMany(e => new[] { SimdLevel.Scalar, Simd.Best }.Distinct().Select(level => new object[] { e.File, level }));

    /// <summary>The manifest's kinds the decoder must match Pillow on; every other file must be refused.</summary>
    private static readonly string[] Supported = ["baseline", "progressive", "progressive-smoothed", "cmyk"];

    private static Entry Find(string file) => Manifest.Value.Single(e => e.File == file);

    [Theory]
    [MemberData(nameof(SupportedFilesOnEveryPath))]
    public void SupportedFilesDecodeToPillowsBytes(string file, SimdLevel level)
    {
        var entry = Find(file);
        var image = JpegDecoder.Decode(File.ReadAllBytes(PathOf(entry)), file, PreprocessOptions.DefaultMaxPixels, level: level);
        Assert.Equal((entry.Width, entry.Height), (image.Width, image.Height));
        Assert.Equal(entry.Sha256, ImagingTestData.Sha256Hex(image.ToRgb()));
    }

    /// <summary>Every supported file at every draft request the manifest records (224, 336, and those giving scales 2, 4
    /// and 8 where the file allows): the scale <see cref="JpegDecoder.DraftScale"/> picks, then the scaled decode, equal
    /// to Pillow's. Not idct_extreme_64x72.jpg at 1/2 and 1/4: Pillow runs the SSE2 4x4 and 2x2 IDCTs there
    /// (jidctred-sse2.asm), which keep dequantized coefficients in 16 bits and saturate where jidctred.c, which
    /// JpegScaledIdct follows, does not; they agree for any coefficient an encoder with 8-bit tables writes, and this
    /// file's are made to overflow (a known gap, named in README).</summary>
    public static IEnumerable<object[]> DraftRequests() =>
        Manifest.Value.Where(e => Supported.Contains(e.Kind)).SelectMany(e => e.Drafts
            .Where(d => !(e.File == "idct_extreme_64x72.jpg" && d.Scale is 2 or 4))
            .Select(d => new object[] { e.File, d.Request }));

    [Theory]
    [MemberData(nameof(DraftRequests))]
    public void DraftDecodesToPillowsBytes(string file, int request)
    {
        var entry = Find(file);
        var draft = entry.Drafts.Single(d => d.Request == request);
        int scale = JpegDecoder.DraftScale(entry.Width, entry.Height, request);
        Assert.Equal(draft.Scale, scale);
        var image = JpegDecoder.Decode(File.ReadAllBytes(PathOf(entry)), file, PreprocessOptions.DefaultMaxPixels, scale);
        Assert.Equal((draft.Width, draft.Height), (image.Width, image.Height));
        Assert.Equal(draft.Sha256, ImagingTestData.Sha256Hex(image.ToRgb()));
    }

    /// <summary>DraftScale against every choice Pillow made in the corpus (refused files included), and Pillow's
    /// arithmetic on sizes the corpus does not have: the largest power of two up to 8 not above
    /// min(width / R, height / R).</summary>
    [Theory]
    [InlineData(4000, 3000, 224, 8)] // min(17, 13) = 13
    [InlineData(4000, 3000, 336, 8)] // min(11, 8) = 8
    [InlineData(4000, 3000, 448, 4)] // min(8, 6) = 6
    [InlineData(1791, 1792, 224, 4)] // min(7, 8) = 7: one pixel short of 1/8
    [InlineData(447, 5000, 224, 1)] // min(1, 22) = 1
    [InlineData(100, 100, 224, 1)] // smaller than asked: no scaling
    public void DraftScaleIsPillowsChoice(int width, int height, int request, int scale)
    {
        Assert.Equal(scale, JpegDecoder.DraftScale(width, height, request));
        Assert.All(Manifest.Value.SelectMany(e => e.Drafts.Select(d => (e, d))),
            x => Assert.Equal(x.d.Scale, JpegDecoder.DraftScale(x.e.Width, x.e.Height, x.d.Request)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(16)]
    public void ScaleDenominatorsOtherThan1248AreRejected(int scale)
    {
        var bytes = File.ReadAllBytes(Path.Combine(CorpusFolder, "rgb420_q90_64x48.jpg"));
        Assert.Throws<ArgumentOutOfRangeException>(() => JpegDecoder.Decode(bytes, "x.jpg", PreprocessOptions.DefaultMaxPixels, scale));
    }

    [Theory]
    [InlineData("rgb420_arithmetic_61x45.jpg", "arithmetic-coded JPEG is not supported")]
    public void UnsupportedFilesAreRefusedNamingTheFeature(string file, string feature)
    {
        var entry = Find(file);
        Assert.DoesNotContain(entry.Kind, Supported);
        foreach (int scale in new[] { 1, 2, 4, 8 })
        {
            var ex = Assert.Throws<ImageInputException>(() => JpegDecoder.Decode(File.ReadAllBytes(PathOf(entry)), file, PreprocessOptions.DefaultMaxPixels, scale));
            Assert.Contains(file, ex.Message, StringComparison.Ordinal);
            Assert.Contains(feature, ex.Message, StringComparison.Ordinal);
        }
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
        // A reduced-size decode is limited by the frame's size too, not by the 8x6 pixels it returns.
        ex = Assert.Throws<ImageInputException>(() => JpegDecoder.Decode(bytes, "big.jpg", maxPixels: 64 * 48 - 1, scaleDenominator: 8));
        Assert.Contains("over the limit of 3071", ex.Message, StringComparison.Ordinal);
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

    /// <summary>Mutated corpus files (bytes overwritten, cut, spliced; fixed seed), decoded at full size or scaled by a
    /// random 1/2, 1/4 or 1/8: the decoder either returns an image of the size its header says or throws
    /// <see cref="ImageInputException"/> — nothing else, within a time bound. The large files are left out, so that the
    /// rounds stay many.</summary>
    [Fact]
    public void MutatedFilesDecodeOrFailCleanly()
    {
        var sources = Manifest.Value.Where(e => Supported.Contains(e.Kind) && !e.File.StartsWith("../", StringComparison.Ordinal) && e.Width * e.Height <= 64 * 1024)
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
                var image = JpegDecoder.Decode(bytes, "fuzzed.jpg", maxPixels: 1 << 20, scaleDenominator: 1 << random.Next(4));
                Assert.Equal((long)image.Width * image.Height * image.Channels, image.Pixels.Length);
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
