using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using ManagedClip.Tokenization;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Tokenization;

/// <summary>
/// BPE on long single words: linear-times-log work (a 100,000-character word used to take 17–23 s), and exactly the
/// tokens of OpenAI's bpe() — reproduced below as the plain rescanning loop — on long random words, overlaps like "aaa" included.
/// </summary>
public sealed class LongWordTests(ITestOutputHelper output)
{
    static readonly Lazy<(Dictionary<(string, string), int> Ranks, Dictionary<string, int> Encoder)> OpenAiVocabulary = new(LoadOpenAiVocabulary);

    static readonly TimeSpan QuadraticWouldTakeLonger = TimeSpan.FromSeconds(15);

    [Fact]
    public void HundredThousandCharacterWordIsTokenizedQuickly()
    {
        var random = new Random(13);
        string word = new(Enumerable.Range(0, 100_000).Select(_ => (char)('a' + random.Next(26))).ToArray());
        var tokenizer = ClipTokenizer.FromBpeFile(TokenizerFixtures.BpeGzPath);
        var clock = Stopwatch.StartNew();
        int[] ids = tokenizer.Encode(word);
        clock.Stop();
        output.WriteLine($"100,000-character word: {clock.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(ClipTokenizer.ContextLength, ids.Length);
        Assert.Equal(tokenizer.EndOfTextId, ids[^1]);
        // Not a speed measurement: the bound catches the quadratic merge loop (33.7 s at this length), with room for a
        // suite that runs other CPU-heavy tests beside this one on 2 cores (0.7 s alone, over 2 s among them).
        Assert.True(clock.Elapsed < QuadraticWouldTakeLonger, $"took {clock.Elapsed.TotalSeconds:F1} s");

        // A run of one letter is the worst case for the pair overlaps.
        clock.Restart();
        tokenizer.Encode(new string('a', 100_000));
        Assert.True(clock.Elapsed < QuadraticWouldTakeLonger, $"'aaa…' took {clock.Elapsed.TotalSeconds:F1} s");
    }

    public static TheoryData<string, int> Alphabets => new()
    {
        { "ab", 1 }, { "a", 2 }, { "abcdefghijklmnopqrstuvwxyz", 3 }, { "etaoinshrdlu", 4 }, { "éèßøåæœçñ", 5 }, { "aé漢字カナ한글", 6 }, { "ababababc", 7 },
    };

    [Theory, MemberData(nameof(Alphabets))]
    public void LongRandomWordsGiveTheOriginalTokens(string alphabet, int seed)
    {
        var tokenizer = ClipTokenizer.FromBpeFile(TokenizerFixtures.BpeGzPath);
        var random = new Random(seed);
        foreach (int length in new[] { 1, 2, 3, 7, 40, 300, 1500 })
        {
            string word = new(Enumerable.Range(0, length).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
            var expected = ReferenceBpe(word);
            var got = tokenizer.EncodeWithoutSpecialTokens(word);
            Assert.True(expected.SequenceEqual(got), $"word '{word}'\nexpected {string.Join(",", expected)}\nactual   {string.Join(",", got)}");
        }
    }

    [Fact]
    public void EveryWordOfTheImageNetPromptsGivesTheOriginalTokens()
    {
        var tokenizer = ClipTokenizer.FromBpeFile(TokenizerFixtures.BpeGzPath);
        var (classes, templates) = ZeroShot.ZeroShotTestData.ImageNet();
        var words = classes.Concat(templates)
            .SelectMany(text => System.Text.RegularExpressions.Regex.Split(text.ToLowerInvariant(), @"[^\p{L}]+"))
            .Where(word => word.Length > 0).Distinct().ToArray();
        Assert.True(words.Length > 1000, $"{words.Length} words");
        foreach (var word in words)
            Assert.True(ReferenceBpe(word).SequenceEqual(tokenizer.EncodeWithoutSpecialTokens(word)), $"word '{word}'");
    }

    /// <summary>OpenAI's bpe(): merge every non-overlapping occurrence (left to right) of the lowest-ranked pair, rescanning after each pass.</summary>
    static int[] ReferenceBpe(string word)
    {
        var (ranks, encoder) = OpenAiVocabulary.Value;
        var symbols = Encoding.UTF8.GetBytes(word).Select(b => ByteSymbol(b)).ToList();
        symbols[^1] += "</w>";
        while (symbols.Count > 1)
        {
            (string, string)? best = null;
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank) { bestRank = rank; best = (symbols[i], symbols[i + 1]); }
            if (best is not { } pair) break;
            var merged = new List<string>();
            for (int i = 0; i < symbols.Count; i++)
                if (i + 1 < symbols.Count && symbols[i] == pair.Item1 && symbols[i + 1] == pair.Item2) { merged.Add(pair.Item1 + pair.Item2); i++; }
                else merged.Add(symbols[i]);
            symbols = merged;
        }
        return symbols.Select(s => encoder[s]).ToArray();
    }

    static bool Printable(int b) => b is (>= 33 and <= 126) or (>= 161 and <= 172) or (>= 174 and <= 255);

    static string ByteSymbol(byte b)
    {
        int n = 0;
        for (int k = 0; k < b; k++) if (!Printable(k)) n++;
        return ((char)(Printable(b) ? b : 256 + n)).ToString();
    }

    static (Dictionary<(string, string), int>, Dictionary<string, int>) LoadOpenAiVocabulary()
    {
        using var gz = new GZipStream(File.OpenRead(TokenizerFixtures.BpeGzPath), CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        var lines = reader.ReadToEnd().Split('\n')[1..(49152 - 256 - 2 + 1)];
        var merges = lines.Select(l => l.Split(' ')).Select(p => (p[0], p[1])).ToArray();
        var bytes = Enumerable.Range(0, 256).Where(Printable).Concat(Enumerable.Range(0, 256).Where(b => !Printable(b))).Select(b => ByteSymbol((byte)b)).ToArray();
        var vocabulary = bytes.Concat(bytes.Select(s => s + "</w>")).Concat(merges.Select(m => m.Item1 + m.Item2)).ToArray();
        var encoder = new Dictionary<string, int>();
        for (int i = 0; i < vocabulary.Length; i++) encoder[vocabulary[i]] = i;
        var ranks = new Dictionary<(string, string), int>();
        for (int i = 0; i < merges.Length; i++) ranks[merges[i]] = i;
        return (ranks, encoder);
    }
}
