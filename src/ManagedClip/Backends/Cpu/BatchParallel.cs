using ManagedClip.Kernels;

namespace ManagedClip.Backends.Cpu;

/// <summary>
/// The one level of parallelism a forward call uses: over batch items when the batch divides well among the threads, each
/// thread running its contiguous share of items through the whole tower single-threaded; otherwise inside the kernels
/// (GEMM tiles, attention heads) with all threads. Splitting the batch means no synchronization per layer, only one join
/// at the end, which is what keeps two threads useful on a busy machine where a kernel-level barrier waits every time a
/// thread loses its core. The price is the join: when one core runs slower for a while (a neighbour on it), the thread that
/// finished first would wait; instead it helps with the GEMMs the other still runs (<see cref="WorkSharing"/>; A/B at batch
/// 8, 2 threads, medians: ViT-B/32 image +11–17 %, RN50 +23 %, text +2 %). Every item's result is bit-identical either way:
/// no kernel's per-row arithmetic depends on how many rows share the call, or on which thread runs a GEMM task.
/// </summary>
internal static class BatchParallel
{
    /// <summary>Number of parts to split <paramref name="batch"/> items into for <paramref name="threads"/> threads (1: do not split).</summary>
    public static int Parts(int batch, int threads) =>
        threads > 1 && batch >= threads && (batch % threads == 0 || batch >= 4 * threads) ? threads : 1;

    /// <summary>
    /// Runs <paramref name="body"/>(start, count, kernelsForThePart) over the batch: once with the whole context, or once per
    /// part in parallel with one thread each. The parts form a <see cref="WorkSharing"/> team, each part's context naming it
    /// (<see cref="KernelContext.AsMember"/>): one that has finished its part runs tasks of the GEMMs the others still have in flight.
    /// </summary>
    public static void Run(int batch, KernelContext kernels, Action<int, int, KernelContext> body)
    {
        int parts = Parts(batch, kernels.Threads);
        if (parts == 1) { body(0, batch, kernels); return; }
        var team = new WorkSharing(parts);
        try
        {
            // One worker per part (each part is at least the minimum work). Parts are claimed, not assigned: if the pool lends
            // no second thread, this one runs every part and nobody waits for a part that no thread will start.
            kernels.ForWorkers(parts, KernelContext.MinimumWorkPerThread, (claimed, _) =>
            {
                while (claimed.TryTake(out int first, out int end))
                    for (int part = first; part < end; part++)
                    {
                        int start = (int)((long)batch * part / parts), stop = (int)((long)batch * (part + 1) / parts);
                        try { body(start, stop - start, kernels.AsMember(team, part)); }
                        finally { team.Finished(); }
                    }
                team.HelpUntilAllFinished();
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // Callers see the same typed exception (bad token ids, …) as from an unsplit call.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }
}
