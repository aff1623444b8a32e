using ManagedClip.Backends;

namespace ManagedClip.Modeling;

/// <summary>
/// Runs a tower's forward pass over a batch the way its backend splits it (<see cref="ComputeBackend.Run"/>): each part gets its share of
/// the host inputs and outputs and operators of its own. Spans cannot be captured by a part's body, hence the pinned pointers.
/// </summary>
internal static class BatchParts
{
    /// <summary>A tower's forward pass over a contiguous share of the batch: pixels [count, 3, R, R] → features [count, E].</summary>
    public delegate void ImageForward(Operators ops, ReadOnlySpan<float> pixels, int count, Span<float> features);

    /// <summary>A tower's forward pass over items [start, start + count) of the batch → features [count, E].</summary>
    public delegate void Forward(Operators ops, int start, int count, Span<float> features);

    /// <summary>pixels [batch, imageLength] → features [batch, featureLength], in the backend's parts.</summary>
    public static unsafe void RunImages(ComputeBackend backend, int threads, ReadOnlySpan<float> pixels, int imageLength, int batch,
        Span<float> features, int featureLength, ImageForward forward)
    {
        fixed (float* pinned = pixels)
        {
            float* p = pinned;
            int pixelsLength = pixels.Length;
            Run(backend, threads, batch, features, featureLength, (ops, start, count, part) =>
                forward(ops, new ReadOnlySpan<float>(p, pixelsLength).Slice(start * imageLength, count * imageLength), count, part));
        }
    }

    /// <summary>Items [0, batch) → features [batch, featureLength], in the backend's parts.</summary>
    public static unsafe void Run(ComputeBackend backend, int threads, int batch, Span<float> features, int featureLength, Forward forward)
    {
        fixed (float* pinned = features)
        {
            float* f = pinned;
            int featuresLength = features.Length;
            backend.Run(batch, threads, (start, count, ops) =>
                forward(ops, start, count, new Span<float>(f, featuresLength).Slice(start * featureLength, count * featureLength)));
        }
    }

    /// <summary>Row b·<paramref name="length"/> + <paramref name="position"/> of every item b: the same token of each sequence.</summary>
    public static int[] TokenRows(int batch, int length, int position)
    {
        var rows = new int[batch];
        for (int b = 0; b < batch; b++) rows[b] = b * length + position;
        return rows;
    }
}
