using System.Buffers;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// Scratch buffers for one forward call, sized once for its batch shape and reused by every layer.
/// Each call owns its workspace, which is what makes a model safe to call from several threads at once.
/// </summary>
internal sealed class Workspace : IDisposable
{
    readonly PooledArrays _arrays = new();

    public KernelContext Kernels { get; }
    public float[] Normed { get; }    // [tokens, width]
    public float[] Qkv { get; }       // [tokens, 3·width]
    public float[] Attended { get; }  // [tokens, width]
    public float[] Hidden { get; }    // [tokens, mlp]

    public Workspace(int tokens, int width, int mlpWidth, KernelContext kernels)
    {
        Kernels = kernels;
        Normed = _arrays.Rent(tokens * width);
        Qkv = _arrays.Rent(tokens * 3 * width);
        Attended = _arrays.Rent(tokens * width);
        Hidden = _arrays.Rent(tokens * mlpWidth);
    }

    /// <summary>Another buffer of at least <paramref name="length"/> floats (uninitialized) for this call, returned with the workspace.</summary>
    public float[] Rent(int length) => _arrays.Rent(length);

    public void Dispose() => _arrays.Dispose();
}

/// <summary>
/// Arrays rented from <see cref="ArrayPool{T}.Shared"/> for one forward call and returned when it ends, so that steady-state
/// encoding allocates nothing large: fresh multi-MiB arrays on every call cost page faults, zeroing and gen-2 collections.
/// A rented array may be longer than asked for (and holds old data): every user slices it to its shape.
/// </summary>
internal sealed class PooledArrays : IDisposable
{
    readonly List<float[]> _rented = [];

    public float[] Rent(int length)
    {
        var array = ArrayPool<float>.Shared.Rent(length);
        _rented.Add(array);
        return array;
    }

    public void Dispose()
    {
        foreach (var array in _rented) ArrayPool<float>.Shared.Return(array);
        _rented.Clear();
    }
}
