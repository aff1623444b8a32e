using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ManagedClip.Checkpoints;

public sealed partial class Checkpoint
{
    /// <summary>Tensors up to this size are hashed whole; larger ones by <see cref="SampleBlocks"/> strided blocks.</summary>
    const int WholeTensorBytes = 64 * 1024, SampleBlocks = 64, SampleBlockBytes = 1024;

    string? _fingerprint;

    /// <summary>
    /// A stable identity of the weights, for caches and indexes: lower-case hex SHA-256 over every stored tensor
    /// (sorted by stored name) of its name, dtype, shape, byte length and bytes — whole for tensors up to 64 KiB,
    /// else 64 strided 1 KiB blocks spanning the tensor, first and last included. Reads well under 1% of a large
    /// checkpoint, so it takes milliseconds; any retraining or fine-tuning changes it, while a file merely copied,
    /// renamed or re-sharded keeps it. Layout and dtype are part of the identity (the HF fp16 copy of a model
    /// is another fingerprint: its outputs differ in the last bits).
    /// </summary>
    public string Fingerprint => LazyInitializer.EnsureInitialized(ref _fingerprint, ComputeFingerprint);

    string ComputeFingerprint()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var number = new byte[8];
        void Int(long value) { BinaryPrimitives.WriteInt64LittleEndian(number, value); hash.AppendData(number); }
        void Text(string value) { Int(Encoding.UTF8.GetByteCount(value)); hash.AppendData(Encoding.UTF8.GetBytes(value)); }

        Text("managedclip-checkpoint-fingerprint-v1");
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
            var bytes = file.GetBytes(entry);
            if (bytes.Length <= WholeTensorBytes) { hash.AppendData(bytes); continue; }
            long last = bytes.Length - SampleBlockBytes;
            for (int i = 0; i < SampleBlocks; i++)
                hash.AppendData(bytes.Slice((int)(last * i / (SampleBlocks - 1)), SampleBlockBytes));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
