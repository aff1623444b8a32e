using ILGPU;
using ILGPU.Algorithms;

namespace ManagedClip.Gpu.Kernels;

/// <summary>Width, strides and ε of one layer-norm launch.</summary>
internal readonly struct LayerNormShape(int width, int xStride, int yStride, float epsilon)
{
    public readonly int Width = width, XStride = xStride, YStride = yStride;
    public readonly float Epsilon = epsilon;
}

/// <summary>
/// y[r, :] = (x[r, :] − mean) / √(biased variance + ε) · γ + β, one group of 256 threads per row. Two passes over the row,
/// as on the CPU (the mean, then Σ(x − mean)², so a large mean cannot cancel the variance), each a strided per-thread sum
/// (neighbouring threads read neighbouring floats) folded by a tree in shared memory. Every thread reads x[i] before it
/// writes y[i] for the same i, so x and y may be the same rows (in place).
/// </summary>
internal static class LayerNormKernel
{
    public const int Threads = 256;

    public static void Forward(ArrayView<float> x, ArrayView<float> y, ArrayView<float> gamma, ArrayView<float> beta, LayerNormShape s)
    {
        var partial = SharedMemory.Allocate<float>(Threads);
        int t = Group.IdxX, xRow = Grid.IdxX * s.XStride, yRow = Grid.IdxX * s.YStride;

        float sum = 0f;
        for (int i = t; i < s.Width; i += Threads) sum += x[xRow + i];
        float mean = GroupSum(partial, sum, t) / s.Width;

        float squares = 0f;
        for (int i = t; i < s.Width; i += Threads)
        {
            float d = x[xRow + i] - mean;
            squares += d * d;
        }
        float rstd = 1f / XMath.Sqrt(GroupSum(partial, squares, t) / s.Width + s.Epsilon);

        for (int i = t; i < s.Width; i += Threads)
            y[yRow + i] = (x[xRow + i] - mean) * (rstd * gamma[i]) + beta[i];
    }

    /// <summary>The sum of every thread's <paramref name="value"/>, returned to all threads (tree over 256 slots; the slots are free again on return).</summary>
    internal static float GroupSum(ArrayView<float> partial, float value, int t)
    {
        partial[t] = value;
        Group.Barrier();
        for (int half = Threads / 2; half > 0; half /= 2)
        {
            if (t < half) partial[t] += partial[t + half];
            Group.Barrier();
        }
        float total = partial[0];
        Group.Barrier();
        return total;
    }
}
