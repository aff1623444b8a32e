using System.Diagnostics;
using ManagedClip.ZeroShot;

namespace ManagedClip.Tests.ZeroShot;

/// <summary>
/// A damaged class-embedding cache entry is never served: each entry carries a checksum, and a bad one (flipped bits,
/// truncated, extended, non-finite values) is recomputed and rewritten, the classifier saying why.
/// </summary>
public sealed class ClassEmbeddingCacheTests : IDisposable
{
    static readonly string[] Labels = ["cat", "dog", "bird"], Templates = ["a photo of a {}.", "a drawing of a {}."];
    const int HeaderBytes = 56; // magic, version, classes, dim, reserved, key
    readonly string _cache = Directory.CreateTempSubdirectory("managedclip-cache-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    ZeroShotClassifier Create(ClipModel model, ClassEmbeddingCache? cache) =>
        ZeroShotClassifier.Create(model, Labels, Templates, new ZeroShotOptions { Cache = cache });

    static void Damage(string path, int offset, Func<byte, byte> change)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[offset] = change(bytes[offset]);
        File.WriteAllBytes(path, bytes);
    }

    [Fact]
    public void AnUnwritableCacheIsAnErrorInTheLibrarysTerms()
    {
        string notAFolder = Path.Combine(_cache, "a-file");
        File.WriteAllText(notAFolder, "not a folder");
        var cache = new ClassEmbeddingCache(notAFolder);
        var error = Assert.Throws<ClipException>(() => cache.Store(new byte[32], new float[6], 2, 3));
        Assert.StartsWith(notAFolder, error.Message, StringComparison.Ordinal);
        Assert.Contains("cannot write the class-embedding cache", error.Message, StringComparison.Ordinal);
        Assert.Contains(ClassEmbeddingCache.EnvironmentVariable, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--", error.Message, StringComparison.Ordinal); // no CLI flags in the library
    }

    [Theory]
    [InlineData("sign", 1, 5, 3, 0x80)]      // the sign bit of row 1, value 5: silently changed the probabilities (0.9993 → 0.9223)
    [InlineData("sign", 2, 0, 3, 0x80)]
    [InlineData("exponent", 0, 7, 3, 0x40)]  // the exponent's top bit: a huge value, Inf/NaN probabilities
    [InlineData("mantissa", 1, 63, 0, 0x01)] // the lowest bit: a tiny change, still not the entry that was written
    public void AFlippedBitInACachedRowIsRecomputed(string what, int row, int column, int byteInValue, int mask)
    {
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var cache = new ClassEmbeddingCache(_cache);
        var uncached = Create(model, null);
        var image = model.EncodeImageFiles([ZeroShotTestData.ImagePath("chelsea.png")]).Single().Features!;
        var written = Create(model, cache);
        Assert.Null(written.CacheProblem);

        Damage(written.CachePath!, HeaderBytes + (row * model.EmbedDim + column) * 4 + byteInValue, b => (byte)(b ^ mask));
        var reread = Create(model, cache);
        Assert.False(reread.FromCache, $"{what} flip served from the cache");
        Assert.NotNull(reread.CacheProblem);
        Assert.Contains(written.CachePath!, reread.CacheProblem);
        Assert.Equal(uncached.ClassEmbeddings.ToArray(), reread.ClassEmbeddings.ToArray());
        Assert.Equal(uncached.Probabilities(image), reread.Probabilities(image));

        // Rewritten: the next run reads it back.
        var again = Create(model, cache);
        Assert.True(again.FromCache);
        Assert.Null(again.CacheProblem);
        Assert.Equal(uncached.Probabilities(image), again.Probabilities(image));
    }

    [Fact]
    public void NonFiniteValuesWithAMatchingChecksumAreNotServed()
    {
        // A writer that stored NaN (with a checksum of its own): the checksum alone would accept it.
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var cache = new ClassEmbeddingCache(_cache);
        var good = Create(model, cache);
        var values = good.ClassEmbeddings.ToArray();
        values[3] = float.NaN;
        var key = Path.GetFileNameWithoutExtension(good.CachePath!);
        cache.Store(Convert.FromHexString(key), values, Labels.Length, model.EmbedDim);
        var reread = Create(model, cache);
        Assert.False(reread.FromCache);
        Assert.Contains("not finite", reread.CacheProblem);
        Assert.Equal(good.ClassEmbeddings.ToArray(), reread.ClassEmbeddings.ToArray());
    }

    [Fact]
    public void FuzzedEntriesAreRecomputedNeverServedWrong()
    {
        // Fixed seed, bounded: bit flips, overwritten runs, truncation, extension, header fields. Each run either reads the
        // untouched entry or recomputes the same embeddings; no exception, never other numbers.
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var cache = new ClassEmbeddingCache(_cache);
        var expected = Create(model, null).ClassEmbeddings.ToArray();
        string path = Create(model, cache).CachePath!;
        byte[] pristine = File.ReadAllBytes(path);
        var random = new Random(1313);
        var clock = Stopwatch.StartNew();
        int recomputed = 0, rounds = 0;
        for (int round = 0; round < 300 && clock.Elapsed < TimeSpan.FromSeconds(15); round++, rounds++)
        {
            var bytes = pristine.ToList();
            switch (random.Next(5))
            {
                case 0: for (int k = random.Next(1, 5); k > 0; k--) { int i = random.Next(bytes.Count); bytes[i] ^= (byte)(1 << random.Next(8)); } break;
                case 1: { int start = random.Next(bytes.Count), length = random.Next(1, 16); for (int i = start; i < Math.Min(bytes.Count, start + length); i++) bytes[i] = (byte)random.Next(256); } break;
                case 2: bytes = bytes.Take(random.Next(bytes.Count)).ToList(); break;
                case 3: bytes.AddRange(Enumerable.Range(0, random.Next(1, 64)).Select(_ => (byte)random.Next(256))); break;
                default: bytes[8 + random.Next(16)] = (byte)random.Next(256); break; // version, classes, dim, reserved
            }
            File.WriteAllBytes(path, bytes.ToArray());
            var classifier = Create(model, cache);
            Assert.Equal(expected, classifier.ClassEmbeddings.ToArray());
            if (!classifier.FromCache) recomputed++;
            Assert.True(classifier.FromCache == bytes.SequenceEqual(pristine), $"round {round}: served {classifier.FromCache}, untouched {bytes.SequenceEqual(pristine)}");
        }
        // 300 rounds take ~3 s on a quiet machine; a loaded one may stop at the time bound. Almost every mutation changes the bytes.
        Assert.True(rounds >= 50 && recomputed > rounds * 9 / 10, $"{recomputed} of {rounds} recomputed");
    }
}
