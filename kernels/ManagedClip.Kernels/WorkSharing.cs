namespace ManagedClip.Kernels;

/// <summary>
/// Threads that split one batch between them, each running its own items through a whole tower single-threaded, and that
/// help each other at the end: a member that has finished its items (<see cref="HelpUntilAllFinished"/>) runs tasks of the GEMMs
/// the others still have in flight, until every member is done. On a shared machine one core is often slower than the
/// other for a while (measured: one part of a ViT-B/32 batch-8 call taking 25 % longer than the other in half the calls,
/// 8 % of the two cores' time idle on average); without help the fast thread waits at the join.
/// <para>
/// Each member runs its kernels with a context that names the team and its place in it (<see cref="KernelContext.AsMember"/>);
/// a GEMM run by a member is published while it runs; helpers pull its
/// tasks from the same counter its owner does. Each output element is still computed by exactly one task in a fixed order,
/// so results are bit-identical whoever runs the task. Only the GEMMs are shared; the rest of a member's work (attention,
/// layer norm, the direct convolutions) stays its own.
/// </para>
/// </summary>
public sealed class WorkSharing
{
    readonly SharedWork?[] _inFlight;
    int _running;
    long _helped;

    /// <summary>How many times a finished member found GEMM tasks of another to run (for tests and diagnostics).</summary>
    public long TimesHelped => Interlocked.Read(ref _helped);

    /// <summary>Members of the team.</summary>
    public int Members => _inFlight.Length;

    /// <summary>A team of <paramref name="members"/> that share their GEMM tasks.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="members"/> is not positive.</exception>
    public WorkSharing(int members)
    {
        if (members <= 0) throw new ArgumentOutOfRangeException(nameof(members), members, "members must be positive.");
        _inFlight = new SharedWork?[members];
        _running = members;
    }

    /// <summary>A member has finished its own items (call it once per member, also when they failed).</summary>
    public void Finished() => Interlocked.Decrement(ref _running);

    /// <summary>
    /// Runs other members' GEMM tasks until every member has <see cref="Finished"/>. Call it only once every member's items
    /// have been taken by some thread: a member nobody has started would be waited for forever.
    /// </summary>
    public void HelpUntilAllFinished()
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref _running) > 0)
        {
            bool helped = false;
            foreach (ref var slot in _inFlight.AsSpan())
                if (Volatile.Read(ref slot) is { } work) helped |= work.RunTasks();
            if (helped) { Interlocked.Increment(ref _helped); spin.Reset(); }
            else spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the calling thread for member <paramref name="member"/> (<see cref="KernelContext.AsMember"/>):
    /// published for helpers, run to the end of its task counter, then waited on until the tasks helpers took are done too.
    /// </summary>
    internal void Run(SharedWork work, int member)
    {
        ref var slot = ref _inFlight[member];
        Volatile.Write(ref slot, work);
        work.RunTasks();
        Volatile.Write(ref slot, null);
        work.WaitUntilDone();
    }
}

/// <summary>
/// Work split into tasks pulled from a shared counter by any number of threads at once (<see cref="RunTasks"/>), and a count of
/// the tasks finished, so that its owner can wait for the ones helpers took.
/// </summary>
internal abstract class SharedWork
{
    int _next, _done;

    protected SharedWork(long tasks) => Tasks = tasks;

    public long Tasks { get; }

    /// <summary>Pulls and runs tasks until none are left (<see cref="TryTake"/>, <see cref="Completed"/>); false when it found none.</summary>
    public abstract bool RunTasks();

    protected bool TryTake(out long task) => (task = Interlocked.Increment(ref _next) - 1) < Tasks;

    protected void Completed() => Interlocked.Increment(ref _done);

    public void WaitUntilDone()
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref _done) < Tasks) spin.SpinOnce(sleep1Threshold: -1);
    }
}
