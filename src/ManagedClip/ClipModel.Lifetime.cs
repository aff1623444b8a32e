namespace ManagedClip;

public sealed partial class ClipModel
{
    readonly CallGate _calls = new();

    /// <summary>
    /// Refuses new calls (they throw <see cref="ObjectDisposedException"/>), waits for the running ones to finish, then releases the
    /// weights a device holds (<see cref="ClipModelOptions.Device"/>; on the CPU the model holds no file or native resource).
    /// </summary>
    public void Dispose()
    {
        _calls.Close();
        _backend.Dispose();
    }
}

/// <summary>
/// Counts the calls running on an object so that its Dispose can wait for them: a call entered before
/// <see cref="Close"/> runs to its end, one entered after throws <see cref="ObjectDisposedException"/>.
/// </summary>
internal sealed class CallGate
{
    readonly object _lock = new();
    int _running;
    bool _closed;

    public Call Enter(object owner)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, owner);
            _running++;
        }
        return new Call(this);
    }

    /// <summary>Refuses new calls, then blocks until the running ones have left. Calling it again waits the same way.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            while (_running > 0) Monitor.Wait(_lock);
        }
    }

    void Leave()
    {
        lock (_lock)
            if (--_running == 0 && _closed) Monitor.PulseAll(_lock);
    }

    /// <summary>One running call; disposing it leaves the gate.</summary>
    public readonly struct Call(CallGate gate) : IDisposable
    {
        public void Dispose() => gate.Leave();
    }
}
