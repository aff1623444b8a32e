using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;
using ManagedClip.Storage;

namespace ManagedClip.Search;

/// <summary>One indexed file: its full path, and the size and modification time (UTC ticks) it had when embedded.</summary>
public readonly record struct IndexEntry(string Path, long Size, long ModifiedTicks);

/// <summary>One search result: rank (1 = best), the file, its cosine similarity to the query, and its position in the index.</summary>
public readonly record struct SearchHit(int Rank, string Path, float Score, int EntryIndex);

/// <summary>
/// Unit image embeddings with the files they came from, searched exactly (every row's cosine, SIMD dot products,
/// top-K with a heap). Saved in a documented, checksummed format that records the model's fingerprint.
/// </summary>
/// <remarks>
/// <para>File format, version 1 (all integers little-endian):</para>
/// <code>
/// offset  size  field
///      0     8  magic "MCLIPIDX"
///      8     4  version, u32 = 1
///     12     4  embed dim D, u32
///     16     8  entry count N, u64
///     24    32  model fingerprint: the 32 bytes of ClipModel.Fingerprint (SHA-256)
///     56   4+n  model path: u32 byte length, UTF-8 (where search finds the model without --model)
///      …   4+n  vocabulary path: u32 byte length (0: none), UTF-8
///      …  N·D·4 embeddings: N rows of D float32, each L2-normalized, in entry order
///      …     …  entries: N × { size i64, modification time i64 (UTC, 100 ns ticks since 0001-01-01), u32 byte length, UTF-8 full path }
///      …     8  checksum u64 of every byte before it (see IndexChecksum: XXH64 rounds)
/// </code>
/// <para>A file is written whole to a temporary file beside the target, flushed to disk (fsync) and renamed over it,
/// so a reader — or a crash — sees the old index or the new one, never a mix.</para>
/// </remarks>
public sealed class EmbeddingIndex
{
    /// <summary>The first eight bytes of every index file.</summary>
    public const string Magic = "MCLIPIDX";
    /// <summary>The file format version this build writes and reads.</summary>
    public const int FormatVersion = 1;
    const int FixedHeaderBytes = 56;

    readonly List<IndexEntry> _entries = [];
    float[] _embeddings;

    /// <summary>The fingerprint of the model the embeddings came from (64 hex digits).</summary>
    public string Fingerprint { get; }
    /// <summary>Length of each embedding.</summary>
    public int EmbedDim { get; }
    /// <summary>The model the index was built with, as given then (made absolute); search uses it when no model is named.</summary>
    public string ModelPath { get; }
    /// <summary>The vocabulary given when the index was built (absolute), or null.</summary>
    public string? VocabularyPath { get; }
    /// <summary>Files in the index.</summary>
    public int Count => _entries.Count;
    /// <summary>The files, in the order of their embeddings: path, size and modification time as indexed.</summary>
    public IReadOnlyList<IndexEntry> Entries => _entries;
    /// <summary>All embeddings, [Count × EmbedDim], unit rows in entry order.</summary>
    public ReadOnlySpan<float> Embeddings => _embeddings.AsSpan(0, Count * EmbedDim);

    /// <summary>An empty index for embeddings of the model with this fingerprint (see <see cref="For"/>).</summary>
    /// <param name="fingerprint">The model's <see cref="ClipModel.Fingerprint"/>, 64 hex digits.</param>
    /// <param name="embedDim">Length of each embedding, at least 1.</param>
    /// <param name="modelPath">The model's path, recorded for search.</param>
    /// <param name="vocabularyPath">The vocabulary's path to record, or null.</param>
    /// <param name="capacity">Entries to reserve room for.</param>
    /// <exception cref="ArgumentException"><paramref name="fingerprint"/> is not 64 hex digits.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="embedDim"/> is less than 1.</exception>
    public EmbeddingIndex(string fingerprint, int embedDim, string modelPath, string? vocabularyPath = null, int capacity = 0)
    {
        if (fingerprint.Length != 64 || !fingerprint.All(Uri.IsHexDigit)) throw new ArgumentException("a fingerprint is 64 hex digits", nameof(fingerprint));
        ArgumentOutOfRangeException.ThrowIfLessThan(embedDim, 1);
        Fingerprint = fingerprint.ToLowerInvariant();
        EmbedDim = embedDim;
        ModelPath = modelPath;
        VocabularyPath = string.IsNullOrEmpty(vocabularyPath) ? null : vocabularyPath;
        _embeddings = new float[(int)Math.Min(Math.Max(capacity, 16) * (long)embedDim, Array.MaxLength / embedDim * (long)embedDim)];
    }

    /// <summary>An empty index for a model's embeddings.</summary>
    public static EmbeddingIndex For(ClipModel model, string? vocabularyPath = null) =>
        new(model.Fingerprint, model.EmbedDim, Path.GetFullPath(model.SourcePath), vocabularyPath is null ? null : Path.GetFullPath(vocabularyPath));

    /// <summary>The unit embedding of entry <paramref name="index"/>, <see cref="EmbedDim"/> floats.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not in [0, <see cref="Count"/>).</exception>
    public ReadOnlySpan<float> EmbeddingOf(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return _embeddings.AsSpan(index * EmbedDim, EmbedDim);
    }

    /// <summary>Adds a file's features (L2-normalized here; already unit vectors stay as they are).</summary>
    public void Add(IndexEntry entry, ReadOnlySpan<float> features)
    {
        if (features.Length != EmbedDim) throw new ArgumentException($"features have {features.Length} values, the index holds {EmbedDim}", nameof(features));
        ArgumentException.ThrowIfNullOrEmpty(entry.Path);
        if ((long)(Count + 1) * EmbedDim > Array.MaxLength) throw new IndexException($"the index is full at {Count} entries of {EmbedDim} values");
        if ((Count + 1) * EmbedDim > _embeddings.Length)
            Array.Resize(ref _embeddings, (int)Math.Min(Array.MaxLength / EmbedDim * (long)EmbedDim, Math.Max((long)_embeddings.Length * 2, (Count + 1L) * EmbedDim)));
        var row = _embeddings.AsSpan(Count * EmbedDim, EmbedDim);
        features.CopyTo(row);
        ClipModel.NormalizeInPlace(row, unitTolerance: 1e-6f);
        _entries.Add(entry);
    }

    // ---- search ----------------------------------------------------------------------------------------

    /// <summary>
    /// The <paramref name="top"/> entries most similar to <paramref name="query"/> (raw or unit features), best first:
    /// exact cosine over every row, ties broken by entry order.
    /// </summary>
    /// <param name="query">Features [<see cref="EmbedDim"/>] of a text or an image, from the model the index was built with.</param>
    /// <param name="top">How many hits to return, at least 1; at most <see cref="Count"/> come back.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is less than 1.</exception>
    /// <exception cref="ArgumentException">The query does not have <see cref="EmbedDim"/> values.</exception>
    /// <example>
    /// <code>
    /// var index = EmbeddingIndex.Load("photos.mcidx");
    /// index.EnsureSameModel(model, "photos.mcidx");
    /// foreach (var hit in index.Search(model.EncodeText("a dog on a beach"), top: 5))
    ///     Console.WriteLine($"{hit.Rank}. {hit.Path} ({hit.Score:0.000})");
    /// </code>
    /// </example>
    public SearchHit[] Search(ReadOnlySpan<float> query, int top)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        if (query.Length != EmbedDim) throw new ArgumentException($"the query has {query.Length} values, the index holds {EmbedDim}", nameof(query));
        var unit = ClipModel.Normalize(query);
        int k = Math.Min(top, Count);
        if (k == 0) return [];

        // A min-heap of the k best so far: the root is the worst kept (lowest score; on a tie, the later entry).
        var scores = new float[k];
        var indices = new int[k];
        int size = 0;
        ReadOnlySpan<float> rows = Embeddings;
        for (int i = 0; i < Count; i++)
        {
            float score = TensorPrimitives.Dot(rows.Slice(i * EmbedDim, EmbedDim), unit);
            if (size < k)
            {
                scores[size] = score; indices[size] = i;
                SiftUp(scores, indices, size++);
            }
            else if (score > scores[0]) // equal score: the earlier entry (already kept) wins
            {
                scores[0] = score; indices[0] = i;
                SiftDown(scores, indices, size);
            }
        }
        var order = Enumerable.Range(0, size).OrderByDescending(j => scores[j]).ThenBy(j => indices[j]).ToArray();
        var hits = new SearchHit[size];
        for (int r = 0; r < size; r++) hits[r] = new SearchHit(r + 1, _entries[indices[order[r]]].Path, scores[order[r]], indices[order[r]]);
        return hits;
    }

    /// <summary>a ranks below b: lower score, or the same score and a later entry.</summary>
    static bool Worse(float scoreA, int indexA, float scoreB, int indexB) => scoreA < scoreB || (scoreA == scoreB && indexA > indexB);

    static void SiftUp(float[] scores, int[] indices, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (!Worse(scores[i], indices[i], scores[parent], indices[parent])) break;
            (scores[i], scores[parent]) = (scores[parent], scores[i]);
            (indices[i], indices[parent]) = (indices[parent], indices[i]);
            i = parent;
        }
    }

    static void SiftDown(float[] scores, int[] indices, int size)
    {
        int i = 0;
        while (true)
        {
            int left = 2 * i + 1, right = left + 1, worst = i;
            if (left < size && Worse(scores[left], indices[left], scores[worst], indices[worst])) worst = left;
            if (right < size && Worse(scores[right], indices[right], scores[worst], indices[worst])) worst = right;
            if (worst == i) return;
            (scores[i], scores[worst]) = (scores[worst], scores[i]);
            (indices[i], indices[worst]) = (indices[worst], indices[i]);
            i = worst;
        }
    }

    // ---- file ------------------------------------------------------------------------------------------

    /// <summary>Writes the index atomically (temporary file, fsync, rename): a crash leaves the previous file or this one.</summary>
    public void Save(string path)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("index files are written on little-endian machines");
        try
        {
            AtomicFile.Write(path, stream =>
            {
                var checksum = new IndexChecksum();
                void Put(ReadOnlySpan<byte> bytes) { checksum.Append(bytes); stream.Write(bytes); }
                Put(Header());
                var bytes = MemoryMarshal.AsBytes(Embeddings);
                for (int start = 0; start < bytes.Length; start += 1 << 24) Put(bytes.Slice(start, Math.Min(1 << 24, bytes.Length - start)));
                using (var entries = new MemoryStream())
                {
                    var number = new byte[8];
                    foreach (var entry in _entries)
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(number, entry.Size); entries.Write(number);
                        BinaryPrimitives.WriteInt64LittleEndian(number, entry.ModifiedTicks); entries.Write(number);
                        var name = Encoding.UTF8.GetBytes(entry.Path);
                        BinaryPrimitives.WriteUInt32LittleEndian(number, (uint)name.Length); entries.Write(number, 0, 4);
                        entries.Write(name);
                    }
                    Put(entries.GetBuffer().AsSpan(0, (int)entries.Length));
                }
                var trailer = new byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(trailer, checksum.Finish());
                stream.Write(trailer);
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new IndexException($"{path}: cannot write the index ({e.Message})", e); }
    }

    byte[] Header()
    {
        byte[] model = Encoding.UTF8.GetBytes(ModelPath), vocab = Encoding.UTF8.GetBytes(VocabularyPath ?? "");
        var header = new byte[FixedHeaderBytes + 4 + model.Length + 4 + vocab.Length];
        Encoding.ASCII.GetBytes(Magic).CopyTo(header, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)EmbedDim);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(16), (ulong)Count);
        Convert.FromHexString(Fingerprint).CopyTo(header, 24);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(FixedHeaderBytes), (uint)model.Length);
        model.CopyTo(header, FixedHeaderBytes + 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(FixedHeaderBytes + 4 + model.Length), (uint)vocab.Length);
        vocab.CopyTo(header, FixedHeaderBytes + 8 + model.Length);
        return header;
    }

    /// <summary>Reads and verifies an index file; <see cref="IndexException"/> names what is wrong (missing, not an index, other version, damaged).</summary>
    public static EmbeddingIndex Load(string path)
    {
        if (Directory.Exists(path)) throw new IndexException($"{path}: is a folder, not an index file");
        if (!File.Exists(path)) throw new IndexException($"{path}: no such index file (ImageIndexer.Update builds one, as does EmbeddingIndex.Save)");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            return Read(stream, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new IndexException($"{path}: cannot read the index ({e.Message})", e); }
    }

    static EmbeddingIndex Read(FileStream stream, string path)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("index files are read on little-endian machines");
        long length = stream.Length;
        IndexException Damaged(string what) => new($"{path}: the index is damaged ({what}); delete it and build it again");
        var checksum = new IndexChecksum();
        byte[] Take(int count, string what)
        {
            if (stream.Position + count > length - 8) throw Damaged($"truncated in the {what}");
            var bytes = new byte[count];
            stream.ReadExactly(bytes);
            checksum.Append(bytes);
            return bytes;
        }

        if (length < 8 || !ReadMagic(stream)) throw new IndexException($"{path}: not a ManagedClip index (it does not start with \"{Magic}\")");
        stream.Position = 0;
        var fixedHeader = Take(FixedHeaderBytes, "header");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader.AsSpan(8));
        if (version != FormatVersion) throw new IndexException($"{path}: index format version {version} is not supported (this build reads version {FormatVersion}); delete it and build it again");
        uint dim = BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader.AsSpan(12));
        ulong count = BinaryPrimitives.ReadUInt64LittleEndian(fixedHeader.AsSpan(16));
        if (dim == 0 || dim > 1 << 16) throw Damaged($"embedding dimension {dim}");
        // Each entry takes at least D·4 + 20 bytes: a count the file cannot hold is damage, caught before allocating anything.
        if (count > (ulong)(length / (dim * 4L + 20)) || count * dim > (ulong)Array.MaxLength) throw Damaged($"{count} entries cannot fit in {length} bytes");
        string fingerprint = Convert.ToHexStringLower(fixedHeader.AsSpan(24, 32));
        string ReadString(string what)
        {
            uint byteLength = BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
            if (byteLength > 1 << 16) throw Damaged($"a {what} of {byteLength} bytes");
            try { return new UTF8Encoding(false, true).GetString(Take((int)byteLength, what)); }
            catch (DecoderFallbackException) { throw Damaged($"the {what} is not UTF-8"); }
        }
        string modelPath = ReadString("model path"), vocabPath = ReadString("vocabulary path");

        var index = new EmbeddingIndex(fingerprint, (int)dim, modelPath, vocabPath, capacity: 0);
        int n = (int)count;
        var embeddings = new float[Math.Max(n * (int)dim, (int)dim)];
        var bytes = MemoryMarshal.AsBytes(embeddings.AsSpan(0, n * (int)dim));
        if (stream.Position + bytes.Length > length - 8) throw Damaged("truncated in the embeddings");
        for (int start = 0; start < bytes.Length; start += 1 << 24)
        {
            var chunk = bytes.Slice(start, Math.Min(1 << 24, bytes.Length - start));
            stream.ReadExactly(chunk);
            checksum.Append(chunk);
        }
        index._embeddings = embeddings;

        long entriesLength = length - 8 - stream.Position;
        if (entriesLength > int.MaxValue) throw Damaged("entries section too large");
        var entries = Take((int)entriesLength, "entries");
        var utf8 = new UTF8Encoding(false, true);
        int offset = 0;
        for (int i = 0; i < n; i++)
        {
            if (offset + 20 > entries.Length) throw Damaged($"entry {i + 1} of {n} is truncated");
            long size = BinaryPrimitives.ReadInt64LittleEndian(entries.AsSpan(offset));
            long ticks = BinaryPrimitives.ReadInt64LittleEndian(entries.AsSpan(offset + 8));
            int nameLength = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(entries.AsSpan(offset + 16)), int.MaxValue);
            offset += 20;
            if (nameLength == 0 || nameLength > entries.Length - offset) throw Damaged($"entry {i + 1} of {n} has a bad path length");
            string name;
            try { name = utf8.GetString(entries, offset, nameLength); }
            catch (DecoderFallbackException) { throw Damaged($"entry {i + 1} of {n}: the path is not UTF-8"); }
            offset += nameLength;
            index._entries.Add(new IndexEntry(name, size, ticks));
        }
        if (offset != entries.Length) throw Damaged($"{entries.Length - offset} bytes after the last entry");
        var trailer = new byte[8];
        stream.ReadExactly(trailer);
        if (BinaryPrimitives.ReadUInt64LittleEndian(trailer) != checksum.Finish()) throw Damaged("checksum mismatch");
        return index;
    }

    static bool ReadMagic(FileStream stream)
    {
        Span<byte> magic = stackalloc byte[8];
        stream.ReadExactly(magic);
        return magic.SequenceEqual(Encoding.ASCII.GetBytes(Magic));
    }

    /// <summary>Throws unless the index was built with this model (same fingerprint): scores against another model's embeddings mean nothing.</summary>
    public void EnsureSameModel(ClipModel model, string indexPath)
    {
        if (model.Fingerprint != Fingerprint)
            throw new IndexException($"{indexPath}: the index was built with another model (fingerprint {Fingerprint[..12]}…, recorded model {ModelPath}); " +
                $"{model.SourcePath} has fingerprint {model.Fingerprint[..12]}…: use the model the index was built with, or re-index with this one into a new file");
    }
}
