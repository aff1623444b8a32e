using ManagedClip.Search;

namespace ManagedClip.Tests.Search;

/// <summary>Exact search against a double-precision brute force, the file format's round trip, and damaged files.</summary>
public sealed class EmbeddingIndexTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-index-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static (EmbeddingIndex Index, float[][] Raw) RandomIndex(int count, int dim, int seed)
    {
        var random = new Random(seed);
        var index = new EmbeddingIndex(SearchTestData.Fingerprint(seed), dim, "/models/m.safetensors", "/models/vocab.txt.gz");
        var raw = new float[count][];
        for (int i = 0; i < count; i++)
        {
            raw[i] = SearchTestData.RandomVector(random, dim);
            // Raw feature scales differ from row to row; the index keeps directions.
            for (int k = 0; k < dim; k++) raw[i][k] *= 0.5f + i % 7;
            index.Add(new IndexEntry($"/photos/{i:D5}-ünïcode.jpg", 1000 + i, 638_000_000_000_000_000 + i), raw[i]);
        }
        return (index, raw);
    }

    [Theory]
    [InlineData(1, 5)]
    [InlineData(10, 3000)]
    [InlineData(100, 3000)]
    [InlineData(3000, 3000)]
    [InlineData(5000, 3000)]
    public void RankingEqualsTheExactCosineRanking(int top, int count)
    {
        var (index, raw) = RandomIndex(count, 64, seed: 7);
        var random = new Random(99);
        for (int q = 0; q < 3; q++)
        {
            var query = SearchTestData.RandomVector(random, 64);
            var exactScores = Enumerable.Range(0, count).Select(i => SearchTestData.Cosine(raw[i], query)).ToArray();
            var exact = Enumerable.Range(0, count).OrderByDescending(i => exactScores[i]).ThenBy(i => i).Take(top).ToArray();
            var hits = index.Search(query, top);
            Assert.Equal(exact.Length, hits.Length);
            Assert.Equal(Enumerable.Range(1, exact.Length), hits.Select(h => h.Rank));
            Assert.Equal(hits.Length, hits.Select(h => h.EntryIndex).Distinct().Count());
            // The exact (double) ranking, up to pairs closer than float rounding (1e-6 in cosine), which may come in either order.
            const double Rounding = 1e-6;
            int swapped = 0;
            for (int r = 0; r < hits.Length; r++)
            {
                Assert.Equal(index.Entries[hits[r].EntryIndex].Path, hits[r].Path);
                Assert.Equal(exactScores[hits[r].EntryIndex], hits[r].Score, 1e-6);
                Assert.True(Math.Abs(exactScores[hits[r].EntryIndex] - exactScores[exact[r]]) <= Rounding, $"rank {r + 1}: got entry {hits[r].EntryIndex}, exact ranking has {exact[r]}");
                if (hits[r].EntryIndex != exact[r]) swapped++;
            }
            Assert.True(swapped <= 2 * hits.Length / 100 + 2, $"{swapped} near-ties out of order");
            // Nothing left out scores above the last hit.
            double last = exactScores[hits[^1].EntryIndex];
            var kept = hits.Select(h => h.EntryIndex).ToHashSet();
            Assert.All(Enumerable.Range(0, count).Where(i => !kept.Contains(i)), i => Assert.True(exactScores[i] <= last + Rounding));
        }
    }

    [Fact]
    public void TiesGoToTheEarlierEntry()
    {
        var index = new EmbeddingIndex(SearchTestData.Fingerprint(1), 4, "m");
        for (int i = 0; i < 10; i++) index.Add(new IndexEntry($"/{i}", 1, 1), i % 2 == 0 ? [1, 0, 0, 0] : [0, 1, 0, 0]);
        var hits = index.Search([1, 0, 0, 0], 3);
        Assert.Equal([0, 2, 4], hits.Select(h => h.EntryIndex));
        Assert.Empty(new EmbeddingIndex(SearchTestData.Fingerprint(1), 4, "m").Search([1, 0, 0, 0], 3));
    }

    [Fact]
    public void SavedIndexReadsBackExactly()
    {
        var (index, _) = RandomIndex(500, 48, seed: 3);
        string path = Path.Combine(_folder, "a.mcidx");
        index.Save(path);
        var loaded = EmbeddingIndex.Load(path);
        Assert.Equal(index.Fingerprint, loaded.Fingerprint);
        Assert.Equal(48, loaded.EmbedDim);
        Assert.Equal("/models/m.safetensors", loaded.ModelPath);
        Assert.Equal("/models/vocab.txt.gz", loaded.VocabularyPath);
        Assert.Equal(index.Entries, loaded.Entries);
        Assert.Equal(index.Embeddings.ToArray(), loaded.Embeddings.ToArray());
        for (int i = 0; i < 500; i++) Assert.Equal(1.0, Math.Sqrt(loaded.EmbeddingOf(i).ToArray().Sum(x => (double)x * x)), 5);

        // Layout as documented: magic, version, dim, count, fingerprint.
        var bytes = File.ReadAllBytes(path);
        Assert.Equal("MCLIPIDX"u8.ToArray(), bytes[..8]);
        Assert.Equal(1u, BitConverter.ToUInt32(bytes, 8));
        Assert.Equal(48u, BitConverter.ToUInt32(bytes, 12));
        Assert.Equal(500ul, BitConverter.ToUInt64(bytes, 16));
        Assert.Equal(index.Fingerprint, Convert.ToHexStringLower(bytes.AsSpan(24, 32)));

        // An empty index is a valid file too; saving again replaces the file and leaves no temporary behind.
        new EmbeddingIndex(SearchTestData.Fingerprint(2), 8, "m").Save(path);
        Assert.Equal(0, EmbeddingIndex.Load(path).Count);
        Assert.Equal(["a.mcidx"], Directory.GetFiles(_folder).Select(Path.GetFileName));
    }

    [Fact]
    public void DamagedOrForeignFilesAreClearErrors()
    {
        var (index, _) = RandomIndex(50, 16, seed: 5);
        string good = Path.Combine(_folder, "good.mcidx");
        index.Save(good);
        var bytes = File.ReadAllBytes(good);
        string Write(string name, byte[] content) { string p = Path.Combine(_folder, name); File.WriteAllBytes(p, content); return p; }
        string Error(string path) => Assert.Throws<IndexException>(() => EmbeddingIndex.Load(path)).Message;

        Assert.Contains("no such index file (ImageIndexer.Update builds one", Error(Path.Combine(_folder, "missing.mcidx"))); // the library's terms, not the CLI's
        Assert.Contains("is a folder", Error(_folder));
        Assert.Contains("not a ManagedClip index", Error(Write("empty", [])));
        Assert.Contains("not a ManagedClip index", Error(Write("text", "hello, this is not an index"u8.ToArray())));
        foreach (int cut in new[] { 9, 60, 100, bytes.Length / 2, bytes.Length - 9, bytes.Length - 1 })
            Assert.Contains("damaged", Error(Write($"cut{cut}", bytes[..cut])));
        Assert.DoesNotContain("managedclip index", Error(Write("cut60", bytes[..60])), StringComparison.Ordinal);
        var flipped = bytes.ToArray();
        flipped[bytes.Length / 2] ^= 1;
        Assert.Contains("checksum mismatch", Error(Write("flipped", flipped)));
        var future = bytes.ToArray();
        future[8] = 2;
        Assert.Contains("version 2 is not supported", Error(Write("future", future)));
        var huge = bytes.ToArray();
        BitConverter.GetBytes(ulong.MaxValue / 2).CopyTo(huge, 16);
        Assert.Contains("cannot fit", Error(Write("huge", huge)));
        Assert.Equal(50, EmbeddingIndex.Load(good).Count);
    }

    /// <summary>
    /// Fuzzed index files (1,000 rounds of a real one with flipped bits, extreme length and count fields, cut, extended or spliced, half of
    /// them with the checksum made valid again so the parsing behind it is reached): each loads or is an IndexException
    /// naming the file, and loading never allocates more than a constant plus a multiple of the file's size.
    /// </summary>
    [Fact]
    public void FuzzedIndexFilesLoadOrAreIndexErrorsWithBoundedMemory()
    {
        var (index, _) = RandomIndex(20, 16, seed: 11);
        string good = Path.Combine(_folder, "good.mcidx"), path = Path.Combine(_folder, "fuzzed.mcidx");
        index.Save(good);
        var original = File.ReadAllBytes(good);
        int modelPathLength = BitConverter.ToInt32(original, 56), vocabularyPathLength = BitConverter.ToInt32(original, 60 + modelPathLength);
        int entries = 64 + modelPathLength + vocabularyPathLength + 20 * 16 * 4;
        // Where the length and count fields are: dim, count, the two path lengths, the first and last entry's path length.
        int[] fields = [12, 16, 56, 60 + modelPathLength, entries + 16, original.Length - 8 - "/photos/00019-ünïcode.jpg"u8.Length - 4];
        Assert.Equal((uint)"/photos/00000-ünïcode.jpg"u8.Length, BitConverter.ToUInt32(original, entries + 16));
        Assert.Equal((uint)"/photos/00019-ünïcode.jpg"u8.Length, BitConverter.ToUInt32(original, fields[^1]));
        ulong[] extremes = [0, 1, 255, 1 << 16, (1 << 16) + 1, int.MaxValue, 1u << 31, uint.MaxValue, 1ul << 60, long.MaxValue, ulong.MaxValue];
        var random = new Random(20261213);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int loaded = 0, refused = 0;
        for (int round = 0; round < 1000; round++)
        {
            var bytes = original.ToList();
            string mutation;
            switch (round < fields.Length * extremes.Length ? -1 : random.Next(5))
            {
                case -1: // every extreme in every field, checksum valid: the count 2^60 must not allocate
                    int field = fields[round / extremes.Length];
                    ulong value = extremes[round % extremes.Length];
                    var width = field == 16 ? 8 : 4;
                    for (int b = 0; b < width; b++) bytes[field + b] = (byte)(value >> (8 * b));
                    mutation = $"field at {field} = {value}";
                    break;
                case 0:
                    int flips = random.Next(1, 9);
                    for (int f = 0; f < flips; f++) { int at = random.Next(bytes.Count); bytes[at] ^= (byte)(1 << random.Next(8)); }
                    mutation = $"{flips} bits flipped";
                    break;
                case 1:
                    int offset = random.Next(bytes.Count - 4);
                    ulong extreme = extremes[random.Next(extremes.Length)];
                    for (int b = 0; b < 4; b++) bytes[offset + b] = (byte)(extreme >> (8 * b));
                    mutation = $"u32 at {offset} = {(uint)extreme}";
                    break;
                case 2:
                    int cut = random.Next(bytes.Count);
                    bytes.RemoveRange(cut, bytes.Count - cut);
                    mutation = $"cut to {cut} bytes";
                    break;
                case 3:
                    int extra = random.Next(1, 5000);
                    for (int b = 0; b < extra; b++) bytes.Add((byte)random.Next(256));
                    mutation = $"{extra} bytes appended";
                    break;
                default:
                    int start = random.Next(bytes.Count), length = random.Next(Math.Min(200, bytes.Count - start) + 1);
                    if (random.Next(2) == 0) bytes.RemoveRange(start, length);
                    else bytes.InsertRange(start, Enumerable.Range(0, length).Select(_ => (byte)random.Next(256)));
                    mutation = $"{length} bytes removed or inserted at {start}";
                    break;
            }
            var file = bytes.ToArray();
            if ((round < fields.Length * extremes.Length || random.Next(2) == 0) && file.Length >= 16)
            {
                var checksum = new IndexChecksum();
                checksum.Append(file.AsSpan(0, file.Length - 8));
                BitConverter.GetBytes(checksum.Finish()).CopyTo(file, file.Length - 8);
                mutation += ", checksum valid";
            }
            File.WriteAllBytes(path, file);

            long before = GC.GetAllocatedBytesForCurrentThread();
            try { EmbeddingIndex.Load(path); loaded++; }
            catch (IndexException e) { Assert.Contains(path, e.Message); refused++; }
            catch (Exception e) { Assert.Fail($"round {round} ({mutation}): {e.GetType().Name}: {e.Message}"); }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < (8 << 20) + 16L * file.Length, $"round {round} ({mutation}): {allocated} bytes allocated to load {file.Length} bytes");
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"{clock.Elapsed.TotalSeconds:0.0} s"); // a hang detector: alone it takes ~5 s on the 2-core machine
        Assert.True(loaded > 0 && refused > 0, $"{loaded} loaded, {refused} refused");
    }

    [Fact]
    public void ALeftoverTemporaryFileFromAKilledWriterIsHarmlessAndCleanedUp()
    {
        var (index, _) = RandomIndex(20, 8, seed: 9);
        string path = Path.Combine(_folder, "i.mcidx");
        index.Save(path);
        // What a writer killed mid-write leaves: a partial temporary file named after a process that no longer runs.
        string stale = Path.Combine(_folder, $".i.mcidx.{int.MaxValue - 1}.0123456789abcdef0123456789abcdef.tmp");
        File.WriteAllBytes(stale, File.ReadAllBytes(path)[..100]);
        Assert.Equal(20, EmbeddingIndex.Load(path).Count);
        index.Save(path);
        Assert.False(File.Exists(stale));
        Assert.Equal(20, EmbeddingIndex.Load(path).Count);
    }
}
