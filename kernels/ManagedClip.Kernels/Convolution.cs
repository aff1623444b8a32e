using System.Runtime.Intrinsics;

namespace ManagedClip.Kernels;

/// <summary>
/// 2-D convolution over channels-last (NHWC) activations, square kernel k, stride s, zero padding p:
/// y[b, oy, ox, co] = act(Σ_{ky, kx, ci} x[b, oy·s − p + ky, ox·s − p + kx, ci] · w[co, ci, ky, kx] + bias[co]) [+ y].
/// <para>
/// Layout choice: NHWC, so that a convolution is exactly one GEMM and all the arithmetic lives in <see cref="Gemm"/>
/// (whose packed, tiled, threaded micro-kernels and fused bias/activation/residual epilogue we get for free).
/// A 1×1 stride-1 convolution is <c>Gemm.Multiply</c> over the activations as they lie, [B·H·W, Cin] × [Cin, Cout];
/// a k×k convolution is an explicit im2col into a caller-bounded scratch, [rows, k·k·Cin] × [k·k·Cin, Cout], a
/// chunk of output rows at a time. In NHWC one im2col row is k contiguous runs of k·Cin floats (one per kernel row),
/// so im2col is a handful of memcpy-sized copies per output pixel, and the GEMM reads it row-major in place.
/// NCHW with im2col would need a transposed column matrix (or a GEMM with the weights on the left), and a blocked
/// layout would need its own micro-kernel; neither lets the shared GEMM do the work unchanged.
/// Weights are repacked once at load from OIHW to [(ky, kx, ci), co] (<see cref="PackWeights"/>).
/// </para>
/// Every kernel takes a <see cref="SimdLevel"/>; the scalar level is the oracle the tests compare the others with.
/// Results do not depend on the thread count: each output element is produced by one thread in a fixed order.
/// </summary>
public static class Convolution
{
    const int ColumnChunkFloats = 1 << 18;
    const int ColumnChunkRows = 96;

    /// <summary>Output side of a convolution: ⌊(size + 2·padding − kernel) / stride⌋ + 1.</summary>
    public static int OutputSize(int size, int kernel, int stride, int padding)
    {
        Check(size >= 1 && kernel >= 1 && stride >= 1 && padding >= 0, "size, kernel and stride must be positive and padding non-negative");
        int output = (size + 2 * padding - kernel) / stride + 1;
        Check(size + 2 * padding >= kernel, $"a {kernel}×{kernel} kernel does not fit an input of {size} with padding {padding}");
        return output;
    }

    /// <summary>OIHW weights [Cout, Cin, k, k] → the packed GEMM operand [(ky, kx, ci), co] this layout multiplies by.</summary>
    public static PackedMatrix PackWeights(ReadOnlySpan<float> weights, int outChannels, int inChannels, int kernel)
    {
        Check(outChannels >= 1 && inChannels >= 1 && kernel >= 1, "channels and kernel must be positive");
        int rows = kernel * kernel * inChannels;
        Check(weights.Length == outChannels * rows, $"weights have {weights.Length} values, expected [{outChannels}, {inChannels}, {kernel}, {kernel}]");
        var matrix = new float[rows * outChannels];
        for (int co = 0; co < outChannels; co++)
            for (int ci = 0; ci < inChannels; ci++)
                for (int ky = 0; ky < kernel; ky++)
                    for (int kx = 0; kx < kernel; kx++)
                        matrix[((ky * kernel + kx) * inChannels + ci) * outChannels + co] = weights[((co * inChannels + ci) * kernel + ky) * kernel + kx];
        return PackedMatrix.FromRowMajor(matrix, rows, outChannels);
    }

    /// <summary>Scratch a k×k convolution needs for at least one output row at a time (1×1 stride 1 needs none).</summary>
    public static int MinimumScratch(int inChannels, int kernel, int stride, int padding) =>
        kernel == 1 && stride == 1 && padding == 0 ? 0 : kernel * kernel * inChannels;

    /// <summary>
    /// x [B, H, W, Cin] → y [B, Ho, Wo, Cout] = act(conv(x) + bias) (or y += … with <paramref name="accumulate"/>: the residual add;
    /// or act(conv(x) + bias + residual) with a <paramref name="residual"/> [B, Ho, Wo, Cout], which may be y itself).
    /// <paramref name="weights"/> from <see cref="PackWeights"/>; <paramref name="scratch"/> holds im2col rows (any length ≥
    /// <see cref="MinimumScratch"/>; more rows per chunk means fewer, larger GEMMs). y must not overlap x or scratch.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, int inChannels,
        PackedMatrix weights, int kernel, int stride, int padding, ReadOnlySpan<float> bias, Span<float> output, Span<float> scratch,
        Activation activation = Activation.None, bool accumulate = false, int maxThreads = 0, SimdLevel? level = null,
        ReadOnlySpan<float> residual = default)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Check(batch >= 0, "batch must be non-negative");
        int outHeight = OutputSize(height, kernel, stride, padding), outWidth = OutputSize(width, kernel, stride, padding);
        int rowLength = kernel * kernel * inChannels, outChannels = weights.N;
        Check(weights.K == rowLength, $"packed weights have K = {weights.K}, expected k·k·Cin = {rowLength}");
        Check(input.Length >= (long)batch * height * width * inChannels, $"input has {input.Length} values, expected [{batch}, {height}, {width}, {inChannels}]");
        long rows = (long)batch * outHeight * outWidth;
        Check(output.Length >= rows * outChannels, $"output has {output.Length} values, expected [{batch}, {outHeight}, {outWidth}, {outChannels}]");
        if (rows == 0) return;

        if (MinimumScratch(inChannels, kernel, stride, padding) == 0)
        {
            // 1×1, stride 1: the NHWC activations already are the GEMM's left operand.
            Gemm.Multiply(input[..checked((int)rows * inChannels)], (int)rows, weights, bias, output[..checked((int)rows * outChannels)],
                activation, accumulate, maxThreads, level, residual.IsEmpty ? default : residual[..checked((int)rows * outChannels)]);
            return;
        }

        // Chunks of im2col rows small enough to stay in L2 between being written and being read by the GEMM (≈ 1 MiB), but
        // never under ColumnChunkRows = 96 rows, so that each pass over the weights still feeds enough rows. (A 384-row floor
        // made RN50's K = 2304 and 4608 chunks 3.5–7 MiB, read back from L3; 96 measured 3 % faster end to end.)
        // With several threads and several chunks, each worker takes whole chunks (its own part of the scratch, im2col and
        // GEMM on one thread): one fork-join per convolution instead of two per chunk.
        int threads = SpatialParallel.Threads(maxThreads);
        int chunkLimit = (int)Math.Min(rows, Math.Max(ColumnChunkRows, ColumnChunkFloats / rowLength));
        int workers = (int)Math.Min(threads, (rows + chunkLimit - 1) / chunkLimit);
        if (workers > 1 && scratch.Length / workers < rowLength) workers = 1;
        int chunk = Math.Min(chunkLimit, scratch.Length / workers / rowLength);
        Check(chunk >= 1, $"scratch has {scratch.Length} values, a {kernel}×{kernel} convolution over {inChannels} channels needs at least {rowLength}");
        // Equal chunks, not full ones and a sliver: 784 rows are 392 + 392, not 384 + 384 + 16 (a sliver streams all the weights
        // again for a handful of rows).
        long chunks = (rows + chunk - 1) / chunk;
        chunk = (int)((rows + chunks - 1) / chunks);
        if (workers > 1)
        {
            ChunksInParallel(input, batch, height, width, inChannels, weights, kernel, stride, padding, bias, output, scratch, activation,
                accumulate, level, residual, (int)rows, chunk, workers);
            return;
        }
        for (int start = 0; start < rows; start += chunk)
        {
            int count = (int)Math.Min(chunk, rows - start);
            Span<float> columns = scratch[..(count * rowLength)];                    // [count, k·k·Cin]
            Im2Col(input, batch, height, width, inChannels, kernel, stride, padding, start, count, columns, maxThreads, level);
            Gemm.Multiply(columns, count, weights, bias, output.Slice(start * outChannels, count * outChannels),
                activation, accumulate, maxThreads, level, residual.IsEmpty ? default : residual.Slice(start * outChannels, count * outChannels));
        }
    }

    /// <summary>
    /// The chunk loop of <see cref="Forward"/> on <paramref name="workers"/> threads: chunks are taken from a shared counter, and
    /// worker w writes its im2col rows into part w of the scratch. Each output row is still one single-threaded GEMM row, so the
    /// result is bit-identical to the serial loop.
    /// </summary>
    static unsafe void ChunksInParallel(ReadOnlySpan<float> input, int batch, int height, int width, int inChannels, PackedMatrix weights,
        int kernel, int stride, int padding, ReadOnlySpan<float> bias, Span<float> output, Span<float> scratch, Activation activation,
        bool accumulate, SimdLevel? level, ReadOnlySpan<float> residual, int rows, int chunk, int workers)
    {
        int rowLength = kernel * kernel * inChannels, outChannels = weights.N, part = scratch.Length / workers;
        int inputLength = input.Length, biasLength = bias.Length, outputLength = output.Length, residualLength = residual.Length;
        int next = 0;
        fixed (float* pin = input, pb = bias, pout = output, ps = scratch, pr = residual)
        {
            float* source = pin, b = pb, destination = pout, columns = ps, res = pr;
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            {
                int start;
                while ((start = Interlocked.Add(ref next, chunk) - chunk) < rows)
                {
                    int count = Math.Min(chunk, rows - start);
                    var own = new Span<float>(columns + (long)w * part, count * rowLength);
                    Im2Col(new ReadOnlySpan<float>(source, inputLength), batch, height, width, inChannels, kernel, stride, padding, start, count, own, 1, level);
                    Gemm.Multiply(own, count, weights, new ReadOnlySpan<float>(b, biasLength),
                        new Span<float>(destination, outputLength).Slice(start * outChannels, count * outChannels), activation, accumulate, 1, level,
                        residualLength == 0 ? default : new ReadOnlySpan<float>(res, residualLength).Slice(start * outChannels, count * outChannels));
                }
            });
        }
    }

    /// <summary>
    /// Rows [rowStart, rowStart + rowCount) of the im2col matrix of x [B, H, W, C]: row (b, oy, ox) holds, in (ky, kx, c) order,
    /// the input pixels under the kernel placed at that output pixel, zeros where it hangs over the border.
    /// </summary>
    public static unsafe void Im2Col(ReadOnlySpan<float> input, int batch, int height, int width, int channels, int kernel, int stride, int padding,
        int rowStart, int rowCount, Span<float> columns, int maxThreads = 0, SimdLevel? level = null)
    {
        int outHeight = OutputSize(height, kernel, stride, padding), outWidth = OutputSize(width, kernel, stride, padding);
        int rowLength = kernel * kernel * channels;
        Check(channels >= 1, "channels must be positive");
        Check(input.Length >= (long)batch * height * width * channels, $"input has {input.Length} values, expected [{batch}, {height}, {width}, {channels}]");
        Check(rowStart >= 0 && rowCount >= 0 && (long)rowStart + rowCount <= (long)batch * outHeight * outWidth, "row range outside the output");
        Check(columns.Length >= (long)rowCount * rowLength, $"columns have {columns.Length} values, expected [{rowCount}, {rowLength}]");
        var l = level ?? Simd.Best;
        fixed (float* pin = input, pcol = columns)
        {
            float* source = pin, destination = pcol;
            SpatialParallel.For(rowCount, SpatialParallel.Threads(maxThreads), rowLength, (first, end) =>
            {
                for (int r = first; r < end; r++)
                {
                    int row = rowStart + r, ox = row % outWidth, oy = row / outWidth % outHeight, b = row / (outWidth * outHeight);
                    float* column = destination + (long)r * rowLength;
                    // Kernel columns kx in [kx0, kx1) land inside the image; in NHWC they are one contiguous run of (kx1 − kx0)·C floats.
                    int x0 = ox * stride - padding;
                    int kx0 = Math.Max(0, -x0), kx1 = Math.Min(kernel, width - x0);
                    for (int ky = 0; ky < kernel; ky++)
                    {
                        float* line = column + ky * kernel * channels;
                        int iy = oy * stride - padding + ky;
                        if (iy < 0 || iy >= height || kx1 <= kx0) { new Span<float>(line, kernel * channels).Clear(); continue; }
                        if (kx0 > 0) new Span<float>(line, kx0 * channels).Clear();
                        Copy(source + (((long)b * height + iy) * width + x0 + kx0) * channels, line + kx0 * channels, (kx1 - kx0) * channels, l);
                        if (kx1 < kernel) new Span<float>(line + kx1 * channels, (kernel - kx1) * channels).Clear();
                    }
                }
            });
        }
    }

    /// <summary>NCHW [B, C, H, W] (how images arrive) → NHWC [B, H, W, C].</summary>
    public static void ToChannelsLast(ReadOnlySpan<float> input, int batch, int channels, int height, int width, Span<float> output)
    {
        int plane = height * width;
        Check(input.Length >= (long)batch * channels * plane && output.Length >= (long)batch * channels * plane, "input or output is shorter than [B, C, H, W]");
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < channels; c++)
            {
                ReadOnlySpan<float> source = input.Slice((b * channels + c) * plane, plane);
                Span<float> destination = output.Slice(b * plane * channels);
                for (int i = 0; i < plane; i++) destination[i * channels + c] = source[i];
            }
    }

    /// <summary>dst[0..n) = src[0..n) at the given vector width, narrower widths taking the tails; the scalar level is the plain loop.</summary>
    static unsafe void Copy(float* source, float* destination, int count, SimdLevel level)
    {
        int i = 0;
        if (level >= SimdLevel.Vector512)
            for (; i <= count - 16; i += 16) Vector512.Store(Vector512.Load(source + i), destination + i);
        if (level >= SimdLevel.Vector256)
            for (; i <= count - 8; i += 8) Vector256.Store(Vector256.Load(source + i), destination + i);
        if (level >= SimdLevel.Vector128)
            for (; i <= count - 4; i += 4) Vector128.Store(Vector128.Load(source + i), destination + i);
        for (; i < count; i++) destination[i] = source[i];
    }

    internal static void Check(bool condition, string message)
    {
        if (!condition) throw new ArgumentException(message);
    }
}

/// <summary>Splits a range of independent output rows over at most <c>threads</c> workers, inline when the work is small.</summary>
internal static class SpatialParallel
{
    /// <summary>Below this many touched floats per worker, waking a thread costs more than it saves.</summary>
    const long MinimumWorkPerThread = 1L << 15;

    public static int Threads(int maxThreads) => maxThreads > 0 ? maxThreads : Environment.ProcessorCount;

    public static void For(int count, int threads, long workPerItem, Action<int, int> body)
    {
        long byWork = Math.Max(1, count * Math.Max(1, workPerItem) / MinimumWorkPerThread);
        int parts = (int)Math.Min(Math.Min(threads, count), byWork);
        if (parts <= 1) { if (count > 0) body(0, count); return; }
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts },
            part => body((int)((long)count * part / parts), (int)((long)count * (part + 1) / parts)));
    }
}
