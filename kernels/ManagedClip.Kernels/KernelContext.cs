using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>
/// How a kernel call runs: on at most <see cref="Threads"/> threads, at SIMD <see cref="Level"/>, and, for a call made by one
/// member of a batch split over threads, as that member of a <see cref="WorkSharing"/> team (whose finished members help with
/// its GEMMs). Made once per forward call (<see cref="Create"/> resolves the thread count and checks the level) and passed to
/// every kernel, so no kernel resolves threads or levels itself and nothing travels beside the arguments.
/// </summary>
public sealed class KernelContext
{
    /// <summary>All cores, the widest SIMD level this machine runs.</summary>
    public static KernelContext Default { get; } = Create();

    /// <summary>One thread, the widest SIMD level.</summary>
    public static KernelContext SingleThread { get; } = Create(1);

    /// <summary>Threads a call may use (≥ 1).</summary>
    public int Threads { get; }

    /// <summary>The vector width every kernel of the call runs at; <see cref="SimdLevel.Scalar"/> runs the scalar twins (the oracle).</summary>
    public SimdLevel Level { get; }

    internal WorkSharing? Team { get; }
    internal int Member { get; }

    KernelContext(int threads, SimdLevel level, WorkSharing? team, int member)
    {
        Threads = threads; Level = level; Team = team; Member = member;
    }

    /// <summary>
    /// <paramref name="maxThreads"/> 0 means every core (<see cref="ResolveThreads"/>); a null <paramref name="level"/> means
    /// <see cref="Simd.Best"/>, and a level this machine cannot run is an argument error, not a silent slow path.
    /// </summary>
    public static KernelContext Create(int maxThreads = 0, SimdLevel? level = null)
    {
        var l = level ?? Simd.Best;
        if (l != SimdLevel.Scalar && !Simd.Supported.Contains(l))
            throw new ArgumentException($"SIMD level {l} is not supported on this machine (supported: {string.Join(", ", Simd.Supported)}).", nameof(level));
        return new KernelContext(ResolveThreads(maxThreads), l, null, 0);
    }

    /// <summary>The one place a thread limit becomes a count: 0 is every core, a positive number itself.</summary>
    public static int ResolveThreads(int maxThreads)
    {
        if (maxThreads < 0) throw new ArgumentOutOfRangeException(nameof(maxThreads), maxThreads, "maxThreads must be 0 (all cores) or positive.");
        return maxThreads == 0 ? Environment.ProcessorCount : maxThreads;
    }

    /// <summary>
    /// The same level on <paramref name="threads"/> threads: this context itself when it already has that many (a team member
    /// asked for one thread stays a member), else a new one outside any team.
    /// </summary>
    public KernelContext WithThreads(int threads) =>
        threads == Threads ? this : new KernelContext(ResolveThreads(threads), Level, null, 0);

    /// <summary>One thread, as member <paramref name="member"/> of <paramref name="team"/>: its GEMMs are shared with the members that have finished.</summary>
    public KernelContext AsMember(WorkSharing team, int member)
    {
        ArgumentNullException.ThrowIfNull(team);
        if ((uint)member >= (uint)team.Members) throw new ArgumentOutOfRangeException(nameof(member), member, $"the team has {team.Members} members.");
        return new KernelContext(1, Level, team, member);
    }

    /// <summary>
    /// The one parallel loop of the kernels: <paramref name="count"/> independent items, split over at most <see cref="Threads"/>
    /// workers (fewer when there is under <see cref="MinimumWorkPerThread"/> of work, counted as <paramref name="workPerItem"/>
    /// touched floats or multiply-adds per item, for each). Each worker runs <paramref name="body"/>(first, end) over contiguous
    /// ranges pulled from a shared counter, so a worker whose core is busy elsewhere leaves its remaining ranges to the others.
    /// Items never depend on which worker runs them, so results do not depend on the thread count.
    /// </summary>
    public void For(int count, long workPerItem, Action<int, int> body) =>
        ForWorkers(count, workPerItem, (ranges, _) => { while (ranges.TryTake(out int first, out int end)) body(first, end); });

    /// <summary>
    /// <see cref="For"/> for bodies with per-worker state (scratch): <paramref name="worker"/>(ranges, index) runs once per worker,
    /// index in [0, workers), and takes ranges until none are left.
    /// </summary>
    public void ForWorkers(int count, long workPerItem, Action<WorkRanges, int> worker)
    {
        if (count <= 0) return;
        int workers = Workers(count, workPerItem);
        var ranges = new WorkRanges(count, workers);
        if (workers <= 1) { worker(ranges, 0); return; }
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w => worker(ranges, w));
    }

    /// <summary>Workers <see cref="For"/> uses for <paramref name="count"/> items of <paramref name="workPerItem"/> each.</summary>
    internal int Workers(long count, long workPerItem)
    {
        long byWork = Math.Max(1, count * Math.Max(1, workPerItem) / MinimumWorkPerThread);
        return (int)Math.Min(Math.Min(Threads, count), byWork);
    }

    /// <summary>Below this much work per worker, waking a thread costs more than it saves.</summary>
    public const long MinimumWorkPerThread = 1L << 15;

    /// <summary>
    /// Runs a GEMM's tasks: on the calling thread when it is small (<paramref name="small"/>) or the context has one thread, then
    /// published to the team, if any, so that its finished members help; otherwise on <see cref="Threads"/> workers.
    /// </summary>
    internal void Run(SharedWork work, bool small)
    {
        int workers = (int)Math.Min(Threads, work.Tasks);
        if (small) { work.RunTasks(); return; }
        if (workers <= 1)
        {
            if (Team is { } team) team.Run(work, Member);
            else work.RunTasks();
            return;
        }
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ => work.RunTasks());
    }

    /// <summary>The threads and the SIMD level, e.g. "8 thread(s), AVX-512 (Vector512)".</summary>
    public override string ToString() => $"{Threads} thread(s), {Simd.Describe(Level)}";
}

/// <summary>
/// The shared counter of one <see cref="KernelContext.For"/> loop: items [0, count) handed out in contiguous ranges, about four
/// per worker (enough to rebalance when a core is taken away, few enough that each range keeps its rows' locality).
/// </summary>
public sealed class WorkRanges
{
    readonly int _count, _grain;
    int _next;

    internal WorkRanges(int count, int workers)
    {
        _count = count;
        _grain = Math.Max(1, (int)(((long)count + 4L * workers - 1) / (4L * workers)));
    }

    /// <summary>The next range [first, end) of items nobody has taken; false when none are left.</summary>

    public bool TryTake(out int first, out int end)
    {
        long start = Interlocked.Add(ref _next, _grain) - (long)_grain;
        first = (int)Math.Min(start, _count);
        end = (int)Math.Min(start + _grain, _count);
        return first < end;
    }
}

/// <summary>
/// A kernel body written once over the width-generic <see cref="IVecOps{TVec}"/> (the TensorPrimitives pattern, kept width-generic):
/// a struct holding the call's arguments, run at one level by <see cref="SimdDispatch.Run"/>. At <see cref="SimdLevel.Scalar"/> it is
/// instantiated with <see cref="OpsScalar"/>; a kernel whose scalar twin is a different, plainer algorithm (the test oracle)
/// tests <see cref="SimdDispatch.IsScalar{TVec}"/> first.
/// </summary>
internal interface IVectorKernel
{
    void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>;
}

/// <summary>The one switch from a <see cref="SimdLevel"/> to a width-generic instantiation.</summary>
internal static class SimdDispatch
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run<TKernel>(SimdLevel level, ref TKernel kernel) where TKernel : struct, IVectorKernel
    {
        switch (level)
        {
            case SimdLevel.Vector512: kernel.Run<Vector512<float>, Ops512>(); break;
            case SimdLevel.Vector256: kernel.Run<Vector256<float>, Ops256>(); break;
            case SimdLevel.Vector128: kernel.Run<Vector128<float>, Ops128>(); break;
            default: kernel.Run<float, OpsScalar>(); break;
        }
    }

    /// <summary>True for the scalar instantiation (a JIT-time constant in every specialization).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsScalar<TVec>() => typeof(TVec) == typeof(float);
}
