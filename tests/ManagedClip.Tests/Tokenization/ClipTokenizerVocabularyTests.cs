using System.IO.Compression;
using System.Text;
using ManagedClip.Tokenization;

namespace ManagedClip.Tests.Tokenization;

/// <summary>Vocabulary loading, discovery, bad files (each a <see cref="VocabularyException"/> naming the file), small custom vocabularies, threads.</summary>
public sealed class ClipTokenizerVocabularyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mclip-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text) => Write(name, Encoding.UTF8.GetBytes(text));

    private string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest)) gz.Write(data);
        return ms.ToArray();
    }

    private static byte[] OpenAiMergesBytes()
    {
        using var gz = new GZipStream(File.OpenRead(TokenizerFixtures.BpeGzPath), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    private static void AssertNames(VocabularyException e, string path) =>
        Assert.Contains(path, e.Message, StringComparison.Ordinal);

    // ------------------------------------------------------------------ formats

    [Fact]
    public void UncompressedBpeFileWorks()
    {
        var path = Write("bpe_simple_vocab_16e6.txt", OpenAiMergesBytes());
        var tok = ClipTokenizer.FromBpeFile(path);
        Assert.Equal(TokenizerFixtures.Gz.Encode("a photo of a cat"), tok.Encode("a photo of a cat"));
    }

    [Fact]
    public void SmallCustomVocabularyTakesSpecialIdsFromVocabJson()
    {
        // 512 byte symbols in map order, three merges, the specials at ids of our choosing.
        var symbols = ByteSymbols();
        var entries = new List<(string, int)>();
        int id = 0;
        foreach (var s in symbols) entries.Add((s, id++));
        foreach (var s in symbols) entries.Add((s + "</w>", id++));
        entries.Add(("ca", id++));
        entries.Add(("t</w>", -1)); // already present; placeholder removed below
        entries.RemoveAt(entries.Count - 1);
        entries.Add(("cat</w>", id++));
        entries.Add(("do", id++));
        entries.Add(("<|startoftext|>", id++));
        entries.Add(("<|endoftext|>", id++));
        var json = "{" + string.Join(",", entries.Select(e => $"\"{JsonEscape(e.Item1)}\": {e.Item2}")) + "}";
        var vocab = Write("small/vocab.json", json);
        var merges = Write("small/merges.txt", "#version: 0.2\nc a\nca t</w>\nd o\n");
        var tok = ClipTokenizer.FromVocabAndMerges(vocab, merges);
        Assert.Equal(517, tok.VocabularySize);
        Assert.Equal(515, tok.StartOfTextId);
        Assert.Equal(516, tok.EndOfTextId);
        var ids = tok.Encode("Cat dog");
        Assert.Equal(new[] { 515, 513, 514, 256 + 70 /* g</w> */, 516, 0 }, ids[..6]);
        Assert.Same(tok.GetType(), ClipTokenizer.Discover(Path.Combine(_dir, "small"), null).GetType());
        Assert.Equal(ids, ClipTokenizer.Discover(vocab, null).Encode("Cat dog"));
    }

    // ------------------------------------------------------------------ discovery

    [Fact]
    public void DiscoverFindsEachLayout()
    {
        var expected = TokenizerFixtures.Gz.Encode("a photo of a cat");
        // explicit .gz, explicit vocab.json, explicit merges.txt, explicit folder of either kind
        Assert.Equal(expected, ClipTokenizer.Discover(TokenizerFixtures.BpeGzPath, null).Encode("a photo of a cat"));
        Assert.Equal(expected, ClipTokenizer.Discover(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"), null).Encode("a photo of a cat"));
        Assert.Equal(expected, ClipTokenizer.Discover(Path.Combine(TokenizerFixtures.HfFolder, "merges.txt"), null).Encode("a photo of a cat"));
        Assert.Equal(expected, ClipTokenizer.Discover(TokenizerFixtures.HfFolder, null).Encode("a photo of a cat"));
        Assert.Equal(expected, ClipTokenizer.Discover(Path.GetDirectoryName(TokenizerFixtures.BpeGzPath), null).Encode("a photo of a cat"));
        // next to the weights: a .safetensors file (need not be opened) or the model folder
        Assert.Equal(expected, ClipTokenizer.Discover(null, Path.Combine(TokenizerFixtures.HfFolder, "model.safetensors")).Encode("a photo of a cat"));
        Assert.Equal(expected, ClipTokenizer.Discover(null, TokenizerFixtures.HfFolder).Encode("a photo of a cat"));
        var model = Path.Combine(_dir, "openai-model");
        Directory.CreateDirectory(model);
        File.Copy(TokenizerFixtures.BpeGzPath, Path.Combine(model, "bpe_simple_vocab_16e6.txt.gz"));
        Assert.Equal(expected, ClipTokenizer.Discover(null, Path.Combine(model, "ViT-B-32.safetensors")).Encode("a photo of a cat"));
        // an explicit vocabulary wins over the model folder
        Assert.Equal(expected, ClipTokenizer.Discover(TokenizerFixtures.BpeGzPath, _dir).Encode("a photo of a cat"));
    }

    [Fact]
    public void DiscoverWithoutVocabularySaysWhereItLookedAndWhereToGetIt()
    {
        var model = Path.Combine(_dir, "bare-model");
        Directory.CreateDirectory(model);
        var weights = Write("bare-model/model.safetensors", "x");
        var e = Assert.Throws<VocabularyException>(() => ClipTokenizer.Discover(null, weights));
        Assert.Contains(Path.Combine(model, "vocab.json"), e.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(model, "bpe_simple_vocab_16e6.txt.gz"), e.Message, StringComparison.Ordinal);
        Assert.Contains("merges.txt", e.Message, StringComparison.Ordinal);
        Assert.Contains("openai/CLIP", e.Message, StringComparison.Ordinal);
        Assert.Contains("ClipModelOptions.VocabularyPath", e.Message, StringComparison.Ordinal); // the library's terms, not the CLI's --vocab
        Assert.DoesNotContain("--", e.Message, StringComparison.Ordinal);

        var folder = Assert.Throws<VocabularyException>(() => ClipTokenizer.Discover(model, null));
        Assert.Contains(Path.Combine(model, "vocab.json"), folder.Message, StringComparison.Ordinal);

        var missing = Path.Combine(_dir, "nope", "bpe_simple_vocab_16e6.txt.gz");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.Discover(missing, null)), missing);
        Assert.Contains("ClipModelOptions.VocabularyPath", Assert.Throws<VocabularyException>(() => ClipTokenizer.Discover(null, null)).Message, StringComparison.Ordinal);

        var lonelyVocab = Write("lonely/vocab.json", "{}");
        var noMerges = Assert.Throws<VocabularyException>(() => ClipTokenizer.Discover(lonelyVocab, null));
        Assert.Contains(Path.Combine(_dir, "lonely", "merges.txt"), noMerges.Message, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ bad files

    [Fact]
    public void MissingFilesAreNamed()
    {
        var gz = Path.Combine(_dir, "missing.txt.gz");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(gz)), gz);
        var vocab = Path.Combine(_dir, "missing-vocab.json");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(vocab, Path.Combine(TokenizerFixtures.HfFolder, "merges.txt"))), vocab);
        var merges = Path.Combine(_dir, "missing-merges.txt");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"), merges)), merges);
    }

    [Fact]
    public void GarbageGzip()
    {
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        bytes[0] = 0x1F; bytes[1] = 0x8B; // claims to be gzip
        var path = Write("garbage.txt.gz", bytes);
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(path)), path);
    }

    [Fact]
    public void TruncatedGzip()
    {
        var full = File.ReadAllBytes(TokenizerFixtures.BpeGzPath);
        var path = Write("truncated.txt.gz", full[..(full.Length / 2)]);
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(path)), path);
    }

    [Fact]
    public void NotUtf8OrNotMerges()
    {
        var binary = Write("binary.txt", [0xFF, 0xFE, 0x00, 0x80, 0x81]);
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(binary)), binary);
        var text = Write("text.txt.gz", Gzip(Encoding.UTF8.GetBytes("hello world\nthis is not a merges file\n")));
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(text)), text);
    }

    [Fact]
    public void FewerMergesThanExpected()
    {
        var lines = Encoding.UTF8.GetString(OpenAiMergesBytes()).Split('\n');
        var gz = Write("short.txt.gz", Gzip(Encoding.UTF8.GetBytes(string.Join('\n', lines.Take(30_000)))));
        var e = Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(gz));
        AssertNames(e, gz);
        Assert.Contains("48894", e.Message, StringComparison.Ordinal);

        var hfMerges = File.ReadAllLines(Path.Combine(TokenizerFixtures.HfFolder, "merges.txt"));
        var shortMerges = Write("hf-short/merges.txt", string.Join('\n', hfMerges.Take(40_000)));
        var hf = Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"), shortMerges));
        AssertNames(hf, shortMerges);
    }

    [Fact]
    public void TruncatedMergeLine()
    {
        var lines = Encoding.UTF8.GetString(OpenAiMergesBytes()).Split('\n');
        lines[1000] = lines[1000].Split(' ')[0]; // one symbol only
        var gz = Write("cut.txt.gz", Gzip(Encoding.UTF8.GetBytes(string.Join('\n', lines))));
        var e = Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(gz));
        AssertNames(e, gz);
        Assert.Contains("line 1001", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MergesReferencingUnknownSymbols()
    {
        var lines = Encoding.UTF8.GetString(OpenAiMergesBytes()).Split('\n');
        lines[5] = "\u4E00\u4E00 zz";
        var gz = Write("unknown.txt.gz", Gzip(Encoding.UTF8.GetBytes(string.Join('\n', lines))));
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(gz)), gz);

        var hfLines = File.ReadAllLines(Path.Combine(TokenizerFixtures.HfFolder, "merges.txt"));
        hfLines[5] = "\u4E00 \u4E01";
        var merges = Write("hf-unknown/merges.txt", string.Join('\n', hfLines));
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"), merges)), merges);
    }

    [Theory]
    [InlineData("[1, 2, 3]")]
    [InlineData("\"just a string\"")]
    [InlineData("{\"a\": \"b\"}")]
    [InlineData("{\"a\": 1.5}")]
    [InlineData("{\"a\": -3}")]
    [InlineData("{\"a\": [1]}")]
    [InlineData("{\"a\": 1")]
    [InlineData("not json at all")]
    [InlineData("")]
    [InlineData("{\"a\": 1} {}")]
    public void VocabJsonThatIsNotAnObjectOfTokenToInt(string json)
    {
        var vocab = Write("bad/vocab.json", json);
        var merges = Path.Combine(TokenizerFixtures.HfFolder, "merges.txt");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(vocab, merges)), vocab);
    }

    [Fact]
    public void VocabJsonWithoutSpecialsOrByteSymbols()
    {
        var full = File.ReadAllText(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"));
        var merges = Path.Combine(TokenizerFixtures.HfFolder, "merges.txt");
        var noSpecials = Write("nospecial/vocab.json", full.Replace("\"<|startoftext|>\"", "\"<|start|>\"", StringComparison.Ordinal));
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(noSpecials, merges)), noSpecials);
        var small = Write("tiny/vocab.json", "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(small, merges)), small);
    }

    [Fact]
    public void MergesWithoutHeader()
    {
        var lines = File.ReadAllLines(Path.Combine(TokenizerFixtures.HfFolder, "merges.txt"));
        var merges = Write("nohdr/merges.txt", string.Join('\n', lines.Skip(1)));
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"), merges)), merges);
    }

    [Fact]
    public void GzipBombIsRefusedWithoutInflatingIt()
    {
        // The real merges followed by 64 MiB of blank lines: a 1.4 MB file as far as the reader of merges 1..48894 can tell.
        byte[] merges = OpenAiMergesBytes();
        using var compressed = new MemoryStream();
        using (var gz = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gz.Write(merges);
            var blank = new byte[1 << 20];
            Array.Fill(blank, (byte)'\n');
            for (int i = 0; i < 64; i++) gz.Write(blank);
        }
        var path = Write("bomb.txt.gz", compressed.ToArray());
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        AssertNames(e, path);
        Assert.Contains("16 MiB", e.Message, StringComparison.Ordinal);
        Assert.True(allocated < 64L << 20, $"{allocated >> 20} MiB allocated");
    }

    [Fact]
    public void OversizedVocabJsonOrMergesAreRefusedBeforeReading()
    {
        var padding = new string(' ', 17 << 20);
        var vocab = Write("big-vocab/vocab.json", File.ReadAllText(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json")) + padding);
        var merges = Path.Combine(TokenizerFixtures.HfFolder, "merges.txt");
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(vocab, merges)), vocab);
        var bigMerges = Write("big-merges/merges.txt", File.ReadAllText(merges) + padding.Replace(' ', '\n'));
        AssertNames(Assert.Throws<VocabularyException>(() => ClipTokenizer.FromVocabAndMerges(Path.Combine(TokenizerFixtures.HfFolder, "vocab.json"), bigMerges)), bigMerges);
    }

    [Fact]
    public void BpeFileWithoutVersionHeaderIsRefused()
    {
        var lines = Encoding.UTF8.GetString(OpenAiMergesBytes()).Split('\n');
        lines[0] = "just some words";
        var gz = Write("noheader.txt.gz", Gzip(Encoding.UTF8.GetBytes(string.Join('\n', lines))));
        var e = Assert.Throws<VocabularyException>(() => ClipTokenizer.FromBpeFile(gz));
        AssertNames(e, gz);
        Assert.Contains("#version", e.Message, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ threads

    [Fact]
    public void ConcurrentEncodingGivesIdenticalResults()
    {
        var texts = TokenizerFixtures.ReferenceCases.Concat(TokenizerFixtures.UnicodeCases).Select(c => c.Text).ToArray();
        var tok = ClipTokenizer.FromBpeFile(TokenizerFixtures.BpeGzPath); // fresh, so the threads fill the cache together
        var expected = texts.Select(t => TokenizerFixtures.Gz.Encode(t)).ToArray();
        var failures = 0;
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            var order = Enumerable.Range(0, texts.Length).OrderBy(i => (i * 7919 + worker * 104729) % texts.Length).ToArray();
            for (int round = 0; round < 3; round++)
                foreach (var i in order)
                    if (!expected[i].SequenceEqual(tok.Encode(texts[i]))) Interlocked.Increment(ref failures);
        });
        Assert.Equal(0, failures);
    }

    // ------------------------------------------------------------------ helpers

    private static List<string> ByteSymbols()
    {
        static bool Printable(int b) => b is (>= 33 and <= 126) or (>= 161 and <= 172) or (>= 174 and <= 255);
        var map = new string[256];
        int n = 0;
        for (int b = 0; b < 256; b++) map[b] = ((char)(Printable(b) ? b : 256 + n++)).ToString();
        var order = new List<string>();
        for (int b = 0; b < 256; b++) if (Printable(b)) order.Add(map[b]);
        for (int b = 0; b < 256; b++) if (!Printable(b)) order.Add(map[b]);
        return order;
    }

    private static string JsonEscape(string s) => string.Concat(s.Select(c => c is '"' or '\\' ? "\\" + c : c < 0x20 || c > 0x7E ? $"\\u{(int)c:X4}" : c.ToString()));
}
