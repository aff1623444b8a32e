using System.Buffers.Binary;
using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using ManagedClip.Storage;

namespace ManagedClip.ZeroShot;

/// <summary>
/// Class embeddings on disk, one file per (model fingerprint, exact prompts) key, so that a large prompt ensemble
/// (ImageNet: 1000 classes × 80 templates) is encoded once and reused by later runs.
/// </summary>
/// <remarks>
/// <para>Where: <see cref="DefaultDirectory"/> — <c>$MANAGEDCLIP_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/managedclip</c>,
/// else <c>~/.cache/managedclip</c> (on Windows <c>%LOCALAPPDATA%\managedclip</c>); files go in its <c>classes/</c> folder,
/// named <c>KEY.bin</c>, KEY being the hex SHA-256 of the model fingerprint, the labels, the templates and the vocabulary (its files' bytes;
/// the token ids of every prompt when the files cannot be read).</para>
/// <para>File (little-endian): magic <c>MCLIPCLS</c> (8 bytes), version u32 = 2, classes u32, embed dim u32, reserved u32 = 0,
/// the key (32 bytes), then classes × dim float32: the unit class embeddings, row by row, then the XXH64 (seed 0, System.IO.Hashing) of
/// everything before it, little-endian. Written to a temporary file, fsynced and renamed into
/// place. A file that does not match its name (truncated, foreign, another version), fails its checksum or holds a non-finite
/// value is not used: <see cref="TryLoad"/> says why, and the classifier recomputes and rewrites it.</para>
/// </remarks>
public sealed class ClassEmbeddingCache
{
    /// <summary>The environment variable that overrides the cache folder.</summary>
    public const string EnvironmentVariable = "MANAGEDCLIP_CACHE_DIR";

    static ReadOnlySpan<byte> Magic => "MCLIPCLS"u8;
    const int Version = 2, HeaderBytes = 8 + 4 * 4 + 32, ChecksumBytes = 8;

    /// <summary>The root cache folder (class embeddings go in its <c>classes/</c> subfolder).</summary>
    public string Directory { get; }

    /// <summary>A cache in <paramref name="directory"/> (made absolute; created on the first write).</summary>
    /// <exception cref="ArgumentException"><paramref name="directory"/> is null or empty.</exception>
    public ClassEmbeddingCache(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = Path.GetFullPath(directory);
    }

    /// <summary><c>$MANAGEDCLIP_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/managedclip</c>, else <c>~/.cache/managedclip</c> (Windows: <c>%LOCALAPPDATA%\managedclip</c>).</summary>
    public static string DefaultDirectory()
    {
        string? explicitDirectory = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(explicitDirectory)) return explicitDirectory;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)) return Path.Combine(xdg, "managedclip");
        if (OperatingSystem.IsWindows())
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "managedclip");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "managedclip");
    }

    /// <summary>The file a key is stored in.</summary>
    public string PathOf(byte[] key) => Path.Combine(Directory, "classes", Convert.ToHexStringLower(key) + ".bin");

    /// <summary>
    /// The embeddings stored under the key, or null when absent or unusable; <paramref name="problem"/> says why a file that
    /// exists was not used (it names the file), null when there was none or it was good.
    /// </summary>
    public float[]? TryLoad(byte[] key, int classes, int dim, out string? problem)
    {
        string path = PathOf(key);
        problem = null;
        try
        {
            if (!File.Exists(path)) return null;
            byte[] bytes = File.ReadAllBytes(path);
            long expected = HeaderBytes + (long)classes * dim * sizeof(float) + ChecksumBytes;
            var header = bytes.AsSpan(Math.Min(8, bytes.Length));
            string? fault =
                bytes.Length < HeaderBytes || !bytes.AsSpan(0, 8).SequenceEqual(Magic) ? "not a class-embedding cache file"
                : BinaryPrimitives.ReadInt32LittleEndian(header) != Version ? $"format version {BinaryPrimitives.ReadInt32LittleEndian(header)}, this build writes {Version}"
                : BinaryPrimitives.ReadInt32LittleEndian(header[4..]) != classes || BinaryPrimitives.ReadInt32LittleEndian(header[8..]) != dim
                    ? $"{BinaryPrimitives.ReadInt32LittleEndian(header[4..])} × {BinaryPrimitives.ReadInt32LittleEndian(header[8..])} values, expected {classes} × {dim}"
                : !bytes.AsSpan(8 + 16, 32).SequenceEqual(key) ? "stored under another key"
                : bytes.Length != expected ? $"{bytes.Length} bytes, expected {expected} (truncated or extended)"
                : null;
            if (fault is null)
            {
                if (XxHash64.HashToUInt64(bytes.AsSpan(0, bytes.Length - ChecksumBytes)) != BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(bytes.Length - ChecksumBytes)))
                    fault = "its checksum does not match (damaged)";
            }
            if (fault is not null) { problem = $"{path}: {fault}"; return null; }

            var values = new float[classes * dim];
            var data = bytes.AsSpan(HeaderBytes, values.Length * sizeof(float));
            if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(data).CopyTo(values);
            else for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(i * 4)..]);
            if (!TensorPrimitives.IsFiniteAll(values)) { problem = $"{path}: holds values that are not finite"; return null; }
            return values;
        }
        catch (IOException e) { problem = $"{path}: cannot be read ({e.Message})"; return null; }
        catch (UnauthorizedAccessException e) { problem = $"{path}: cannot be read ({e.Message})"; return null; }
    }

    /// <summary>Stores the embeddings under the key (atomically); returns the file's path.</summary>
    public string Store(byte[] key, ReadOnlySpan<float> embeddings, int classes, int dim)
    {
        if (key.Length != 32) throw new ArgumentException("the key is a 32-byte SHA-256", nameof(key));
        if (embeddings.Length != classes * dim) throw new ArgumentException($"expected {classes} × {dim} values, got {embeddings.Length}", nameof(embeddings));
        var bytes = new byte[HeaderBytes + embeddings.Length * sizeof(float) + ChecksumBytes];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), classes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(16), dim);
        key.CopyTo(bytes, 24);
        for (int i = 0; i < embeddings.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(HeaderBytes + i * 4), embeddings[i]);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(bytes.Length - ChecksumBytes), XxHash64.HashToUInt64(bytes.AsSpan(0, bytes.Length - ChecksumBytes)));
        string path = PathOf(key);
        try { AtomicFile.Write(path, stream => stream.Write(bytes)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ClipException($"{path}: cannot write the class-embedding cache ({e.Message}); choose another folder for the ClassEmbeddingCache, or set ${EnvironmentVariable} for the default one", e); }
        return path;
    }
}
