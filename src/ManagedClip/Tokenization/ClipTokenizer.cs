using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace ManagedClip.Tokenization;

/// <summary>A text's ids for one context: <see cref="Ids"/> has the context's length, <see cref="Count"/> of them are the text
/// (start and end included) and the rest padding; <see cref="Truncated"/> when the text did not fit and was cut.</summary>
public readonly record struct TokenizedText(int[] Ids, int Count, bool Truncated);

/// <summary>
/// CLIP's byte-level BPE tokenizer, exact to OpenAI's <c>clip/simple_tokenizer.py</c> and
/// <c>clip.tokenize(text, context_length=77, truncate=True)</c> (<c>clip/simple_tokenizer.py</c>), except ftfy's mojibake repair
/// (see <see cref="Normalize"/>). Immutable after construction; <see cref="Encode"/> may be called from
/// several threads at once.
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>Tokens per encoded text, start and end tokens included (<c>context_length</c>).</summary>
    public const int ContextLength = 77;
    /// <summary>The id of <c>&lt;|startoftext|&gt;</c> in OpenAI's vocabulary.</summary>
    public const int StartOfText = 49406;
    /// <summary>The id of <c>&lt;|endoftext|&gt;</c> in OpenAI's vocabulary.</summary>
    public const int EndOfText = 49407;

    private const string StartToken = "<|startoftext|>", EndToken = "<|endoftext|>";
    private const string BpeFileName = "bpe_simple_vocab_16e6.txt.gz", VocabFileName = "vocab.json", MergesFileName = "merges.txt";
    /// <summary>OpenAI reads lines 1 … 49152−256−2 of the merges file.</summary>
    private const int OpenAiMergeCount = 49152 - 256 - 2;
    private const int MaxCacheEntries = 50_000;
    /// <summary>Longer words are not cached: real words are far shorter, and 50,000 hostile 100 kB words would hold gigabytes.</summary>
    private const int MaxCachedTokenLength = 256;

    private static readonly string[] ByteEncoder = BuildByteEncoder();
    /// <summary>The 256 byte symbols in bytes_to_unicode's iteration order (ids 0–255 of OpenAI's vocabulary).</summary>
    private static readonly string[] ByteSymbolsInMapOrder = BuildMapOrder();

    private readonly Dictionary<string, int> _encoder;
    // BPE works on symbol numbers (the encoder's entries, numbered in its order) rather than strings:
    private readonly int[] _idOfSymbol;                                  // symbol number → vocabulary id
    private readonly int[] _byteSymbol = new int[256], _lastByteSymbol = new int[256]; // byte → its symbol, without and with </w>
    private readonly Dictionary<long, (int Rank, int Merged)> _merges;  // (left << 32 | right) → the merge's rank and result
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    /// <summary>Id of <c>&lt;|startoftext|&gt;</c> in this vocabulary (49406 for OpenAI's).</summary>
    public int StartOfTextId { get; }

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c> in this vocabulary (49407 for OpenAI's).</summary>
    public int EndOfTextId { get; }

    /// <summary>Number of entries of the vocabulary (49408 for OpenAI's).</summary>
    public int VocabularySize => _encoder.Count;

    /// <summary>The file(s) the vocabulary was read from, for messages.</summary>
    public string Source { get; }

    private ClipTokenizer(Dictionary<string, int> encoder, Dictionary<(string, string), int> ranks, int sot, int eot, string source)
    {
        _encoder = encoder;
        var numbers = new Dictionary<string, int>(encoder.Count, StringComparer.Ordinal);
        _idOfSymbol = new int[encoder.Count];
        foreach (var (symbol, id) in encoder) { _idOfSymbol[numbers.Count] = id; numbers.Add(symbol, numbers.Count); }
        for (int b = 0; b < 256; b++) { _byteSymbol[b] = numbers[ByteEncoder[b]]; _lastByteSymbol[b] = numbers[ByteEncoder[b] + "</w>"]; }
        // Both loaders check that every merge's parts and result are in the vocabulary.
        _merges = new Dictionary<long, (int, int)>(ranks.Count);
        foreach (var ((a, b), rank) in ranks) _merges[PairKey(numbers[a], numbers[b])] = (rank, numbers[a + b]);
        StartOfTextId = sot;
        EndOfTextId = eot;
        Source = source;
    }

    // ------------------------------------------------------------------ loading

    /// <summary>Reads OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c> (gzip, recognised by its magic bytes) or the same file uncompressed.
    /// Uses merge lines 1 … 48894 as OpenAI does; SOT/EOT are ids len(merges)+512 and +1.</summary>
    public static ClipTokenizer FromBpeFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var text = ReadText(path, allowGzip: true);
        var lines = text.Split('\n');
        // OpenAI's first line is '"bpe_simple_vocab_16e6.txt#version: 0.2'; it is skipped, but a file without it is something else.
        if (!lines[0].Contains("#version", StringComparison.Ordinal))
            throw new VocabularyException($"BPE vocabulary '{path}' does not start with a '#version' header line: it is not a BPE merges list. {WhereToGetIt}");
        if (lines.Length - 1 < OpenAiMergeCount)
            throw new VocabularyException($"BPE vocabulary '{path}' is truncated: it holds {Math.Max(0, lines.Length - 1)} merge lines, OpenAI's format needs {OpenAiMergeCount} after the header line.");
        var merges = ParseMerges(lines, 1, OpenAiMergeCount, path);

        // vocab = byte symbols (map order) + the same with </w> + one token per merge + specials; id = position,
        // and a repeated token keeps its last position, as dict(zip(vocab, range(len(vocab)))) does.
        var encoder = new Dictionary<string, int>(OpenAiMergeCount + 514, StringComparer.Ordinal);
        int id = 0;
        foreach (var s in ByteSymbolsInMapOrder) encoder[s] = id++;
        foreach (var s in ByteSymbolsInMapOrder) encoder[s + "</w>"] = id++;
        foreach (var (a, b) in merges) encoder[a + b] = id++;
        int sot = id++, eot = id++;
        encoder[StartToken] = sot;
        encoder[EndToken] = eot;
        return new ClipTokenizer(encoder, BuildRanks(merges, encoder, path), sot, eot, path);
    }

    /// <summary>Reads a Hugging Face <c>vocab.json</c> (object token → id) and <c>merges.txt</c> (<c>#version</c> header, then one
    /// "a b" merge a line). The vocabulary needs the 512 byte symbols, <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c>, and
    /// vocabulary size − 514 merges (48894 for OpenAI's); vocabularies of other sizes in this format work the same way.</summary>
    public static ClipTokenizer FromVocabAndMerges(string vocabJsonPath, string mergesPath)
    {
        ArgumentNullException.ThrowIfNull(vocabJsonPath);
        ArgumentNullException.ThrowIfNull(mergesPath);
        var encoder = ReadVocabJson(vocabJsonPath);
        foreach (var s in ByteSymbolsInMapOrder)
        {
            if (!encoder.ContainsKey(s) || !encoder.ContainsKey(s + "</w>"))
                throw new VocabularyException($"Vocabulary '{vocabJsonPath}' lacks the byte symbol '{s}' (or '{s}</w>'); a CLIP vocabulary holds all 512 byte symbols.");
        }
        if (!encoder.TryGetValue(StartToken, out var sot) || !encoder.TryGetValue(EndToken, out var eot))
            throw new VocabularyException($"Vocabulary '{vocabJsonPath}' has no '{StartToken}' or '{EndToken}' entry.");

        var lines = ReadText(mergesPath, allowGzip: false).Trim().Split('\n');
        if (lines.Length == 0 || !lines[0].StartsWith("#version", StringComparison.Ordinal))
            throw new VocabularyException($"Merges file '{mergesPath}' does not start with a '#version' header line.");
        int expected = encoder.Count - 514;
        if (expected < 0 || lines.Length - 1 < expected)
            throw new VocabularyException($"Merges file '{mergesPath}' holds {lines.Length - 1} merges; the {encoder.Count}-entry vocabulary '{vocabJsonPath}' needs {Math.Max(0, expected)}.");
        var merges = ParseMerges(lines, 1, expected, mergesPath);
        foreach (var (a, b) in merges)
        {
            if (!encoder.ContainsKey(a + b))
                throw new VocabularyException($"Merges file '{mergesPath}' merges '{a} {b}' into '{a + b}', which vocabulary '{vocabJsonPath}' does not hold.");
        }
        return new ClipTokenizer(encoder, BuildRanks(merges, encoder, mergesPath), sot, eot, vocabJsonPath);
    }

    /// <summary>
    /// Finds the vocabulary: <paramref name="vocabPath"/> if given (a .gz/.txt BPE file, a vocab.json with merges.txt beside it, or a
    /// folder holding either); otherwise vocab.json + merges.txt or bpe_simple_vocab_16e6.txt.gz next to the weights
    /// (<paramref name="modelPath"/> is a .safetensors file or a model folder).
    /// </summary>
    public static ClipTokenizer Discover(string? vocabPath, string? modelPath)
    {
        if (!string.IsNullOrEmpty(vocabPath))
        {
            if (Directory.Exists(vocabPath))
                return FromFolder(vocabPath) ?? throw NotFound(vocabPath, "the folder given as vocabulary");
            if (!File.Exists(vocabPath))
                throw new VocabularyException($"Vocabulary file '{vocabPath}' does not exist. {WhereToGetIt}");
            var name = Path.GetFileName(vocabPath);
            var dir = Path.GetDirectoryName(Path.GetFullPath(vocabPath))!;
            if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            {
                var merges = Path.Combine(dir, MergesFileName);
                if (!File.Exists(merges))
                    throw new VocabularyException($"Vocabulary '{vocabPath}' needs '{MergesFileName}' beside it, but '{merges}' does not exist. {WhereToGetIt}");
                return FromVocabAndMerges(vocabPath, merges);
            }
            if (name.Equals(MergesFileName, StringComparison.OrdinalIgnoreCase) && File.Exists(Path.Combine(dir, VocabFileName)))
                return FromVocabAndMerges(Path.Combine(dir, VocabFileName), vocabPath);
            return FromBpeFile(vocabPath);
        }
        if (!string.IsNullOrEmpty(modelPath))
        {
            string dir = Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
            return FromFolder(dir) ?? throw NotFound(dir, $"the folder of the weights '{modelPath}'");
        }
        throw new VocabularyException($"No tokenizer vocabulary: neither a vocabulary path nor a model path was given. {WhereToGetIt}");
    }

    private const string WhereToGetIt =
        "Use the Hugging Face model folder's vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz from the openai/CLIP repository (clip/bpe_simple_vocab_16e6.txt.gz), and give its path as the vocabulary path (ClipModelOptions.VocabularyPath).";

    private static ClipTokenizer? FromFolder(string dir)
    {
        var vocab = Path.Combine(dir, VocabFileName);
        var merges = Path.Combine(dir, MergesFileName);
        if (File.Exists(vocab) && File.Exists(merges)) return FromVocabAndMerges(vocab, merges);
        var bpe = Path.Combine(dir, BpeFileName);
        if (File.Exists(bpe)) return FromBpeFile(bpe);
        var plain = Path.Combine(dir, "bpe_simple_vocab_16e6.txt");
        if (File.Exists(plain)) return FromBpeFile(plain);
        return null;
    }

    private static VocabularyException NotFound(string dir, string what) => new(
        $"No tokenizer vocabulary found in {what}: looked for '{Path.Combine(dir, VocabFileName)}' with '{MergesFileName}' beside it, " +
        $"and for '{Path.Combine(dir, BpeFileName)}'. {WhereToGetIt}");

    /// <summary>
    /// The most a vocabulary file may hold, on disk or inflated: OpenAI's BPE file inflates to 3.2 MB, vocab.json is 0.9 MB and
    /// merges.txt 0.5 MB, so anything past this is not a CLIP vocabulary (a gzip bomb inflated to gigabytes before it was refused).
    /// </summary>
    private const int MaxVocabularyFileBytes = 16 << 20;

    private static string ReadText(string path, bool allowGzip)
    {
        var bytes = ReadBounded(path, allowGzip);
        try { return new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException e) { throw new VocabularyException($"Vocabulary file '{path}' is not valid UTF-8: {e.Message}", e); }
    }

    /// <summary>The file's bytes (inflated when it is gzip and <paramref name="allowGzip"/>), refused past <see cref="MaxVocabularyFileBytes"/>
    /// before reading or inflating any further.</summary>
    private static byte[] ReadBounded(string path, bool allowGzip)
    {
        try
        {
            if (new FileInfo(path) is { Exists: true, Length: > MaxVocabularyFileBytes } big)
                throw TooBig(path, $"is {big.Length / (1 << 20)} MiB");
            var bytes = File.ReadAllBytes(path);
            if (!allowGzip || bytes.Length < 2 || bytes[0] != 0x1F || bytes[1] != 0x8B) return bytes;

            using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            var inflated = new byte[MaxVocabularyFileBytes + 1];
            int length = 0, read;
            while (length < inflated.Length && (read = gz.Read(inflated, length, inflated.Length - length)) > 0) length += read;
            if (length > MaxVocabularyFileBytes) throw TooBig(path, $"decompresses to more than {MaxVocabularyFileBytes >> 20} MiB");
            var data = inflated.AsSpan(0, length);
            // GZipStream returns what it could decode from a cut file without complaint (Python's gzip raises EOFError):
            // check the trailer, CRC-32 and length of the (single-member) stream.
            if (bytes.Length < 18
                || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)) != (uint)length
                || BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 8)) != Crc32(data))
                throw new VocabularyException($"Vocabulary file '{path}' is truncated or corrupt: its gzip trailer does not match the decompressed data.");
            return data.ToArray();
        }
        catch (FileNotFoundException e) { throw new VocabularyException($"Vocabulary file '{path}' does not exist. {WhereToGetIt}", e); }
        catch (DirectoryNotFoundException e) { throw new VocabularyException($"Vocabulary file '{path}' does not exist. {WhereToGetIt}", e); }
        catch (InvalidDataException e) { throw new VocabularyException($"Vocabulary file '{path}' is not a readable gzip file: {e.Message}", e); }
        catch (IOException e) { throw new VocabularyException($"Vocabulary file '{path}' could not be read: {e.Message}", e); }
        catch (UnauthorizedAccessException e) { throw new VocabularyException($"Vocabulary file '{path}' could not be read: {e.Message}", e); }
    }

    private static VocabularyException TooBig(string path, string what) => new(
        $"Vocabulary file '{path}' {what}: a CLIP vocabulary is a few MB, and files over {MaxVocabularyFileBytes >> 20} MiB are refused. {WhereToGetIt}");

    private static List<(string, string)> ParseMerges(string[] lines, int first, int count, string path)
    {
        var merges = new List<(string, string)>(count);
        for (int i = first; i < first + count; i++)
        {
            var parts = SplitPythonWhitespace(lines[i]);
            if (parts.Count != 2)
                throw new VocabularyException($"Merges in '{path}' are malformed at line {i + 1}: expected two symbols separated by a space, found '{Shorten(lines[i])}'.");
            merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    private static Dictionary<(string, string), int> BuildRanks(List<(string, string)> merges, Dictionary<string, int> encoder, string path)
    {
        var ranks = new Dictionary<(string, string), int>(merges.Count);
        for (int i = 0; i < merges.Count; i++)
        {
            var (a, b) = merges[i];
            if (!encoder.ContainsKey(a) || !encoder.ContainsKey(b))
                throw new VocabularyException($"Merges in '{path}' are malformed at merge {i + 1} ('{a} {b}'): it uses a symbol that is neither a byte symbol nor the result of a merge.");
            ranks[(a, b)] = i; // dict(zip(merges, range(len(merges)))): a repeated pair keeps its last rank
        }
        return ranks;
    }

    private static Dictionary<string, int> ReadVocabJson(string path)
    {
        var bytes = ReadBounded(path, allowGzip: false);
        var encoder = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw new VocabularyException($"Vocabulary '{path}' is not a JSON object of token → id.");
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndObject) break;
                var token = reader.GetString()!; // a property name inside an object
                if (!reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var id) || id < 0)
                    throw new VocabularyException($"Vocabulary '{path}' maps '{Shorten(token)}' to something other than a non-negative integer id.");
                encoder[token] = id;
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                throw new VocabularyException($"Vocabulary '{path}' has content after its JSON object.");
        }
        catch (JsonException e) { throw new VocabularyException($"Vocabulary '{path}' is not valid JSON: {e.Message}", e); }
        catch (InvalidOperationException e) { throw new VocabularyException($"Vocabulary '{path}' is not a JSON object of token → id: {e.Message}", e); }
        return encoder;
    }

    // ------------------------------------------------------------------ encoding

    /// <summary>The normalization OpenAI applies before pre-tokenization (<c>simple_tokenizer.py basic_clean, whitespace_clean</c>): ftfy (without mojibake repair), html.unescape twice,
    /// strip, whitespace collapse, Python lower-casing.</summary>
    public static string Normalize(string text) => TextNormalizer.Normalize(text);

    /// <summary>77 ids: SOT, the BPE ids, EOT, zero padding. Over-long texts keep the first 77 ids with the last set to EOT
    /// (OpenAI's <c>truncate=True</c>).</summary>
    public int[] Encode(string text) => Tokenize(text, ContextLength).Ids;

    /// <summary>
    /// A text for a context of <paramref name="contextLength"/>, as <c>clip.tokenize(text, context_length, truncate=True)</c>: SOT, the
    /// BPE ids, EOT, zero padding. A text longer than the context keeps its first ids with the last set to EOT and is marked
    /// <see cref="TokenizedText.Truncated"/> (callers that refuse such a text check that); the words past the context are not tokenized.
    /// </summary>
    public TokenizedText Tokenize(string text, int contextLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        var bpe = EncodeCore(text, contextLength - 2);
        var ids = new int[contextLength];
        ids[0] = StartOfTextId;
        int n = Math.Min(bpe.Count, contextLength - 2);
        bpe.CopyTo(0, ids, 1, n);
        ids[n + 1] = EndOfTextId;
        return new TokenizedText(ids, n + 2, bpe.Count > n);
    }

    /// <summary>The BPE ids of the text, without SOT/EOT, padding or truncation; a text fits the context when this has at most 75 ids.</summary>
    public IReadOnlyList<int> EncodeWithoutSpecialTokens(string text) => EncodeCore(text, int.MaxValue);

    /// <summary>The BPE ids of the words of the text, stopping after the word that takes them past <paramref name="wanted"/>.</summary>
    private List<int> EncodeCore(string text, int wanted)
    {
        ArgumentNullException.ThrowIfNull(text);
        var cps = TextNormalizer.NormalizeToCodePoints(text);
        var ids = new List<int>();
        foreach (var (start, length) in PreTokenizer.Split(cps))
        {
            var token = TextNormalizer.ToString(cps.GetRange(start, length));
            ids.AddRange(TokenIds(token));
            if (ids.Count > wanted) break;
        }
        return ids;
    }

    private int[] TokenIds(string token)
    {
        if (token == StartToken) return [StartOfTextId];
        if (token == EndToken) return [EndOfTextId];
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var ids = Bpe(token);
        if (token.Length > MaxCachedTokenLength) return ids;
        if (_cache.Count >= MaxCacheEntries) _cache.Clear();
        _cache.TryAdd(token, ids);
        return ids;
    }

    /// <summary>
    /// <c>SimpleTokenizer.bpe</c>: UTF-8 bytes → byte symbols, &lt;/w&gt; on the last, then repeatedly merge every non-overlapping occurrence
    /// (left to right) of the lowest-ranked adjacent pair. OpenAI rescans every pair after each merge (quadratic: a
    /// 100,000-character word took 20 s); here the symbols are a linked list and the candidate pairs sit in a min-heap
    /// keyed by (rank, position), stale entries skipped when popped, so a word of n bytes costs O(n log n). All
    /// occurrences of one rank are merged before any pair those merges create, as OpenAI's one pass over the word does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a long word's loop would otherwise start in unoptimized code
    private int[] Bpe(string token)
    {
        var bytes = Encoding.UTF8.GetBytes(token);
        int n = bytes.Length;
        var symbols = new int[n];
        var next = new int[n];      // index of the next live symbol, -1 at the end
        var previous = new int[n];  // index of the previous live symbol, -1 at the start
        var alive = new bool[n];    // false once merged into its left neighbour
        for (int i = 0; i < n; i++)
        {
            symbols[i] = i + 1 < n ? _byteSymbol[bytes[i]] : _lastByteSymbol[bytes[i]];
            next[i] = i + 1 < n ? i + 1 : -1;
            previous[i] = i - 1;
            alive[i] = true;
        }

        // Priority (rank << 32 | left index): the lowest rank first, and within a rank the leftmost pair first.
        var candidates = new PriorityQueue<int, long>();
        void Consider(int left)
        {
            int right = next[left];
            if (right >= 0 && _merges.TryGetValue(PairKey(symbols[left], symbols[right]), out var merge))
                candidates.Enqueue(left, ((long)merge.Rank << 32) | (uint)left);
        }
        for (int i = 0; i + 1 < n; i++) Consider(i);

        var sameRank = new List<int>();
        int count = n;
        while (count > 1 && candidates.TryPeek(out _, out long top))
        {
            // Every entry of this rank is the same pair (ranks are unique); take them all before merging, in position order,
            // so that the pairs the merges create wait for the next round, as in OpenAI's pass over the word.
            int rank = (int)(top >> 32);
            sameRank.Clear();
            while (candidates.TryPeek(out int left, out long priority) && (int)(priority >> 32) == rank) { candidates.Dequeue(); sameRank.Add(left); }
            foreach (int left in sameRank)
            {
                // Stale when the left symbol was merged away, or either symbol has changed since the entry was made.
                int right = alive[left] ? next[left] : -1;
                if (right < 0 || !_merges.TryGetValue(PairKey(symbols[left], symbols[right]), out var merge) || merge.Rank != rank) continue;
                symbols[left] = merge.Merged;
                alive[right] = false;
                next[left] = next[right];
                if (next[left] >= 0) previous[next[left]] = left;
                count--;
                if (previous[left] >= 0) Consider(previous[left]);
                Consider(left);
            }
        }

        var ids = new int[count];
        for (int i = 0, k = 0; i >= 0; i = next[i], k++) ids[k] = _idOfSymbol[symbols[i]];
        return ids;
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    // ------------------------------------------------------------------ helpers

    /// <summary><c>simple_tokenizer.py bytes_to_unicode</c>: printable bytes map to themselves, the other 68 to U+0100 … U+0143 in byte order.</summary>
    private static string[] BuildByteEncoder()
    {
        var map = new string[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= 33 and <= 126) or (>= 161 and <= 172) or (>= 174 and <= 255);
            map[b] = ((char)(printable ? b : 256 + n++)).ToString();
        }
        return map;
    }

    private static string[] BuildMapOrder()
    {
        var order = new List<string>(256);
        for (int b = 0; b < 256; b++)
            if (b is (>= 33 and <= 126) or (>= 161 and <= 172) or (>= 174 and <= 255)) order.Add(ByteEncoder[b]);
        for (int b = 0; b < 256; b++)
            if (!(b is (>= 33 and <= 126) or (>= 161 and <= 172) or (>= 174 and <= 255))) order.Add(ByteEncoder[b]);
        return [.. order];
    }

    private static List<string> SplitPythonWhitespace(string line)
    {
        var parts = new List<string>(2);
        var cps = TextNormalizer.ToCodePoints(line);
        int i = 0;
        while (i < cps.Count)
        {
            while (i < cps.Count && UnicodeData.IsPythonWhitespace(cps[i])) i++;
            int start = i;
            while (i < cps.Count && !UnicodeData.IsPythonWhitespace(cps[i])) i++;
            if (i > start) parts.Add(TextNormalizer.ToString(cps.GetRange(start, i - start)));
        }
        return parts;
    }

    private static readonly uint[] Crc32Table = BuildCrc32Table();

    private static uint[] BuildCrc32Table()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = Crc32Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
