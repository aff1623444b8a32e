using System.Buffers;

namespace ManagedClip.Backends.Cpu;

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
