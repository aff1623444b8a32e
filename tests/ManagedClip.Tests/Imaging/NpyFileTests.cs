using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using ManagedClip.Imaging;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Imaging;

/// <summary>
/// <see cref="NpyFile.Read"/> against NumPy's own verdicts (tests/fixtures/imaging/npy_header_cases.json, written by
/// make_npy_header_cases.py with numpy 1.24), its refusal of values a preprocessed tensor cannot hold, and a header fuzz.
/// </summary>
public sealed class NpyFileTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mclip-npy-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A version 1.0 file as NumPy writes it: the dict padded with spaces to a multiple of 64, ended by a newline.</summary>
    internal static byte[] Npy(string header, int dataBytes)
    {
        byte[] text = Encoding.Latin1.GetBytes(header);
        int total = 10 + text.Length + 1, padded = (total + 63) / 64 * 64;
        var file = new byte[padded + dataBytes];
        file[0] = 0x93;
        "NUMPY"u8.CopyTo(file.AsSpan(1));
        file[6] = 1; // version 1.0: a 2-byte header length follows
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(8), (ushort)(padded - 10));
        text.CopyTo(file, 10);
        file.AsSpan(10 + text.Length, padded - total).Fill((byte)' ');
        file[padded - 1] = (byte)'\n';
        return file;
    }

    private string Write(string name, byte[] bytes)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    public static IEnumerable<object[]> HeaderCases()
    {
        using var cases = TestData.ReadJson(Path.Combine(ImagingTestData.Fixtures, "npy_header_cases.json"));
        foreach (var c in cases.RootElement.GetProperty("cases").EnumerateArray())
            yield return [c.GetProperty("name").GetString()!, c.GetProperty("header").GetString()!, c.GetProperty("data_bytes").GetInt32(),
                          c.GetProperty("numpy").GetRawText()];
    }

    [Theory]
    [MemberData(nameof(HeaderCases))]
    public void HeadersGetNumPysVerdict(string name, string header, int dataBytes, string numpyVerdict)
    {
        string path = Write("case.npy", Npy(header, dataBytes));
        using var verdict = JsonDocument.Parse(numpyVerdict);
        if (verdict.RootElement.TryGetProperty("shape", out var shape))
        {
            var (data, got) = NpyFile.Read(path);
            Assert.Equal(shape.EnumerateArray().Select(d => d.GetInt32()), got);
            Assert.Equal(dataBytes / 4, data.Length);
        }
        else
        {
            var ex = Assert.Throws<ImageInputException>(() => NpyFile.Read(path));
            Assert.Contains(path, ex.Message, StringComparison.Ordinal);
            output.WriteLine($"{name}: numpy {verdict.RootElement.GetProperty("error").GetString()}; ours {ex.Message}");
        }
    }

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "Infinity")]
    [InlineData(float.NegativeInfinity, "-Infinity")]
    public void NonFiniteValuesAreRefusedNamingTheFileAndTheValue(float bad, string shown)
    {
        var data = new float[2 * 3 * 4];
        data[17] = bad;
        string path = Path.Combine(_dir, "bad.npy");
        NpyFile.Write(path, data, [2, 3, 4]);
        var ex = Assert.Throws<ImageInputException>(() => NpyFile.Read(path));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains($"{shown} at [1, 1, 1]", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Seeded mutations of a valid header's text and length fields: success or the typed error, nothing else.</summary>
    [Fact]
    public void FuzzedHeadersReadOrFailCleanly()
    {
        byte[] valid = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 96);
        string[] pieces = ["(", ")", ",", "'", "\"", ":", "{", "}", " ", "-", "0", "9", "65536", "4294967296", "99999999999999999999",
                           "True", "False", "None", "'descr'", "'shape'", "'<f4'", "'<f8'", "(0,)", "()", "\\", "\n", "\0", "\u00ff"];
        var rng = new Random(20240613);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int ok = 0, refused = 0;
        for (int n = 0; n < 3000; n++)
        {
            byte[] m = (byte[])valid.Clone();
            switch (rng.Next(5))
            {
                case 0: // overwrite header bytes (magic, version, length and dict alike)
                    for (int k = rng.Next(1, 6); k > 0; k--) m[rng.Next(64)] = (byte)rng.Next(256);
                    break;
                case 1: // splice a token into the dict
                    {
                        int at = rng.Next(10, 63);
                        byte[] piece = Encoding.Latin1.GetBytes(pieces[rng.Next(pieces.Length)]);
                        m = [.. m[..at], .. piece, .. m[at..]];
                        m = m.Length >= 64 + 96 ? [.. m[..63], .. m[(m.Length - 96 - 1)..]] : m; // keep the data block in place
                        break;
                    }
                case 2: // a random header length
                    BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(8), (ushort)rng.Next(65536));
                    break;
                case 3: // truncate anywhere
                    m = m[..rng.Next(m.Length)];
                    break;
                default: // a random shape
                    {
                        string dims = string.Join(", ", Enumerable.Range(0, rng.Next(0, 6)).Select(_ => rng.Next(3) switch
                        {
                            0 => rng.Next(0, 5).ToString(System.Globalization.CultureInfo.InvariantCulture),
                            1 => (1L << rng.Next(8, 63)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                            _ => rng.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
                        }));
                        m = Npy($"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims},), }}", rng.Next(3) == 0 ? 0 : 96);
                        break;
                    }
            }
            string path = Write($"fuzz{n % 8}.npy", m);
            try { NpyFile.Read(path); ok++; }
            catch (ImageInputException e) { refused++; Assert.Contains(path, e.Message, StringComparison.Ordinal); }
        }
        output.WriteLine($"{ok} read, {refused} refused in {watch.ElapsedMilliseconds} ms");
        Assert.True(refused > 0 && ok > 0);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20));
    }
}
