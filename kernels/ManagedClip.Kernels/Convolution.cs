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
/// Weights are repacked once at load from OIHW to [(ky, kx, ci), co] (<see cref="ConvolutionFilter.FromWeights"/>).
/// The exception is a k×k convolution with a single 32- or 64-channel output panel (RN50's stem and layer1's 3×3): there
/// <see cref="ForwardDirect"/> reads x in place with its own register tile (<see cref="UsesDirect"/> says why).
/// </para>
/// Every kernel runs at its context's <see cref="SimdLevel"/>; the scalar level is the oracle the tests compare the others with.
/// Results do not depend on the thread count: each output element is produced by one thread in a fixed order.
/// </summary>
public static class Convolution
{
    const int ColumnChunkFloats = 1 << 18;
    const int ColumnChunkRows = 96;

    /// <summary>Scratch a k×k convolution needs for at least one output row at a time (1×1 stride 1 needs none).</summary>
    public static int MinimumScratch(ConvolutionFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return filter.Geometry.IsPointwise ? 0 : filter.RowLength;
    }

    /// <summary>
    /// x [B, H, W, Cin] → y [B, Ho, Wo, Cout] = act(conv(x) + bias + residual) (<see cref="Epilogue"/>; the residual laid out as y,
    /// and it may be y itself). <paramref name="scratch"/> holds im2col rows (any length ≥ <see cref="MinimumScratch"/>; more rows
    /// per chunk means fewer, larger GEMMs). y must not overlap x or scratch.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> input, ImageGeometry shape, ConvolutionFilter filter, Span<float> output, Span<float> scratch,
        in Epilogue epilogue = default, KernelContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var ctx = context ?? KernelContext.Default;
        var outShape = CheckShapes(input, shape, filter, output);
        long rows = outShape.Pixels;
        int rowLength = filter.RowLength, outChannels = filter.OutChannels;
        if (rows == 0) return;

        if (UsesDirect(filter, epilogue))
        {
            ForwardDirect(input, shape, filter, output, epilogue, ctx);
            return;
        }
        if (filter.Geometry.IsPointwise)
        {
            // 1×1, stride 1: the NHWC activations already are the GEMM's left operand.
            Gemm.Multiply(new ReadOnlyMatrixView(input, (int)rows, filter.InChannels), filter.Weights,
                new MatrixView(output, (int)rows, outChannels), epilogue, ctx);
            return;
        }

        // Chunks of im2col rows small enough to stay in L2 between being written and being read by the GEMM (≈ 1 MiB), but
        // never under ColumnChunkRows = 96 rows, so that each pass over the weights still feeds enough rows. (A 384-row floor
        // made RN50's K = 2304 and 4608 chunks 3.5–7 MiB, read back from L3; 96 measured 3 % faster end to end.)
        // With several threads and several chunks, each worker takes whole chunks (its own part of the scratch, im2col and
        // GEMM on one thread): one fork-join per convolution instead of two per chunk.
        int chunkLimit = (int)Math.Min(rows, Math.Max(ColumnChunkRows, ColumnChunkFloats / rowLength));
        int workers = (int)Math.Min(ctx.Threads, (rows + chunkLimit - 1) / chunkLimit);
        if (workers > 1 && scratch.Length / workers < rowLength) workers = 1;
        int chunk = Math.Min(chunkLimit, scratch.Length / workers / rowLength);
        Check(chunk >= 1, $"scratch has {scratch.Length} values, a {filter.Geometry} convolution over {filter.InChannels} channels needs at least {rowLength}");
        // Equal chunks, not full ones and a sliver: 784 rows are 392 + 392, not 384 + 384 + 16 (a sliver streams all the weights
        // again for a handful of rows).
        int chunks = (int)((rows + chunk - 1) / chunk);
        chunk = (int)((rows + chunks - 1) / chunks);
        if (workers > 1)
        {
            ChunksInParallel(input, shape, filter, output, scratch, epilogue, ctx.WithThreads(workers), (int)rows, chunk, chunks);
            return;
        }
        for (int start = 0; start < rows; start += chunk)
            Chunk(input, shape, filter, output, scratch, epilogue, ctx, start, (int)Math.Min(chunk, rows - start));
    }

    /// <summary>Output rows [start, start + count): their im2col rows into <paramref name="scratch"/>, then one GEMM into y.</summary>
    static void Chunk(ReadOnlySpan<float> input, ImageGeometry shape, ConvolutionFilter filter, Span<float> output, Span<float> scratch,
        in Epilogue epilogue, KernelContext ctx, int start, int count)
    {
        int rowLength = filter.RowLength, outChannels = filter.OutChannels;
        Span<float> columns = scratch[..(count * rowLength)];                    // [count, k·k·Cin]
        Im2Col(input, shape, filter.Geometry, start, count, columns, ctx);
        ReadOnlySpan<float> residual = epilogue.Residual.IsEmpty ? default : epilogue.Residual.Slice(start * outChannels, count * outChannels);
        Gemm.Multiply(new ReadOnlyMatrixView(columns, count, rowLength), filter.Weights, new MatrixView(output.Slice(start * outChannels, count * outChannels), count, outChannels),
            new Epilogue(epilogue.Bias, epilogue.Activation, residual), ctx);
    }

    /// <summary>The output shape, after checking that input and output hold their shapes and the filter fits the input's channels.</summary>
    static ImageGeometry CheckShapes(ReadOnlySpan<float> input, ImageGeometry shape, ConvolutionFilter filter, Span<float> output)
    {
        shape.Check(nameof(input));
        Check(shape.Channels == filter.InChannels, $"input has {shape.Channels} channels, the filter takes {filter.InChannels}");
        Check(input.Length >= shape.Length, $"input has {input.Length} values, expected {shape}");
        var outShape = filter.Geometry.Output(shape, filter.OutChannels);
        Check(output.Length >= outShape.Length, $"output has {output.Length} values, expected {outShape}");
        return outShape;
    }

    /// <summary>
    /// The chunk loop of <see cref="Forward"/> on the context's workers: chunks are taken from a shared counter, and worker w writes
    /// its im2col rows into part w of the scratch. Each output row is still one single-threaded GEMM row, so the result is
    /// bit-identical to the serial loop.
    /// </summary>
    static unsafe void ChunksInParallel(ReadOnlySpan<float> input, ImageGeometry shape, ConvolutionFilter filter, Span<float> output, Span<float> scratch,
        in Epilogue epilogue, KernelContext ctx, int rows, int chunk, int chunks)
    {
        int part = scratch.Length / ctx.Threads;
        int inputLength = input.Length, biasLength = epilogue.Bias.Length, outputLength = output.Length, residualLength = epilogue.Residual.Length;
        var activation = epilogue.Activation;
        var single = ctx.WithThreads(1);
        fixed (float* pin = input, pb = epilogue.Bias, pout = output, ps = scratch, pr = epilogue.Residual)
        {
            float* source = pin, b = pb, destination = pout, columns = ps, res = pr;
            // One item per chunk, at least one chunk per worker.
            ctx.ForWorkers(chunks, KernelContext.MinimumWorkPerThread, (ranges, w) =>
            {
                var own = new Span<float>(columns + (long)w * part, part);
                var epilogueOfPart = new Epilogue(new ReadOnlySpan<float>(b, biasLength), activation,
                    residualLength == 0 ? default : new ReadOnlySpan<float>(res, residualLength));
                while (ranges.TryTake(out int first, out int end))
                    for (int c = first; c < end; c++)
                    {
                        int start = c * chunk;
                        Chunk(new ReadOnlySpan<float>(source, inputLength), shape, filter, new Span<float>(destination, outputLength), own,
                            epilogueOfPart, single, start, Math.Min(chunk, rows - start));
                    }
            });
        }
    }

    /// <summary>
    /// Rows [rowStart, rowStart + rowCount) of the im2col matrix of x [B, H, W, C]: row (b, oy, ox) holds, in (ky, kx, c) order,
    /// the input pixels under the kernel placed at that output pixel, zeros where it hangs over the border.
    /// </summary>
    public static unsafe void Im2Col(ReadOnlySpan<float> input, ImageGeometry shape, ConvolutionGeometry window, int rowStart, int rowCount,
        Span<float> columns, KernelContext? context = null)
    {
        var ctx = context ?? KernelContext.Default;
        shape.Check(nameof(input));
        var outShape = window.Output(shape, shape.Channels);
        int kernel = window.Kernel, stride = window.Stride, padding = window.Padding;
        int height = shape.Height, width = shape.Width, channels = shape.Channels, outHeight = outShape.Height, outWidth = outShape.Width;
        int rowLength = kernel * kernel * channels;
        Check(input.Length >= shape.Length, $"input has {input.Length} values, expected {shape}");
        Check(rowStart >= 0 && rowCount >= 0 && (long)rowStart + rowCount <= outShape.Pixels, "row range outside the output");
        Check(columns.Length >= (long)rowCount * rowLength, $"columns have {columns.Length} values, expected [{rowCount}, {rowLength}]");
        fixed (float* pin = input, pcol = columns)
        {
            float* source = pin, destination = pcol;
            ctx.For(rowCount, rowLength, (first, end) =>
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
                        new ReadOnlySpan<float>(source + (((long)b * height + iy) * width + x0 + kx0) * channels, (kx1 - kx0) * channels)
                            .CopyTo(new Span<float>(line + kx0 * channels, (kx1 - kx0) * channels));
                        if (kx1 < kernel) new Span<float>(line + kx1 * channels, (kernel - kx1) * channels).Clear();
                    }
                }
            });
        }
    }

    /// <summary>Output pixels per register tile of <see cref="DirectTile{TVec, TOps, TVectors}"/>: 6 pixels × 2 vectors = 12 accumulators (fits AVX2's 16 registers).</summary>
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
    public static bool UsesDirect(ConvolutionFilter filter, in Epilogue epilogue) =>
        filter.Geometry.Kernel > 1 && filter.OutChannels <= PackedMatrix.PanelWidth && filter.OutChannels % 32 == 0
        && epilogue.IsBiasAndRelu;

    /// <summary>
    /// Direct (implicit-GEMM) k×k convolution: x [B, H, W, Cin] read in place, no im2col. One task is an output row (b, oy);
    /// along it, 6 output pixels × 2 vectors of output channels are accumulated in registers over (ky, kx, ci), one broadcast
    /// input value and two weight vectors per step, the weights read from the packed panel ([k·k·Cin, 64], rows 64 floats
    /// apart). Kernel taps that hang over the border are skipped (the zero padding adds nothing), so a pixel near the left
    /// or right edge is done on its own with a narrower kx range. Every output sums its taps from zero in (ky, kx, ci) order
    /// with fused multiply-adds, then adds the bias: the same order at every vector width and tile position, so all levels
    /// agree bit for bit with <see cref="DirectScalar"/>. Output channels must be a multiple of 2 vectors (<see cref="UsesDirect"/>).
    /// </summary>
    public static unsafe void ForwardDirect(ReadOnlySpan<float> input, ImageGeometry shape, ConvolutionFilter filter, Span<float> output,
        in Epilogue epilogue = default, KernelContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var ctx = context ?? KernelContext.Default;
        var outShape = CheckShapes(input, shape, filter, output);
        int outChannels = filter.OutChannels;
        var window = filter.Geometry;
        Check(outChannels <= PackedMatrix.PanelWidth, $"the direct convolution writes at most {PackedMatrix.PanelWidth} channels, not {outChannels}");
        epilogue.CheckBiasAndRelu(outChannels, "the direct convolution");
        var s = new DirectShape(shape.Height, shape.Width, shape.Channels, outChannels, window.Kernel, window.Stride, window.Padding,
            outShape.Height, outShape.Width, epilogue.Activation == Activation.Relu);
        fixed (float* pin = input, pb = epilogue.Bias, pout = output)
        {
            var kernel = new DirectKernel(pin, filter.Weights.Data, epilogue.Bias.IsEmpty ? null : pb, pout, shape.Batch * outShape.Height, s, ctx);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
        GC.KeepAlive(filter);
    }

    /// <summary>Output rows (b, oy) of <see cref="ForwardDirect"/> on the context's threads, at one level.</summary>
    readonly unsafe struct DirectKernel(float* input, float* weights, float* bias, float* output, int rows, DirectShape shape, KernelContext context) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            var s = shape;
            Check(s.OutChannels % (2 * TOps.Count) == 0, $"{s.OutChannels} output channels are not a multiple of two vectors of {TOps.Count}");
            float* x = input, w = weights, b = bias, y = output;
            context.For(rows, (long)s.OutWidth * s.OutChannels * s.Kernel * s.Kernel * s.InChannels / 16, (first, end) =>
            {
                for (int row = first; row < end; row++)
                    if (SimdDispatch.IsScalar<TVec>()) DirectScalar(x, w, b, y, row, s);
                    else DirectRow<TVec, TOps>(x, w, b, y, row, s);
            });
        }
    }

    readonly record struct DirectShape(int Height, int Width, int InChannels, int OutChannels, int Kernel, int Stride, int Padding,
        int OutHeight, int OutWidth, bool Relu);

    /// <summary>One output row (b, oy) of <see cref="ForwardDirect"/>: interior pixels 6 at a time, edge and leftover pixels one by one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // straight to optimized code: at tier 0 the first ~10 calls ran several times slower
    static unsafe void DirectRow<TVec, TOps>(float* input, float* weights, float* bias, float* output, int row, in DirectShape s)
        where TVec : unmanaged where TOps : IVecOps<TVec>
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
                for (; ox + DirectPixels <= inside1; ox += DirectPixels) DirectTile<TVec, TOps, R4>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
                for (; ox < s.OutWidth; ox++)
                {
                    DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
                    DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c + 2 * TOps.Count, y0, ky0, ky1, s);
                }
                c += 2 * TOps.Count;
                continue;
            }
            for (; ox < inside0; ox++) DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
            for (; ox + DirectPixels <= inside1; ox += DirectPixels) DirectTile<TVec, TOps, R2>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
            for (; ox < s.OutWidth; ox++) DirectPixel<TVec, TOps>(image, weights, bias, outRow, ox, c, y0, ky0, ky1, s);
        }
    }

    /// <summary>
    /// 6 interior output pixels × <typeparamref name="TVectors"/> (2 or 4) vectors of channels from c: 12 accumulators over
    /// every (ky, kx, ci) tap, or with 4 vectors at 512 bits a whole 64-channel panel in 24 (one broadcast per 4 FMAs). The
    /// vector count is a type parameter, so the 2-vector instantiation has no trace of the other two (AVX2's 16 registers
    /// hold 12 accumulators, not 24).
    /// Not inlined (nor is the pixel kernel): inlined into <see cref="DirectRow{TVec, TOps}"/> next to each other, their
    /// accumulators were spilled and the stem ran 3–4× slower.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static unsafe void DirectTile<TVec, TOps, TVectors>(float* image, float* weights, float* bias, float* outRow, int ox, int c, int y0, int ky0, int ky1, in DirectShape s)
        where TVec : unmanaged where TOps : IVecOps<TVec> where TVectors : struct, IRowCount
    {
        bool wide = TVectors.Value == 4;
        int cin = s.InChannels, step = s.Stride * cin, v = TOps.Count;
        TVec a0 = TOps.Zero, b0 = TOps.Zero, c0 = TOps.Zero, d0 = TOps.Zero, a1 = TOps.Zero, b1 = TOps.Zero, c1 = TOps.Zero, d1 = TOps.Zero;
        TVec a2 = TOps.Zero, b2 = TOps.Zero, c2 = TOps.Zero, d2 = TOps.Zero, a3 = TOps.Zero, b3 = TOps.Zero, c3 = TOps.Zero, d3 = TOps.Zero;
        TVec a4 = TOps.Zero, b4 = TOps.Zero, c4 = TOps.Zero, d4 = TOps.Zero, a5 = TOps.Zero, b5 = TOps.Zero, c5 = TOps.Zero, d5 = TOps.Zero;
        for (int ky = ky0; ky < ky1; ky++)
        {
            // [k·Cin] contiguous inputs per pixel and kernel row (NHWC), pixels `step` floats apart; weight rows 64 floats apart.
            float* x = image + ((long)(y0 + ky) * s.Width + ox * s.Stride - s.Padding) * cin;
            float* w = (weights + c) + (long)ky * s.Kernel * cin * PackedMatrix.PanelWidth;
            for (int t = 0; t < s.Kernel * cin; t++, x++, w += PackedMatrix.PanelWidth)
            {
                TVec w0 = TOps.Load(w), w1 = TOps.Load(w + v), w2 = wide ? TOps.Load(w + 2 * v) : TOps.Zero, w3 = wide ? TOps.Load(w + 3 * v) : TOps.Zero, p;
                p = TOps.Splat(x[0]); a0 = TOps.Fma(p, w0, a0); b0 = TOps.Fma(p, w1, b0); if (wide) { c0 = TOps.Fma(p, w2, c0); d0 = TOps.Fma(p, w3, d0); }
                p = TOps.Splat(x[step]); a1 = TOps.Fma(p, w0, a1); b1 = TOps.Fma(p, w1, b1); if (wide) { c1 = TOps.Fma(p, w2, c1); d1 = TOps.Fma(p, w3, d1); }
                p = TOps.Splat(x[2 * step]); a2 = TOps.Fma(p, w0, a2); b2 = TOps.Fma(p, w1, b2); if (wide) { c2 = TOps.Fma(p, w2, c2); d2 = TOps.Fma(p, w3, d2); }
                p = TOps.Splat(x[3 * step]); a3 = TOps.Fma(p, w0, a3); b3 = TOps.Fma(p, w1, b3); if (wide) { c3 = TOps.Fma(p, w2, c3); d3 = TOps.Fma(p, w3, d3); }
                p = TOps.Splat(x[4 * step]); a4 = TOps.Fma(p, w0, a4); b4 = TOps.Fma(p, w1, b4); if (wide) { c4 = TOps.Fma(p, w2, c4); d4 = TOps.Fma(p, w3, d4); }
                p = TOps.Splat(x[5 * step]); a5 = TOps.Fma(p, w0, a5); b5 = TOps.Fma(p, w1, b5); if (wide) { c5 = TOps.Fma(p, w2, c5); d5 = TOps.Fma(p, w3, d5); }
            }
        }
        float* y = outRow + (long)ox * s.OutChannels + c;
        int half = 2 * v;
        DirectStore<TVec, TOps>(a0, b0, bias, c, y, s.Relu); if (wide) DirectStore<TVec, TOps>(c0, d0, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a1, b1, bias, c, y, s.Relu); if (wide) DirectStore<TVec, TOps>(c1, d1, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a2, b2, bias, c, y, s.Relu); if (wide) DirectStore<TVec, TOps>(c2, d2, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a3, b3, bias, c, y, s.Relu); if (wide) DirectStore<TVec, TOps>(c3, d3, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a4, b4, bias, c, y, s.Relu); if (wide) DirectStore<TVec, TOps>(c4, d4, bias, c + half, y + half, s.Relu); y += s.OutChannels;
        DirectStore<TVec, TOps>(a5, b5, bias, c, y, s.Relu); if (wide) DirectStore<TVec, TOps>(c5, d5, bias, c + half, y + half, s.Relu);
    }

    /// <summary>One output pixel × 2 vectors of channels, taps clipped to the image (edges, and interior pixels left over from the tiles).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    static unsafe void DirectPixel<TVec, TOps>(float* image, float* weights, float* bias, float* outRow, int ox, int c, int y0, int ky0, int ky1, in DirectShape s)
        where TVec : unmanaged where TOps : IVecOps<TVec>
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
        where TVec : unmanaged where TOps : IVecOps<TVec>
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

    /// <summary>NCHW [B, C, H, W] (how images arrive) → NHWC <paramref name="shape"/> [B, H, W, C].</summary>
    public static void ToChannelsLast(ReadOnlySpan<float> input, ImageGeometry shape, Span<float> output)
    {
        shape.Check(nameof(input));
        int plane = shape.Height * shape.Width, channels = shape.Channels;
        Check(input.Length >= shape.Length && output.Length >= shape.Length, $"input or output is shorter than {shape}");
        for (int b = 0; b < shape.Batch; b++)
            for (int c = 0; c < channels; c++)
            {
                ReadOnlySpan<float> source = input.Slice((b * channels + c) * plane, plane);
                Span<float> destination = output.Slice(b * plane * channels);
                for (int i = 0; i < plane; i++) destination[i * channels + c] = source[i];
            }
    }

    internal static void Check(bool condition, string message)
    {
        if (!condition) throw new ArgumentException(message);
    }
}

/// <summary>
/// A convolution's weights, packed once at load from OIHW [Cout, Cin, k, k] into the GEMM operand [(ky, kx, ci), co] this
/// layout multiplies by, with the window they slide over.
/// </summary>
public sealed class ConvolutionFilter
{
    /// <summary>Cin: channels of the input.</summary>
    public int InChannels { get; }
    /// <summary>Cout: channels of the output.</summary>
    public int OutChannels { get; }
    /// <summary>The window: kernel size, stride and padding.</summary>
    public ConvolutionGeometry Geometry { get; }
    internal PackedMatrix Weights { get; }

    /// <summary>Floats in one im2col row, k·k·Cin.</summary>
    internal int RowLength => Geometry.Kernel * Geometry.Kernel * InChannels;

    ConvolutionFilter(PackedMatrix weights, int inChannels, int outChannels, ConvolutionGeometry geometry)
    {
        Weights = weights; InChannels = inChannels; OutChannels = outChannels; Geometry = geometry;
    }

    /// <summary>Packs PyTorch's OIHW weights [Cout, Cin, k, k] for <see cref="Convolution"/>.</summary>
    /// <param name="weights">The weights, [<paramref name="outChannels"/>, <paramref name="inChannels"/>, k, k] with k = the geometry's kernel.</param>
    /// <param name="outChannels">Cout.</param>
    /// <param name="inChannels">Cin.</param>
    /// <param name="geometry">Kernel size, stride and padding.</param>
    /// <exception cref="ArgumentException">A dimension is not positive, the padding is negative, or the weights do not have Cout·Cin·k·k values.</exception>
    public static ConvolutionFilter FromWeights(ReadOnlySpan<float> weights, int outChannels, int inChannels, ConvolutionGeometry geometry)
    {
        int kernel = geometry.Kernel;
        Convolution.Check(outChannels >= 1 && inChannels >= 1 && kernel >= 1 && geometry.Stride >= 1 && geometry.Padding >= 0,
            $"channels, kernel and stride must be positive and padding non-negative ({outChannels} → {inChannels}, {geometry})");
        int rows = kernel * kernel * inChannels;
        Convolution.Check(weights.Length == (long)outChannels * rows, $"weights have {weights.Length} values, expected [{outChannels}, {inChannels}, {kernel}, {kernel}]");
        var matrix = new float[rows * outChannels];
        for (int co = 0; co < outChannels; co++)
            for (int ci = 0; ci < inChannels; ci++)
                for (int ky = 0; ky < kernel; ky++)
                    for (int kx = 0; kx < kernel; kx++)
                        matrix[((ky * kernel + kx) * inChannels + ci) * outChannels + co] = weights[((co * inChannels + ci) * kernel + ky) * kernel + kx];
        return new ConvolutionFilter(PackedMatrix.FromRowMajor(matrix, rows, outChannels), inChannels, outChannels, geometry);
    }
}
