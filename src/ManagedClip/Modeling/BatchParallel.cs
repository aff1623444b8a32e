namespace ManagedClip.Modeling;

/// <summary>
/// The one level of parallelism a forward call uses: over batch items when the batch divides well among the threads, each
/// thread running its contiguous share of items through the whole tower single-threaded; otherwise inside the kernels
/// (GEMM tiles, attention heads) with all threads. Splitting the batch means no synchronization per layer, only one join
/// at the end, which is what keeps two threads useful on a busy machine where a kernel-level barrier waits every time a
/// thread loses its core. Every item's result is bit-identical either way: no kernel's per-row arithmetic depends on how
/// many rows share the call.
/// </summary>
internal static class BatchParallel
{
    /// <summary>Number of parts to split <paramref name="batch"/> items into for <paramref name="threads"/> threads (1: do not split).</summary>
    public static int Parts(int batch, int threads) =>
        threads > 1 && batch >= threads && (batch % threads == 0 || batch >= 4 * threads) ? threads : 1;

    /// <summary>
    /// Runs <paramref name="body"/>(start, count, threadsForThePart) over the batch: once with all threads, or once per part
    /// in parallel with one thread each.
    /// </summary>
    public static void Run(int batch, int threads, Action<int, int, int> body)
    {
        int parts = Parts(batch, threads);
        if (parts == 1) { body(0, batch, threads); return; }
        try
        {
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            {
                int start = (int)((long)batch * part / parts), end = (int)((long)batch * (part + 1) / parts);
                body(start, end - start, 1);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // Callers see the same typed exception (bad token ids, …) as from an unsplit call.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }

    /// <summary>An image tower's forward pass over a contiguous share of the batch: pixels [count, 3, R, R] → features [count, E].</summary>
    public delegate void ImageForward(ReadOnlySpan<float> pixels, int count, Span<float> features, int threads);

    /// <summary>
    /// Runs an image tower over pixels [batch, imageLength] into features [batch, featureLength]: whole, or one share per
    /// part (spans cannot be captured by the parallel body, hence the pinned pointers).
    /// </summary>
    public static unsafe void RunImages(ReadOnlySpan<float> pixels, int imageLength, Span<float> features, int featureLength,
        int batch, int threads, ImageForward forward)
    {
        if (Parts(batch, threads) == 1) { forward(pixels, batch, features, threads); return; }
        fixed (float* pp = pixels, pf = features)
        {
            float* p = pp, f = pf;
            int pixelsLength = pixels.Length, featuresLength = features.Length;
            Run(batch, threads, (start, count, partThreads) =>
                forward(new ReadOnlySpan<float>(p, pixelsLength).Slice(start * imageLength, count * imageLength), count,
                    new Span<float>(f, featuresLength).Slice(start * featureLength, count * featureLength), partThreads));
        }
    }
}
