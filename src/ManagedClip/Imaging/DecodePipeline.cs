using System.Runtime.ExceptionServices;

namespace ManagedClip.Imaging;

/// <summary>
/// The threads one call may keep busy (<c>--threads</c>, <see cref="ClipModelOptions.MaxThreads"/>), shared between
/// decoding images ahead and the forward passes that consume them: decoding one image holds one thread; a forward pass
/// takes every thread that is free (at least one) and runs its kernels on that many. So the total never exceeds the
/// budget, and whichever side has work keeps the cores busy. A forward pass that is waiting goes first: decoders do not
/// start another image until it has its threads.
/// </summary>
internal sealed class ThreadBudget(int threads)
{
    private readonly object _gate = new();
    private int _free = threads, _forwardsWaiting;

    /// <summary>How many forward passes wait for threads (for tests).</summary>
    internal int ForwardsWaiting { get { lock (_gate) return _forwardsWaiting; } }

    public void AcquireForDecode()
    {
        lock (_gate)
        {
            while (_free == 0 || _forwardsWaiting > 0) Monitor.Wait(_gate);
            _free--;
        }
    }

    /// <summary>Waits for at least one free thread and takes all that are free; returns how many.</summary>
    public int AcquireForForward()
    {
        lock (_gate)
        {
            _forwardsWaiting++;
            try
            {
                while (_free == 0) Monitor.Wait(_gate);
                int taken = _free;
                _free = 0;
                return taken;
            }
            finally { _forwardsWaiting--; }
        }
    }

    public void Release(int count)
    {
        lock (_gate)
        {
            _free += count;
            Monitor.PulseAll(_gate);
        }
    }
}

/// <summary>
/// Produces items 0..count-1 (decoded and preprocessed images) on worker threads ahead of a consumer that takes them
/// in input order. At most <c>window</c> items are claimed and not yet taken at any time, so however long the input,
/// memory holds a bounded number of results, and each worker holds at most one full-size decoded image while it
/// preprocesses it. Workers are threads of their own, not thread-pool threads: the kernels' Parallel.For runs on the
/// pool, and a pool busy decoding would delay it. Disposing stops the workers after the item each is on.
/// </summary>
internal sealed class DecodePipeline<T> : IDisposable
{
    private readonly object _gate = new();
    private readonly Func<int, T> _produce;
    private readonly ThreadBudget _budget;
    private readonly int _count, _window;
    private readonly T[] _results;
    private readonly ExceptionDispatchInfo?[] _failures;
    private readonly bool[] _ready;
    private readonly Thread[] _workers;
    private int _claimed, _taken;
    private bool _stopping;

    public DecodePipeline(int count, int workers, int window, ThreadBudget budget, Func<int, T> produce)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        (_count, _window, _budget, _produce) = (count, window, budget, produce);
        _results = new T[window];
        _failures = new ExceptionDispatchInfo?[window];
        _ready = new bool[window];
        _workers = new Thread[Math.Min(workers, Math.Max(count, 1))];
        for (int w = 0; w < _workers.Length; w++)
        {
            _workers[w] = new Thread(Work) { IsBackground = true, Name = $"ManagedClip decode {w}" };
            _workers[w].Start();
        }
    }

    private void Work()
    {
        while (true)
        {
            int index;
            lock (_gate)
            {
                while (!_stopping && _claimed < _count && _claimed >= _taken + _window) Monitor.Wait(_gate);
                if (_stopping || _claimed >= _count) return;
                index = _claimed++;
            }
            T result = default!;
            ExceptionDispatchInfo? failure = null;
            _budget.AcquireForDecode();
            try { result = _produce(index); }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
            finally { _budget.Release(1); }
            lock (_gate)
            {
                int slot = index % _window;
                (_results[slot], _failures[slot], _ready[slot]) = (result, failure, true);
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>The next item in input order, waiting for it if a worker is still on it. An exception the producer
    /// threw for this item is rethrown here.</summary>
    public T Take()
    {
        T result;
        ExceptionDispatchInfo? failure;
        lock (_gate)
        {
            if (_taken >= _count) throw new InvalidOperationException("every item has been taken");
            int slot = _taken % _window;
            while (!_ready[slot]) Monitor.Wait(_gate);
            (result, failure) = (_results[slot], _failures[slot]);
            (_results[slot], _failures[slot], _ready[slot]) = (default!, null, false);
            _taken++;
            Monitor.PulseAll(_gate);
        }
        failure?.Throw();
        return result;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        foreach (var worker in _workers) worker.Join();
    }
}
