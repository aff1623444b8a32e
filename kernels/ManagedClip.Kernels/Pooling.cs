using System.Runtime.CompilerServices;

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
    public static unsafe void AveragePool(ReadOnlySpan<float> input, ImageGeometry shape, int kernel, Span<float> output, KernelContext? context = null)
    {
        var ctx = context ?? KernelContext.Default;
        shape.Check(nameof(input));
        Convolution.Check(kernel >= 1, "kernel must be positive");
        Convolution.Check(shape.Height >= kernel && shape.Width >= kernel, $"a {kernel}×{kernel} pool does not fit an input of {shape.Height}×{shape.Width}");
        var outShape = shape.With(shape.Height / kernel, shape.Width / kernel, shape.Channels);
        Convolution.Check(input.Length >= shape.Length, $"input has {input.Length} values, expected {shape}");
        Convolution.Check(output.Length >= outShape.Length, $"output has {output.Length} values, expected {outShape}");
        fixed (float* pin = input, pout = output)
        {
            var pool = new AveragePoolKernel(pin, pout, shape, kernel, ctx);
            SimdDispatch.Run(ctx.Level, ref pool);
        }
    }

    readonly unsafe struct AveragePoolKernel(float* input, float* output, ImageGeometry shape, int kernel, KernelContext context) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            float* source = input, destination = output;
            var s = shape;
            int k = kernel, outHeight = s.Height / k, outWidth = s.Width / k;
            float divisor = k * k;
            context.For((int)((long)s.Batch * outHeight * outWidth), (long)k * k * s.Channels, (first, end) =>
            {
                for (int row = first; row < end; row++)
                {
                    int ox = row % outWidth, oy = row / outWidth % outHeight, b = row / (outWidth * outHeight);
                    float* window = source + (((long)b * s.Height + oy * k) * s.Width + ox * k) * s.Channels;
                    float* pixel = destination + (long)row * s.Channels;
                    int c = Window<TVec, TOps>(window, (long)s.Width * s.Channels, s.Channels, k, divisor, pixel, 0);
                    Window<float, OpsScalar>(window, (long)s.Width * s.Channels, s.Channels, k, divisor, pixel, c);
                }
            });
        }
    }

    /// <summary>One output pixel's channels from <paramref name="c"/> on, a vector at a time: the mean of a k×k window whose rows are <paramref name="rowStride"/> floats apart. Returns where it stopped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe int Window<TVec, TOps>(float* window, long rowStride, int channels, int kernel, float divisor, float* output, int c)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        var d = TOps.Splat(divisor);
        for (; c + TOps.Count <= channels; c += TOps.Count)
        {
            var sum = TOps.Zero;
            for (int ky = 0; ky < kernel; ky++)
                for (int kx = 0; kx < kernel; kx++) sum = TOps.Add(sum, TOps.Load(window + ky * rowStride + kx * channels + c));
            TOps.Store(TOps.Div(sum, d), output + c);
        }
        return c;
    }
}
