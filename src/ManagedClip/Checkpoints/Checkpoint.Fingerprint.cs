using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ManagedClip.Checkpoints;

public sealed partial class Checkpoint
{
    string? _fingerprint;

    /// <summary>
    /// A stable identity of the weights, for caches and indexes: lower-case hex SHA-256 over a version string and, for every
    /// stored tensor (sorted by stored name), its name, dtype, shape, byte length and the XxHash128 of all its bytes. The
    /// hashes of the tensors a model reads are taken while it reads them (<see cref="SafetensorsFile.ReadSingles"/>); the
    /// others are read and hashed here, once. Any edit of any byte changes it, while a file merely copied, renamed or
    /// re-sharded keeps it. Layout and dtype are part of the identity (the HF fp16 copy of a model is another fingerprint:
    /// its outputs differ in the last bits). <see cref="ClipModel"/> computes it at load.
    /// </summary>
    public string Fingerprint => LazyInitializer.EnsureInitialized(ref _fingerprint, ComputeFingerprint);

    string ComputeFingerprint()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var number = new byte[16];
        void Int(long value) { BinaryPrimitives.WriteInt64LittleEndian(number, value); hash.AppendData(number, 0, 8); }
        void Text(string value) { Int(Encoding.UTF8.GetByteCount(value)); hash.AppendData(Encoding.UTF8.GetBytes(value)); }

        // v1 hashed sampled blocks of large tensors; v2 hashes every byte, so no v1 fingerprint matches a v2 one.
        Text("managedclip-checkpoint-fingerprint-v2");
        var tensors = _files.SelectMany(file => file.Tensors.Values.Select(entry => (file, entry)))
            .OrderBy(t => t.entry.Name, StringComparer.Ordinal).ToArray();
        Int(tensors.Length);
        foreach (var (file, entry) in tensors)
        {
            Text(entry.Name);
            Text(entry.DType.ToString());
            Int(entry.Shape.Length);
            foreach (int d in entry.Shape) Int(d);
            Int(entry.ByteLength);
            BinaryPrimitives.WriteUInt128LittleEndian(number, file.ContentHash(entry));
            hash.AppendData(number);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
