namespace ManagedClip.Backends;

/// <summary>
/// Memory a backend owns and hands out as <see cref="Tensor"/>s: a host array for the CPU, device memory for a GPU.
/// Only the backend that made it reads or writes it.
/// </summary>
internal abstract class TensorStorage
{
    /// <summary>Floats this storage holds.</summary>
    public abstract int Length { get; }
}

/// <summary>
/// Floats [<see cref="Offset"/>, <see cref="Offset"/> + <see cref="Length"/>) of a backend's storage: what operators take. A view, like
/// the kernels' spans: it owns nothing, and its shape travels beside it (in the operators' arguments, and in comments).
/// The default tensor is empty and has no storage (an operator's "no residual").
/// </summary>
internal readonly struct Tensor
{
    public Tensor(TensorStorage storage, int offset, int length)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (offset < 0 || length < 0 || offset > storage.Length - length)
            throw new ArgumentOutOfRangeException(nameof(length), $"floats [{offset}, {(long)offset + length}) are outside a storage of {storage.Length}");
        Storage = storage; Offset = offset; Length = length;
    }

    public TensorStorage Storage { get; }
    public int Offset { get; }
    public int Length { get; }
    public bool IsEmpty => Length == 0;

    /// <summary>Floats [start, start + length) of this tensor (also what <c>t[a..b]</c> means).</summary>
    public Tensor Slice(int start, int length)
    {
        if (start < 0 || length < 0 || start > Length - length)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{start}, {(long)start + length}) is outside a tensor of {Length}");
        return new Tensor(Storage, Offset + start, length);
    }

    public Tensor Slice(int start) => Slice(start, Length - start);
}
