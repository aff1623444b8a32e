using System.Runtime.CompilerServices;
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
/// The exception is a k×k convolution with a single 32- or 64-channel output panel (RN50's stem and layer1's 3×3): there
/// <see cref="ForwardDirect"/> reads x in place with its own register tile (<see cref="UsesDirect"/> says why).
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

        if (UsesDirect(outChannels, kernel, activation, accumulate, !residual.IsEmpty))
        {
            ForwardDirect(input, batch, height, width, inChannels, weights, kernel, stride, padding, bias, output, activation, maxThreads, level);
            return;
        }
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

    /// <summary>Output pixels per register tile of <see cref="DirectTile{TVec, TOps}"/>: 6 pixels × 2 vectors = 12 accumulators (fits AVX2's 16 registers).</summary>
    const int DirectPixels = 6;

    /// <summary>
    /// Whether <see cref="Forward"/> takes the direct path for this convolution: a k×k kernel with one panel of output
    /// channels (Cout = 32 or 64: a multiple of two Vector512, hence of two vectors at every level, so every level takes the
    /// same path) and a plain bias + ReLU/none epilogue. Why: the GEMM's register tile is 64 columns wide, so RN50's stem
    /// (Cout = 32) leaves half of it on zeros, and with Cin = 3 or 32 the im2col matrix (K = 27 or 288 per output pixel) is
    /// 9× the input it is copied from. Measured on one thread, 4 images: stem 3.2 + 15.0 + 20.2 ms → 0.7 + 6.4 + 12.8 ms
    /// (27–92 → 118–145 GFLOP/s); layer1's 3×3 (Cin = Cout = 64) 6.6 → 6.4 ms. Wider outputs stay on the GEMM, which reuses
    /// each broadcast input over 64 columns instead of 32.
    /// </summary>
    public static bool UsesDirect(int outChannels, int kernel, Activation activation, bool accumulate, bool residual) =>
        kernel > 1 && outChannels <= PackedMatrix.PanelWidth && outChannels % 32 == 0
        && activation is Activation.None or Activation.Relu && !accumulate && !residual;

    /// <summary>
    /// Direct (implicit-GEMM) k×k convolution: x [B, H, W, Cin] read in place, no im2col. One task is an output row (b, oy);
    /// along it, 6 output pixels × 2 vectors of output channels are accumulated in registers over (ky, kx, ci), one broadcast
    /// input value and two weight vectors per step, the weights read from the packed panel ([k·k·Cin, 64], rows 64 floats
    /// apart). Kernel taps that hang over the border are skipped (the zero padding adds nothing), so a pixel near the left
    /// or right edge is done on its own with a narrower kx range. Every output sums its taps from zero in (ky, kx, ci) order
    /// with fused multiply-adds, then adds the bias: the same order at every vector width and tile position, so all levels
    /// agree bit for bit with <see cref="DirectScalar"/>. Output channels must be a multiple of 2 vectors (<see cref="UsesDirect"/>).
    /// </summary>
    public static unsafe void ForwardDirect(ReadOnlySpan<float> input, int batch, int height, int width, int inChannels,
        PackedMatrix weights, int kernel, int stride, int padding, ReadOnlySpan<float> bias, Span<float> output,
        Activation activation = Activation.None, int maxThreads = 0, SimdLevel? level = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var l = level ?? Simd.Best;
        int outHeight = OutputSize(height, kernel, stride, padding), outWidth = OutputSize(width, kernel, stride, padding), outChannels = weights.N;
        Check(batch >= 0 && inChannels >= 1, "batch must be non-negative and channels positive");
        Check(weights.K == kernel * kernel * inChannels && outChannels <= PackedMatrix.PanelWidth,
            $"packed weights are [{weights.K}, {outChannels}], expected [k·k·Cin = {kernel * kernel * inChannels}, at most {PackedMatrix.PanelWidth}]");
        Check(outChannels % (2 * Lanes(l)) == 0, $"{outChannels} output channels are not a multiple of two vectors at {l}");
        Check(activation is Activation.None or Activation.Relu, $"the direct convolution applies ReLU or nothing, not {activation}");
        Check(bias.IsEmpty || bias.Length >= outChannels, $"bias has {bias.Length} values, expected {outChannels}");
        Check(input.Length >= (long)batch * height * width * inChannels, $"input has {input.Length} values, expected [{batch}, {height}, {width}, {inChannels}]");
        Check(output.Length >= (long)batch * outHeight * outWidth * outChannels, $"output has {output.Length} values, expected [{batch}, {outHeight}, {outWidth}, {outChannels}]");
        var shape = new DirectShape(height, width, inChannels, outChannels, kernel, stride, padding, outHeight, outWidth, activation == Activation.Relu);
        fixed (float* pin = input, pb = bias, pout = output)
        {
            float* source = pin, b = pb, destination = pout, w = weights.Data;
            SpatialParallel.For(batch * outHeight, SpatialParallel.Threads(maxThreads), (long)outWidth * outChannels * kernel * kernel * inChannels / 16,
                (first, end) =>
                {
                    for (int row = first; row < end; row++)
                        switch (l)
                        {
                            case SimdLevel.Vector512: DirectRow<Vector512<float>, Ops512>(source, w, b, destination, row, shape); break;
                            case SimdLevel.Vector256: DirectRow<Vector256<float>, Ops256>(source, w, b, destination, row, shape); break;
                            case SimdLevel.Vector128: DirectRow<Vector128<float>, Ops128>(source, w, b, destination, row, shape); break;
                            default: DirectScalar(source, w, b, destination, row, shape); break;
                        }
                });
        }
    }

    /// <summary>Floats per vector at a level (1 for scalar).</summary>
    static int Lanes(SimdLevel level) => level switch
    {
        SimdLevel.Vector512 => 16,
        SimdLevel.Vector256 => 8,
        SimdLevel.Vector128 => 4,
        _ => 1,
    };

    readonly record struct DirectShape(int Height, int Width, int InChannels, int OutChannels, int Kernel, int Stride, int Padding,
        int OutHeight, int OutWidth, bool Relu);

    /// <summary>One output row (b, oy) of <see cref="ForwardDirect"/>: interior pixels 6 at a time, edge and leftover pixels one by one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // straight to optimized code: at tier 0 the first ~10 calls ran several times slower
    static unsafe void DirectRow<TVec, TOps>(float* input, float* weights, float* bias, float* output, int row, in DirectShape s)
        where TVec : unmanaged where TOps : unmanaged, IVecOps<TVec>
    {
        int b = row / s.OutHeight, y0 = row % s.OutHeight * s.Stride - s.Padding;
        int ky0 = Math.Max(0, -y0), ky1 = Math.Min(s.Kernel, s.Height - y0);
        // Pixels whose kx taps all land inside the image: x0 = ox·stride − padding ≥ 0 and x0 + k ≤ W.
        int inside0 = Math.Min(s.OutWidth, (s.Padding + s.Stride - 1) / s.Stride);
        int inside1 = Math.Max(inside0, Math.Min(s.OutWidth, s.Width - s.Kernel + s.Padding < 0 ? 0 : (s.Width - s.Kernel + s.Padding) / s.Stride + 1));
        float* image = input + (long)b * s.Height * s.Width * s.InChannels;
        float* outRow = output + (long)row * s.OutWidth * s.OutChannels;
        for (int c = 0; c < s.OutChannels; c += 2 * TOps.Count)
        {
            int ox = 0;
            // A whole 64-channel panel at 512 bits takes the 24-accumulator tile (stem conv3: 12.7 → 11.5 ms on 4 images); the
            // edge pixels keep the 2-vector kernel, twice. (AVX2 has 16 registers: 6 × 8 would spill, so it stays at 6 × 2.)
            if (TOps.Count == 16 && c + PackedMatrix.PanelWidth <= s.OutChannels)
            {
                for (; ox < inside0; ox++)
                {
                    DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
                    DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c + 2 * TOps.Count, y0, ky0, ky1, s);
                }
                for (; ox + DirectPixels <= inside1; ox += DirectPixels) DirectTileWide<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
                for (; ox < s.OutWidth; ox++)
                {
                    DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
                    DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c + 2 * TOps.Count, y0, ky0, ky1, s);
                }
                c += 2 * TOps.Count;
                continue;
            }
            for (; ox < inside0; ox++) DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
            for (; ox + DirectPixels <= inside1; ox += DirectPixels) DirectTile<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
            for (; ox < s.OutWidth; ox++) DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
        }
    }

    /// <summary>
    /// 6 interior output pixels × 2 vectors of channels [c, c + 2V): 12 accumulators over every (ky, kx, ci) tap.
    /// Not inlined (nor are the other tiles): inlined into <see cref="DirectRow{TVec, TOps}"/> next to each other, their
    /// accumulators were spilled and the stem ran 3–4× slower.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static unsafe void DirectTile<TVec, TOps>(float* image, float* weights, float* bias, float* outRow, int ox, int c, int y0, int ky0, int ky1, in DirectShape s)
        where TVec : unmanaged where TOps : unmanaged, IVecOps<TVec>
    {
        int cin = s.InChannels, step = s.Stride * cin, v = TOps.Count;
        TVec a0 = TOps.Zero, b0 = TOps.Zero, a1 = TOps.Zero, b1 = TOps.Zero, a2 = TOps.Zero, b2 = TOps.Zero;
        TVec a3 = TOps.Zero, b3 = TOps.Zero, a4 = TOps.Zero, b4 = TOps.Zero, a5 = TOps.Zero, b5 = TOps.Zero;
        for (int ky = ky0; ky < ky1; ky++)
        {
            // [k·Cin] contiguous inputs per pixel and kernel row (NHWC), pixels `step` floats apart; weight rows 64 floats apart.
            float* x = image + ((long)(y0 + ky) * s.Width + ox * s.Stride - s.Padding) * cin;
            float* w = (weights + c) + (long)ky * s.Kernel * cin * PackedMatrix.PanelWidth;
            for (int t = 0; t < s.Kernel * cin; t++, x++, w += PackedMatrix.PanelWidth)
            {
                TVec w0 = TOps.Load(w), w1 = TOps.Load(w + v), p;
                p = TOps.Splat(x[0]); a0 = TOps.Fma(p, w0, a0); b0 = TOps.Fma(p, w1, b0);
                p = TOps.Splat(x[step]); a1 = TOps.Fma(p, w0, a1); b1 = TOps.Fma(p, w1, b1);
                p = TOps.Splat(x[2 * step]); a2 = TOps.Fma(p, w0, a2); b2 = TOps.Fma(p, w1, b2);
                p = TOps.Splat(x[3 * step]); a3 = TOps.Fma(p, w0, a3); b3 = TOps.Fma(p, w1, b3);
                p = TOps.Splat(x[4 * step]); a4 = TOps.Fma(p, w0, a4); b4 = TOps.Fma(p, w1, b4);
                p = TOps.Splat(x[5 * step]); a5 = TOps.Fma(p, w0, a5); b5 = TOps.Fma(p, w1, b5);
            }
        }
        float* y = outRow + (long)ox * s.OutChannels + c;
        DirectStore<TVec, TOps>(a0, b0, bias, c, y, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a1, b1, bias, c, y, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a2, b2, bias, c, y, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a3, b3, bias, c, y, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a4, b4, bias, c, y, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a5, b5, bias, c, y, s.Relu);
    }

    /// <summary>6 interior output pixels × 4 Vector512 = a whole 64-channel panel: 24 accumulators, one broadcast per 4 FMAs.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static unsafe void DirectTileWide<TVec, TOps>(float* image, float* weights, float* bias, float* outRow, int ox, int c, int y0, int ky0, int ky1, in DirectShape s)
        where TVec : unmanaged where TOps : unmanaged, IVecOps<TVec>
    {
        int cin = s.InChannels, step = s.Stride * cin, v = TOps.Count;
        TVec a0 = TOps.Zero, b0 = TOps.Zero, c0 = TOps.Zero, d0 = TOps.Zero, a1 = TOps.Zero, b1 = TOps.Zero, c1 = TOps.Zero, d1 = TOps.Zero;
        TVec a2 = TOps.Zero, b2 = TOps.Zero, c2 = TOps.Zero, d2 = TOps.Zero, a3 = TOps.Zero, b3 = TOps.Zero, c3 = TOps.Zero, d3 = TOps.Zero;
        TVec a4 = TOps.Zero, b4 = TOps.Zero, c4 = TOps.Zero, d4 = TOps.Zero, a5 = TOps.Zero, b5 = TOps.Zero, c5 = TOps.Zero, d5 = TOps.Zero;
        for (int ky = ky0; ky < ky1; ky++)
        {
            float* x = image + ((long)(y0 + ky) * s.Width + ox * s.Stride - s.Padding) * cin;
            float* w = (weights + c) + (long)ky * s.Kernel * cin * PackedMatrix.PanelWidth;
            for (int t = 0; t < s.Kernel * cin; t++, x++, w += PackedMatrix.PanelWidth)
            {
                TVec w0 = TOps.Load(w), w1 = TOps.Load(w + v), w2 = TOps.Load(w + 2 * v), w3 = TOps.Load(w + 3 * v), p;
                p = TOps.Splat(x[0]); a0 = TOps.Fma(p, w0, a0); b0 = TOps.Fma(p, w1, b0); c0 = TOps.Fma(p, w2, c0); d0 = TOps.Fma(p, w3, d0);
                p = TOps.Splat(x[step]); a1 = TOps.Fma(p, w0, a1); b1 = TOps.Fma(p, w1, b1); c1 = TOps.Fma(p, w2, c1); d1 = TOps.Fma(p, w3, d1);
                p = TOps.Splat(x[2 * step]); a2 = TOps.Fma(p, w0, a2); b2 = TOps.Fma(p, w1, b2); c2 = TOps.Fma(p, w2, c2); d2 = TOps.Fma(p, w3, d2);
                p = TOps.Splat(x[3 * step]); a3 = TOps.Fma(p, w0, a3); b3 = TOps.Fma(p, w1, b3); c3 = TOps.Fma(p, w2, c3); d3 = TOps.Fma(p, w3, d3);
                p = TOps.Splat(x[4 * step]); a4 = TOps.Fma(p, w0, a4); b4 = TOps.Fma(p, w1, b4); c4 = TOps.Fma(p, w2, c4); d4 = TOps.Fma(p, w3, d4);
                p = TOps.Splat(x[5 * step]); a5 = TOps.Fma(p, w0, a5); b5 = TOps.Fma(p, w1, b5); c5 = TOps.Fma(p, w2, c5); d5 = TOps.Fma(p, w3, d5);
            }
        }
        float* y = outRow + (long)ox * s.OutChannels + c;
        int half = 2 * v;
        DirectStore<TVec, TOps>(a0, b0, bias, c, y, s.Relu); DirectStore<TVec, TOps>(c0, d0, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a1, b1, bias, c, y, s.Relu); DirectStore<TVec, TOps>(c1, d1, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a2, b2, bias, c, y, s.Relu); DirectStore<TVec, TOps>(c2, d2, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a3, b3, bias, c, y, s.Relu); DirectStore<TVec, TOps>(c3, d3, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a4, b4, bias, c, y, s.Relu); DirectStore<TVec, TOps>(c4, d4, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a5, b5, bias, c, y, s.Relu); DirectStore<TVec, TOps>(c5, d5, bias, c + half, y + half, s.Relu);
    }

    /// <summary>One output pixel × 2 vectors of channels, taps clipped to the image (edges, and interior pixels left over from the tiles).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static unsafe void DirectPixel<TVec, TOps>(float* image, float* weights, float* bias, float* outRow, int ox, int c, int y0, int ky0, int ky1, in DirectShape s)
        where TVec : unmanaged where TOps : unmanaged, IVecOps<TVec>
    {
        int cin = s.InChannels, x0 = ox * s.Stride - s.Padding, v = TOps.Count;
        int kx0 = Math.Max(0, -x0), kx1 = Math.Min(s.Kernel, s.Width - x0);
        TVec a = TOps.Zero, b = TOps.Zero;
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++)
            {
                float* x = image + ((long)(y0 + ky) * s.Width + x0 + kx) * cin;
                float* w = (weights + c) + (long)((ky * s.Kernel + kx) * cin) * PackedMatrix.PanelWidth;
                for (int ci = 0; ci < cin; ci++, w += PackedMatrix.PanelWidth)
                {
                    TVec p = TOps.Splat(x[ci]);
                    a = TOps.Fma(p, TOps.Load(w), a);
                    b = TOps.Fma(p, TOps.Load(w + v), b);
                }
            }
        DirectStore<TVec, TOps>(a, b, bias, c, outRow + (long)ox * s.OutChannels + c, s.Relu);
    }

    /// <summary>y[c, c + 2V) = act(sum + bias).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void DirectStore<TVec, TOps>(TVec a, TVec b, float* bias, int c, float* y, bool relu)
        where TVec : unmanaged where TOps : unmanaged, IVecOps<TVec>
    {
        if (bias != null) { a = TOps.Add(a, TOps.Load(bias + c)); b = TOps.Add(b, TOps.Load(bias + c + TOps.Count)); }
        if (relu) { a = TOps.Max(a, TOps.Zero); b = TOps.Max(b, TOps.Zero); }
        TOps.Store(a, y);
        TOps.Store(b, y + TOps.Count);
    }

    /// <summary>The scalar twin of <see cref="DirectRow{TVec, TOps}"/>: per output, the same taps in the same order, fused multiply-adds, then the bias.</summary>
    static unsafe void DirectScalar(float* input, float* weights, float* bias, float* output, int row, in DirectShape s)
    {
        int b = row / s.OutHeight, y0 = row % s.OutHeight * s.Stride - s.Padding, cin = s.InChannels;
        int ky0 = Math.Max(0, -y0), ky1 = Math.Min(s.Kernel, s.Height - y0);
        for (int ox = 0; ox < s.OutWidth; ox++)
        {
            int x0 = ox * s.Stride - s.Padding, kx0 = Math.Max(0, -x0), kx1 = Math.Min(s.Kernel, s.Width - x0);
            for (int c = 0; c < s.OutChannels; c++)
            {
                float sum = 0f;
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++)
                        for (int ci = 0; ci < cin; ci++)
                            sum = MathF.FusedMultiplyAdd(input[(((long)b * s.Height + y0 + ky) * s.Width + x0 + kx) * cin + ci],
                                (weights + c)[(long)((ky * s.Kernel + kx) * cin + ci) * PackedMatrix.PanelWidth], sum);
                if (bias != null) sum += bias[c];
                output[((long)row * s.OutWidth + ox) * s.OutChannels + c] = s.Relu ? Math.Max(sum, 0f) : sum;
            }
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
