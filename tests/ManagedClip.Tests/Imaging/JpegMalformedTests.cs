using System.Text.Json;
using ManagedClip.Imaging;
using ManagedClip.Imaging.Jpeg;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// Malformed JPEGs against Pillow 9.4's verdicts (tests/fixtures/imaging/jpeg_malformed_cases.json, made by
/// make_jpeg_malformed_cases.py): cut files, missing or replaced end-of-image markers, trailing data, files over 64 KiB
/// cut near a block boundary, damaged restart markers, corrupt entropy data and headers. Each case is a recipe applied
/// to a fixture; where Pillow decodes, the managed decoder must return the same bytes (SHA-256 of convert("RGB")), and
/// where Pillow refuses, it must throw an <see cref="ImageInputException"/> naming the file.
/// </summary>
public sealed class JpegMalformedTests(ITestOutputHelper output)
{
    /// <summary>Pillow's decompression-bomb refusal: more than twice Image.MAX_IMAGE_PIXELS (89478485).</summary>
    private const long PillowPixelLimit = 2 * 89478485L;

    /// <param name="CKernelsVerdict">where libjpeg-turbo's AVX2 IDCT (16-bit arithmetic) gives other bytes than its C
    /// code on corrupt data whose values overflow 16 bits: the verdict with the SIMD kernels off (JSIMD_FORCENONE=1).
    /// The managed decoder follows the AVX2 IDCT (<see cref="JpegIdct"/>), so <c>Verdict</c>, Pillow's own, is what it
    /// must give; these cases show that the AVX2 semantics matter.</param>
    private sealed record Case(string Group, string Source, int Pad, (int Offset, int Removed, byte[] Inserted)[] Edits, string Verdict, string? CKernelsVerdict)
    {
        public byte[] Bytes()
        {
            var data = File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, Source)).ToList();
            // COM segments of Pad zero bytes in all right after SOI (at most 65533 a segment), as the script inserts them.
            var padding = new List<byte>();
            for (int left = Pad; left > 0; left -= 65533)
            {
                int n = Math.Min(left, 65533);
                padding.AddRange([0xFF, 0xFE, (byte)((n + 2) >> 8), (byte)(n + 2)]);
                padding.AddRange(new byte[n]);
            }
            data.InsertRange(2, padding);
            foreach (var (offset, removed, inserted) in Edits)
            {
                data.RemoveRange(offset, removed);
                data.InsertRange(offset, inserted);
            }
            return [.. data];
        }

        public string Describe() => $"{Group} ({Source}, pad {Pad}, edits {string.Join(" ", Edits.Select(e => $"{e.Offset}-{e.Removed}+{Convert.ToHexString(e.Inserted)}"))})";
    }

    private static readonly Lazy<Case[]> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "jpeg_malformed_cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c[0].GetString()!, c[1].GetString()!, c[2].GetInt32(),
            c[3].EnumerateArray().Select(e => (e[0].GetInt32(), e[1].GetInt32(), Convert.FromHexString(e[2].GetString()!))).ToArray(),
            c[4].GetString()!, c.GetArrayLength() > 5 ? c[5].GetString() : null)).ToArray();
    });

    /// <summary>Cases where the managed decoder and Pillow still differ, for reasons not found yet (corrupt data in a
    /// progressive file with restart intervals); each must still differ, so that a fix shows up here.</summary>
    private static readonly HashSet<string> KnownDifferences =
    [
        "entropy data overwritten (jpeg-corpus/rgb422_progressive_restart2_61x45.jpg, pad 0, edits 1742-1+90 575-1+55 515-1+39)",
    ];

    public static IEnumerable<object[]> Groups() => Cases.Value.Select(c => c.Group).Distinct().Select(g => new object[] { g });

    /// <summary>What the managed decoder makes of a case: the SHA-256 of its RGB bytes, or "error".</summary>
    private static string Outcome(Case c)
    {
        try
        {
            var image = JpegDecoder.Decode(c.Bytes(), "malformed.jpg", PillowPixelLimit);
            return ImagingTestData.Sha256Hex(image.ToRgb());
        }
        catch (ImageInputException ex)
        {
            Assert.Contains("malformed.jpg", ex.Message, StringComparison.Ordinal);
            return "error: " + ex.Message;
        }
    }

    [Theory]
    [MemberData(nameof(Groups))]
    public void DecodedOrRefusedAsPillowDoes(string group)
    {
        var cases = Cases.Value.Where(c => c.Group == group).ToArray();
        var wrong = new List<string>();
        foreach (var c in cases)
        {
            string got = Outcome(c), expected = c.Verdict;
            bool pillowRefuses = expected.StartsWith("error", StringComparison.Ordinal);
            bool agree = pillowRefuses ? got.StartsWith("error", StringComparison.Ordinal) : got == expected;
            if (KnownDifferences.Contains(c.Describe()))
            {
                Assert.False(agree, $"{c.Describe()} now agrees with Pillow: take it off KnownDifferences");
                output.WriteLine($"known difference: {c.Describe()}");
                continue;
            }
            if (!agree) wrong.Add($"{c.Describe()}: Pillow {expected[..Math.Min(expected.Length, 80)]}, managed {got[..Math.Min(got.Length, 120)]}");
        }
        int simdOnly = cases.Count(c => c.CKernelsVerdict is not null);
        output.WriteLine($"{group}: {cases.Length} cases, {cases.Length - wrong.Count} agree ({simdOnly} where libjpeg-turbo's C IDCT would give other bytes)");
        foreach (var w in wrong.Take(40)) output.WriteLine(w);
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {cases.Length} cases differ from Pillow:\n" + string.Join("\n", wrong.Take(20)));
    }

    /// <summary>The cut, extended and spliced files of jpeg_truncation_cases.json (make_jpeg_truncation_cases.py), which
    /// the ImageSharp pipeline's TruncationCheck gets right except where Pillow's verdict depends on how far libjpeg
    /// reads ahead: the managed decoder agrees on all of them.</summary>
    [Fact]
    public void TruncationCasesOfThePipelineAgreeWithPillow()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, "jpeg_truncation_cases.json")));
        var wrong = new List<string>();
        int count = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            count++;
            byte[] source = File.ReadAllBytes(Path.Combine(ImagingTestData.Fixtures, c.GetProperty("source").GetString()!));
            byte[] bytes = [.. source[..c.GetProperty("cut").GetInt32()], .. Convert.FromHexString(c.GetProperty("append_hex").GetString()!)];
            bool pillowDecodes = c.GetProperty("pillow").GetString() == "ok";
            bool decodes;
            try { decodes = JpegDecoder.Decode(bytes, "case.jpg", PillowPixelLimit).ToRgb().Length > 0; }
            catch (ImageInputException ex) when (ex.Message.Contains("case.jpg", StringComparison.Ordinal)) { decodes = false; }
            if (decodes != pillowDecodes) wrong.Add($"{c.GetProperty("name").GetString()}: Pillow {c.GetProperty("pillow").GetString()}");
        }
        Assert.True(count > 100, $"only {count} cases");
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void EveryGroupHasCasesPillowDecodesAndCasesItRefuses()
    {
        var refusing = Cases.Value.Where(c => c.Verdict.StartsWith("error", StringComparison.Ordinal)).Select(c => c.Group).ToHashSet();
        var decoding = Cases.Value.Where(c => !c.Verdict.StartsWith("error", StringComparison.Ordinal)).Select(c => c.Group).ToHashSet();
        Assert.Contains("YCCK (Adobe transform not 0)", decoding);
        Assert.Contains("progressive, scan cut halfway then EOI", decoding);
        Assert.DoesNotContain("YCCK (Adobe transform not 0)", refusing);
        Assert.Contains("end-of-image marker replaced by zeros", refusing);
        Assert.Contains("end-of-image marker replaced by zeros", decoding);
        Assert.Contains("over 64 KiB, end-of-image marker replaced by zeros", refusing);
        Assert.Contains("over 64 KiB, end-of-image marker replaced by zeros", decoding);
    }
}
