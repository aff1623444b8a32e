using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>Pooling over channels-last (NHWC) activations; vectors run along the channels, which are contiguous.</summary>
public static class Pooling
{
    /// <summary>
    /// Average pool, k×k window, stride k, no padding, floor mode (PyTorch <c>AvgPool2d(k)</c>): x [B, H, W, C] →
    /// y [B, ⌊H/k⌋, ⌊W/k⌋, C]. Each output sums its window from zero in (ky, kx) order, then divides by k² — the same
    /// order at every vector width, so all levels give bit-identical results. With k = H = W it is the global mean.
    /// y must not overlap x.
    /// </summary>
    public static unsafe void AveragePool(ReadOnlySpan<float> input, int batch, int height, int width, int channels, int kernel,
        Span<float> output, int maxThreads = 0, SimdLevel? level = null)
    {
        Convolution.Check(batch >= 0 && channels >= 1 && kernel >= 1, "batch must be non-negative, channels and kernel positive");
        Convolution.Check(height >= kernel && width >= kernel, $"a {kernel}×{kernel} pool does not fit an input of {height}×{width}");
        int outHeight = height / kernel, outWidth = width / kernel;
        Convolution.Check(input.Length >= (long)batch * height * width * channels, $"input has {input.Length} values, expected [{batch}, {height}, {width}, {channels}]");
        Convolution.Check(output.Length >= (long)batch * outHeight * outWidth * channels, $"output has {output.Length} values, expected [{batch}, {outHeight}, {outWidth}, {channels}]");
        var l = level ?? Simd.Best;
        float divisor = kernel * kernel;
        fixed (float* pin = input, pout = output)
        {
            float* source = pin, destination = pout;
            int rows = batch * outHeight * outWidth;
            SpatialParallel.For(rows, SpatialParallel.Threads(maxThreads), (long)kernel * kernel * channels, (first, end) =>
            {
                for (int row = first; row < end; row++)
                {
                    int ox = row % outWidth, oy = row / outWidth % outHeight, b = row / (outWidth * outHeight);
                    float* window = source + (((long)b * height + oy * kernel) * width + ox * kernel) * channels;
                    Window(window, (long)width * channels, channels, kernel, divisor, destination + (long)row * channels, l);
                }
            });
        }
    }

    /// <summary>One output pixel: the mean of a k×k window whose rows are <paramref name="rowStride"/> floats apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Window(float* window, long rowStride, int channels, int kernel, float divisor, float* output, SimdLevel level)
    {
        int c = 0;
        if (level >= SimdLevel.Vector512)
            for (; c <= channels - 16; c += 16)
            {
                var sum = Vector512<float>.Zero;
                for (int ky = 0; ky < kernel; ky++)
                    for (int kx = 0; kx < kernel; kx++) sum += Vector512.Load(window + ky * rowStride + kx * channels + c);
                Vector512.Store(sum / divisor, output + c);
            }
        if (level >= SimdLevel.Vector256)
            for (; c <= channels - 8; c += 8)
            {
                var sum = Vector256<float>.Zero;
                for (int ky = 0; ky < kernel; ky++)
                    for (int kx = 0; kx < kernel; kx++) sum += Vector256.Load(window + ky * rowStride + kx * channels + c);
                Vector256.Store(sum / divisor, output + c);
            }
        if (level >= SimdLevel.Vector128)
            for (; c <= channels - 4; c += 4)
            {
                var sum = Vector128<float>.Zero;
                for (int ky = 0; ky < kernel; ky++)
                    for (int kx = 0; kx < kernel; kx++) sum += Vector128.Load(window + ky * rowStride + kx * channels + c);
                Vector128.Store(sum / divisor, output + c);
            }
        for (; c < channels; c++)
        {
            float sum = 0f;
            for (int ky = 0; ky < kernel; ky++)
                for (int kx = 0; kx < kernel; kx++) sum += window[ky * rowStride + kx * channels + c];
            output[c] = sum / divisor;
        }
    }
}
