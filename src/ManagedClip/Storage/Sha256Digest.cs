using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ManagedClip.Storage;

/// <summary>
/// SHA-256 over a sequence of fields, each written unambiguously: integers as 8 little-endian bytes, text as its UTF-8 byte
/// count (an integer) and then the bytes. The checkpoint fingerprint and the class-embedding cache key are built with it.
/// </summary>
internal sealed class Sha256Digest : IDisposable
{
    readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    readonly byte[] _number = new byte[8];

    public void Append(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_number, value);
        _hash.AppendData(_number);
    }

    public void Append(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        Append(bytes.Length);
        _hash.AppendData(bytes);
    }

    /// <summary>Raw bytes, without a length: for fields of a fixed size (another hash).</summary>
    public void AppendBytes(ReadOnlySpan<byte> bytes) => _hash.AppendData(bytes);

    public byte[] Finish() => _hash.GetHashAndReset();

    public void Dispose() => _hash.Dispose();
}
