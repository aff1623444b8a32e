using System.Buffers.Binary;
using System.Runtime.InteropServices;
using ManagedClip.Search;

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
/// <para>File (little-endian): magic <c>MCLIPCLS</c> (8 bytes), version u32 = 1, classes u32, embed dim u32, reserved u32 = 0,
/// the key (32 bytes), then classes × dim float32: the unit class embeddings, row by row. Written to a temporary file,
/// fsynced and renamed into place. A file that does not match its name (truncated, foreign, another version) is a miss and is rewritten.</para>
/// </remarks>
public sealed class ClassEmbeddingCache
{
    /// <summary>The environment variable that overrides the cache folder.</summary>
    public const string EnvironmentVariable = "MANAGEDCLIP_CACHE_DIR";

    static ReadOnlySpan<byte> Magic => "MCLIPCLS"u8;
    const int Version = 1, HeaderBytes = 8 + 4 * 4 + 32;

    /// <summary>The root cache folder (class embeddings go in its <c>classes/</c> subfolder).</summary>
    public string Directory { get; }

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

    /// <summary>The embeddings stored under the key, or null when absent or unusable.</summary>
    public float[]? TryLoad(byte[] key, int classes, int dim)
    {
        string path = PathOf(key);
        try
        {
            if (!File.Exists(path)) return null;
            byte[] bytes = File.ReadAllBytes(path);
            long expected = HeaderBytes + (long)classes * dim * sizeof(float);
            if (bytes.Length != expected || !bytes.AsSpan(0, 8).SequenceEqual(Magic)) return null;
            var header = bytes.AsSpan(8);
            if (BinaryPrimitives.ReadInt32LittleEndian(header) != Version
                || BinaryPrimitives.ReadInt32LittleEndian(header[4..]) != classes
                || BinaryPrimitives.ReadInt32LittleEndian(header[8..]) != dim
                || !bytes.AsSpan(8 + 16, 32).SequenceEqual(key)) return null;
            var values = new float[classes * dim];
            var data = bytes.AsSpan(HeaderBytes);
            if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(data).CopyTo(values);
            else for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(i * 4)..]);
            return values;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Stores the embeddings under the key (atomically); returns the file's path.</summary>
    public string Store(byte[] key, ReadOnlySpan<float> embeddings, int classes, int dim)
    {
        if (key.Length != 32) throw new ArgumentException("the key is a 32-byte SHA-256", nameof(key));
        if (embeddings.Length != classes * dim) throw new ArgumentException($"expected {classes} × {dim} values, got {embeddings.Length}", nameof(embeddings));
        var bytes = new byte[HeaderBytes + embeddings.Length * sizeof(float)];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), classes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(16), dim);
        key.CopyTo(bytes, 24);
        for (int i = 0; i < embeddings.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(HeaderBytes + i * 4), embeddings[i]);
        string path = PathOf(key);
        try { AtomicFile.Write(path, stream => stream.Write(bytes)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ClipException($"{path}: cannot write the class-embedding cache ({e.Message}); choose another folder with --cache-dir or ${EnvironmentVariable}", e); }
        return path;
    }
}
