using System.Buffers.Binary;
using ManagedClip.Storage;

namespace ManagedClip.Checkpoints;

public sealed partial class Checkpoint
{
    readonly object _verificationLock = new();
    readonly CancellationTokenSource _verificationCancel = new();
    Task<string>? _verification;

    /// <summary>
    /// A stable identity of the weights, for caches and indexes: lower-case hex SHA-256 over a version string and, for every
    /// stored tensor (sorted by stored name), its name, dtype, shape, byte length and the XxHash128 of all its bytes. Any edit
    /// of any byte changes it, while a file merely copied, renamed or re-sharded keeps it. Layout and dtype are part of the
    /// identity (the HF fp16 copy of a model is another fingerprint: its outputs differ in the last bits). Getting it also
    /// checks that every floating value is finite (a <see cref="CheckpointException"/> naming the tensor otherwise): both come
    /// from one read of every byte, <see cref="StartVerification"/>, which <see cref="ClipModel"/> starts as it begins loading.
    /// </summary>
    public string Fingerprint
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return StartVerification().GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// Starts hashing and checking every stored tensor on a thread-pool thread (once; later calls return the same task), so that
    /// it overlaps the model's own reading and packing of the weights on the loading thread: a second read of the file, from the
    /// page cache, on the core the loading thread leaves idle. The task's result is <see cref="Fingerprint"/>.
    /// </summary>
    public Task<string> StartVerification()
    {
        lock (_verificationLock)
            return _verification ??= Task.Run(() => HashAndCheckEveryTensor(_verificationCancel.Token));
    }

    string HashAndCheckEveryTensor(CancellationToken cancellation)
    {
        using var digest = new Sha256Digest();
        var number = new byte[16];

        // Each file is read front to back (the order the disk has it); the digest then takes the tensors by name.
        var contentHashes = new Dictionary<string, UInt128>(StringComparer.Ordinal);
        byte[] buffer = new byte[SafetensorsFile.ChunkBytes];
        float[] values = new float[SafetensorsFile.ChunkBytes / 2];
        foreach (var file in _files)
            foreach (var entry in file.Tensors.Values.OrderBy(e => e.DataOffset))
                contentHashes[entry.Name] = file.HashAndCheck(entry, buffer, values, cancellation);

        // v1 hashed sampled blocks of large tensors; v2 hashes every byte, so no v1 fingerprint matches a v2 one.
        digest.Append("managedclip-checkpoint-fingerprint-v2");
        var tensors = _files.SelectMany(file => file.Tensors.Values).OrderBy(entry => entry.Name, StringComparer.Ordinal).ToArray();
        digest.Append(tensors.Length);
        foreach (var entry in tensors)
        {
            digest.Append(entry.Name);
            digest.Append(entry.DType.ToString());
            digest.Append(entry.Shape.Length);
            foreach (int d in entry.Shape) digest.Append(d);
            digest.Append(entry.ByteLength);
            BinaryPrimitives.WriteUInt128LittleEndian(number, contentHashes[entry.Name]);
            digest.AppendBytes(number);
        }
        return Convert.ToHexStringLower(digest.Finish());
    }

    /// <summary>Stops a verification still running (a load that failed) and waits for it to leave the files.</summary>
    void StopVerification()
    {
        Task? running;
        lock (_verificationLock) running = _verification;
        if (running is null) return;
        _verificationCancel.Cancel();
        try { running.Wait(); } catch (AggregateException) { /* its outcome no longer matters: the checkpoint is being closed */ }
    }
}
