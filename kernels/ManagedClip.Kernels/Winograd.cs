using System.Runtime.CompilerServices;

namespace ManagedClip.Kernels;

/// <summary>
/// A 3×3 convolution's weights transformed for <see cref="Winograd"/>: for each of the 16 points ξ = 4·i + j of the
/// transformed tile, the matrix U_ξ[ci, co] = (G·g[co, ci]·Gᵀ)[i, j], packed as a GEMM operand [Cin, Cout].
/// </summary>
public sealed class WinogradFilter
{
    /// <summary>Cin: channels of the input.</summary>
    public int InChannels { get; }
    /// <summary>Cout: channels of the output.</summary>
    public int OutChannels { get; }
    internal PackedMatrix[] Points { get; }

    WinogradFilter(int inChannels, int outChannels, PackedMatrix[] points)
    {
        InChannels = inChannels; OutChannels = outChannels; Points = points;
    }

    /// <summary>
    /// OIHW weights [Cout, Cin, 3, 3] → U = G g Gᵀ per (co, ci), in double and rounded to float once.
    /// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
    /// </summary>
    public static WinogradFilter FromWeights(ReadOnlySpan<float> weights, int outChannels, int inChannels)
    {
        Convolution.Check(outChannels >= 1 && inChannels >= 1, "channels must be positive");
        Convolution.Check(weights.Length == (long)outChannels * inChannels * 9, $"weights have {weights.Length} values, expected [{outChannels}, {inChannels}, 3, 3]");
        var points = new float[Winograd.Points][];
        for (int p = 0; p < Winograd.Points; p++) points[p] = new float[inChannels * outChannels];
        Span<double> gG = stackalloc double[12];   // g·Gᵀ [3, 4]
        for (int co = 0; co < outChannels; co++)
            for (int ci = 0; ci < inChannels; ci++)
            {
                ReadOnlySpan<float> g = weights.Slice((co * inChannels + ci) * 9, 9);
                for (int r = 0; r < 3; r++)
                {
                    double g0 = g[3 * r], g1 = g[3 * r + 1], g2 = g[3 * r + 2];
                    gG[4 * r] = g0; gG[4 * r + 1] = (g0 + g1 + g2) / 2; gG[4 * r + 2] = (g0 - g1 + g2) / 2; gG[4 * r + 3] = g2;
                }
                for (int j = 0; j < 4; j++)
                {
                    double r0 = gG[j], r1 = gG[4 + j], r2 = gG[8 + j];
                    int at = ci * outChannels + co;
                    points[j][at] = (float)r0;
                    points[4 + j][at] = (float)((r0 + r1 + r2) / 2);
                    points[8 + j][at] = (float)((r0 - r1 + r2) / 2);
                    points[12 + j][at] = (float)r2;
                }
            }
        var packed = new PackedMatrix[Winograd.Points];
        for (int p = 0; p < Winograd.Points; p++) packed[p] = PackedMatrix.FromRowMajor(points[p], inChannels, outChannels);
        return new WinogradFilter(inChannels, outChannels, packed);
    }
}

/// <summary>
/// 3×3 convolution, stride 1, zero padding 1, over NHWC activations, by Winograd's minimal filtering F(2×2, 3×3) (Lavin &amp;
/// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2×2 block of output pixels ("tile") is
/// <code>
/// Y = Aᵀ [ Σ_ci U[ci] ⊙ (Bᵀ d[ci] B) ] A + bias,   d = the 4×4 input patch from (2ty − 1, 2tx − 1),  U = G g Gᵀ (at load)
/// Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]],   Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]
/// </code>
/// For each of the 16 points ξ of the transformed tile the sum over input channels is a matrix product,
/// M_ξ [tiles, Cout] = V_ξ [tiles, Cin] · U_ξ [Cin, Cout], done by <see cref="Gemm"/>: 16 · Cin multiply-adds per tile and output
/// channel where the direct form needs 4 · 9 · Cin, 2.25× fewer. The input and output transforms are sums and differences only
/// (G's halves are in U, computed in double), O(Cin + Cout) per tile.
/// <para>
/// Tiles are processed a chunk at a time: the chunk's V [16, T, Cin] and M [16, T, Cout] live in the caller's scratch.
/// Every step works per tile or per (point, tile row) in a fixed order, so results do not depend on the chunk size or the thread
/// count, and every vector level gives the same bits (the transforms are the same adds in the same order at every width, the
/// GEMM's per-row sums the same fused multiply-adds; the scalar level's GEMM twin rounds products separately).
/// </para>
/// </summary>
public static class Winograd
{
    /// <summary>Points of the transformed 4×4 tile.</summary>
    internal const int Points = 16;

    /// <summary>Scratch floats aimed at per chunk (4 MiB: the chunk's V and M stay in L2-near caches between the three steps).</summary>
    const int ChunkFloats = 1 << 20;

    /// <summary>Fewest tiles per chunk: each GEMM must feed enough rows per pass over U_ξ.</summary>
    const int MinimumChunkTiles = 96;

    /// <summary>
    /// Whether a convolution is better done this way: 3×3, stride 1, padding 1, at least 64 input channels. Measured on RN50's
    /// shapes (4 images, one thread) against im2col + GEMM or the direct kernel: 1.13× at 64 → 64 channels (56²), 1.6–1.9× from
    /// 128 up; with 32 input channels (the stem's conv2 and conv3) 0.6× and 0.9×, sixteen products of K = 32 being too short.
    /// </summary>
    public static bool Applies(int kernel, int stride, int padding, int inChannels) =>
        kernel == 3 && stride == 1 && padding == 1 && inChannels >= 64;

    /// <summary>Scratch floats <see cref="Forward"/> needs at the least (one tile).</summary>
    public static int MinimumScratch(int inChannels, int outChannels) => Points * (inChannels + outChannels);

    /// <summary>Scratch floats that let a convolution over <paramref name="tiles"/> tiles run in chunks of the preferred size.</summary>
    public static int PreferredScratch(int inChannels, int outChannels, long tiles)
    {
        int perTile = MinimumScratch(inChannels, outChannels);
        return (int)PreferredChunk(perTile, tiles) * perTile;
    }

    /// <summary>Tiles per chunk when scratch allows: about <see cref="ChunkFloats"/> of scratch, at least <see cref="MinimumChunkTiles"/>.</summary>
    static long PreferredChunk(int perTile, long tiles) => Math.Min(tiles, Math.Max(MinimumChunkTiles, ChunkFloats / perTile));

    /// <summary>2×2 output tiles of an H×W map: ⌈H/2⌉·⌈W/2⌉ per image (a tile past an odd edge computes pixels that are dropped).</summary>
    public static long Tiles(int batch, int height, int width) => (long)batch * ((height + 1) / 2) * ((width + 1) / 2);

    /// <summary>
    /// x [B, H, W, Cin] → y [B, H, W, Cout] = act(conv3×3(x) + bias), stride 1, padding 1, act ReLU or none.
    /// <paramref name="scratch"/> holds at least <see cref="MinimumScratch"/> floats (more means larger chunks, fewer passes over U).
    /// y must not overlap x or scratch.
    /// </summary>
    public static unsafe void Forward(ReadOnlySpan<float> input, ImageGeometry shape, WinogradFilter filter, Span<float> output, Span<float> scratch,
        in Epilogue epilogue = default, KernelContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var ctx = context ?? KernelContext.Default;
        int cin = filter.InChannels, cout = filter.OutChannels;
        shape.Check(nameof(input));
        Convolution.Check(shape.Channels == cin, $"input has {shape.Channels} channels, the filter takes {cin}");
        epilogue.CheckBiasAndRelu(cout, "the Winograd convolution");
        var outShape = shape.With(shape.Height, shape.Width, cout);
        Convolution.Check(input.Length >= shape.Length, $"input has {input.Length} values, expected {shape}");
        Convolution.Check(output.Length >= outShape.Length, $"output has {output.Length} values, expected {outShape}");
        int perTile = MinimumScratch(cin, cout);
        Convolution.Check(scratch.Length >= perTile, $"scratch has {scratch.Length} values, a Winograd 3×3 convolution {cin} → {cout} needs at least {perTile}");
        long tiles = Tiles(shape.Batch, shape.Height, shape.Width);
        if (tiles == 0) return;

        // Equal chunks, not full ones and a sliver (a sliver passes over all 16 U_ξ for a handful of rows).
        long chunk = Math.Min(scratch.Length / perTile, PreferredChunk(perTile, tiles));
        long chunks = (tiles + chunk - 1) / chunk;
        chunk = (tiles + chunks - 1) / chunks;
        var s = new Shape(shape.Height, shape.Width, cin, cout, (shape.Height + 1) / 2, (shape.Width + 1) / 2, epilogue.Activation == Activation.Relu);
        fixed (float* pin = input, pb = epilogue.Bias, pout = output, ps = scratch)
        {
            var kernel = new WinogradKernel(pin, epilogue.Bias.IsEmpty ? null : pb, pout, ps, filter, s, tiles, (int)chunk, ctx);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
        GC.KeepAlive(filter);
    }

    /// <summary>The chunk loop at one level: input transforms, sixteen GEMMs, output transforms, each step split over the context's threads.</summary>
    readonly unsafe struct WinogradKernel(float* input, float* bias, float* output, float* scratch, WinogradFilter filter, Shape shape, long tiles, int chunk,
        KernelContext context) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            float* source = input, b = bias, destination = output, v = scratch;
            var s = shape;
            var points = filter.Points;
            int cin = s.InChannels, cout = s.OutChannels;
            // One GEMM per point, each on one thread: with several threads the 16 products are shared out whole.
            var single = context.WithThreads(1);
            for (long start = 0; start < tiles; start += chunk)
            {
                int count = (int)Math.Min(chunk, tiles - start), first = (int)start;
                float* m = v + (long)Points * count * cin;   // V [16, count, Cin], then M [16, count, Cout]
                context.For(count, Points * cin, (t0, t1) =>
                {
                    for (int t = t0; t < t1; t++) InputTile<TVec, TOps>(source, s, first + t, v + (long)t * cin, (long)count * cin);
                });
                context.For(Points, (long)count * cin * cout / 16, (p0, p1) =>
                {
                    for (int p = p0; p < p1; p++)
                        Gemm.Multiply(new ReadOnlyMatrixView(new ReadOnlySpan<float>(v + (long)p * count * cin, count * cin), count, cin), points[p],
                            new MatrixView(new Span<float>(m + (long)p * count * cout, count * cout), count, cout), default, single);
                });
                context.For(count, Points * cout, (t0, t1) =>
                {
                    for (int t = t0; t < t1; t++) OutputTile<TVec, TOps>(m + (long)t * cout, (long)count * cout, b, destination, s, first + t);
                });
            }
        }
    }

    readonly record struct Shape(int Height, int Width, int InChannels, int OutChannels, int TilesY, int TilesX, bool Relu)
    {
        /// <summary>Tile index → (image, tile row, tile column); tiles run row-major within an image.</summary>
        public (int Image, int Row, int Column) Locate(int tile) => (tile / (TilesX * TilesY), tile / TilesX % TilesY, tile % TilesX);
    }

    /// <summary>Tile <paramref name="tile"/>'s V = Bᵀ d B for every input channel, point ξ at v + ξ·<paramref name="pointStride"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // straight to optimized code: tier-0 transforms ran 3× slower for the first calls
    static unsafe void InputTile<TVec, TOps>(float* input, in Shape s, int tile, float* v, long pointStride) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        var (b, ty, tx) = s.Locate(tile);
        int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
        // The patch's rows (null above or below the image) and which of its columns are inside; outside is zero padding.
        float* image = input + (long)b * s.Height * s.Width * s.InChannels;
        var rows = new Patch(image, y0, x0, s);
        int c = InputChannels<TVec, TOps>(rows, v, pointStride, 0, s.InChannels);
        InputChannels<float, OpsScalar>(rows, v, pointStride, c, s.InChannels);
    }

    /// <summary>The 4×4 input patch of one tile: row pointers (null outside the image) and column offsets (−1 outside), in floats.</summary>
    readonly unsafe struct Patch
    {
        public readonly float* Row0, Row1, Row2, Row3;
        public readonly int Col0, Col1, Col2, Col3;

        public Patch(float* image, int y0, int x0, in Shape s)
        {
            Row0 = RowAt(image, y0, s); Row1 = RowAt(image, y0 + 1, s); Row2 = RowAt(image, y0 + 2, s); Row3 = RowAt(image, y0 + 3, s);
            Col0 = ColumnAt(x0, s); Col1 = ColumnAt(x0 + 1, s); Col2 = ColumnAt(x0 + 2, s); Col3 = ColumnAt(x0 + 3, s);
        }

        static float* RowAt(float* image, int y, in Shape s) => y >= 0 && y < s.Height ? image + (long)y * s.Width * s.InChannels : null;
        static int ColumnAt(int x, in Shape s) => x >= 0 && x < s.Width ? x * s.InChannels : -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe TVec At<TVec, TOps>(float* row, int column, int c) where TVec : unmanaged where TOps : IVecOps<TVec> =>
        row != null && column >= 0 ? TOps.Load(row + column + c) : TOps.Zero;

    /// <summary>Channels [c0, c1) a vector at a time; returns where it stopped (the caller finishes the tail one lane at a time).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe int InputChannels<TVec, TOps>(in Patch d, float* v, long pointStride, int c0, int c1)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        int c = c0;
        for (; c + TOps.Count <= c1; c += TOps.Count)
        {
            // u = d·B, row by row: u[r] = (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
            TransformRow<TVec, TOps>(At<TVec, TOps>(d.Row0, d.Col0, c), At<TVec, TOps>(d.Row0, d.Col1, c), At<TVec, TOps>(d.Row0, d.Col2, c),
                At<TVec, TOps>(d.Row0, d.Col3, c), out var u00, out var u01, out var u02, out var u03);
            TransformRow<TVec, TOps>(At<TVec, TOps>(d.Row1, d.Col0, c), At<TVec, TOps>(d.Row1, d.Col1, c), At<TVec, TOps>(d.Row1, d.Col2, c),
                At<TVec, TOps>(d.Row1, d.Col3, c), out var u10, out var u11, out var u12, out var u13);
            TransformRow<TVec, TOps>(At<TVec, TOps>(d.Row2, d.Col0, c), At<TVec, TOps>(d.Row2, d.Col1, c), At<TVec, TOps>(d.Row2, d.Col2, c),
                At<TVec, TOps>(d.Row2, d.Col3, c), out var u20, out var u21, out var u22, out var u23);
            TransformRow<TVec, TOps>(At<TVec, TOps>(d.Row3, d.Col0, c), At<TVec, TOps>(d.Row3, d.Col1, c), At<TVec, TOps>(d.Row3, d.Col2, c),
                At<TVec, TOps>(d.Row3, d.Col3, c), out var u30, out var u31, out var u32, out var u33);
            // V = Bᵀ·u, column by column, point ξ = 4·i + j stored at v + ξ·pointStride.
            float* o = v + c;
            StoreColumn<TVec, TOps>(u00, u10, u20, u30, o + 0 * pointStride, 4 * pointStride);
            StoreColumn<TVec, TOps>(u01, u11, u21, u31, o + 1 * pointStride, 4 * pointStride);
            StoreColumn<TVec, TOps>(u02, u12, u22, u32, o + 2 * pointStride, 4 * pointStride);
            StoreColumn<TVec, TOps>(u03, u13, u23, u33, o + 3 * pointStride, 4 * pointStride);
        }
        return c;
    }

    /// <summary>(a, b, c, d)·B = (a − c, b + c, c − b, b − d): Bᵀ applied to four values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void TransformRow<TVec, TOps>(TVec a, TVec b, TVec c, TVec d, out TVec r0, out TVec r1, out TVec r2, out TVec r3)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        r0 = TOps.Sub(a, c); r1 = TOps.Add(b, c); r2 = TOps.Sub(c, b); r3 = TOps.Sub(b, d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void StoreColumn<TVec, TOps>(TVec a, TVec b, TVec c, TVec d, float* at, long rowStride)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        TransformRow<TVec, TOps>(a, b, c, d, out var r0, out var r1, out var r2, out var r3);
        TOps.Store(r0, at); TOps.Store(r1, at + rowStride); TOps.Store(r2, at + 2 * rowStride); TOps.Store(r3, at + 3 * rowStride);
    }

    /// <summary>Tile <paramref name="tile"/>'s output pixels y = act(Aᵀ M A + bias), M's point ξ at m + ξ·<paramref name="pointStride"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void OutputTile<TVec, TOps>(float* m, long pointStride, float* bias, float* output, in Shape s, int tile) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        var (b, ty, tx) = s.Locate(tile);
        int oy = 2 * ty, ox = 2 * tx;
        float* y00 = output + (((long)b * s.Height + oy) * s.Width + ox) * s.OutChannels;
        // Pixels past an odd bottom or right edge are computed and dropped (null pointers).
        bool right = ox + 1 < s.Width, below = oy + 1 < s.Height;
        var pixels = new Pixels(y00, right ? y00 + s.OutChannels : null, below ? y00 + (long)s.Width * s.OutChannels : null,
            right && below ? y00 + ((long)s.Width + 1) * s.OutChannels : null);
        int c = OutputChannels<TVec, TOps>(m, pointStride, bias, pixels, s.Relu, 0, s.OutChannels);
        OutputChannels<float, OpsScalar>(m, pointStride, bias, pixels, s.Relu, c, s.OutChannels);
    }

    /// <summary>A tile's four output pixels (null: outside the image).</summary>
    readonly unsafe struct Pixels(float* y00, float* y01, float* y10, float* y11)
    {
        public readonly float* Y00 = y00, Y01 = y01, Y10 = y10, Y11 = y11;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe int OutputChannels<TVec, TOps>(float* m, long pointStride, float* bias, in Pixels y, bool relu, int c0, int c1)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        int c = c0;
        for (; c + TOps.Count <= c1; c += TOps.Count)
        {
            // s = M·A, row by row: s[i] = (m_i0 + m_i1 + m_i2, m_i1 − m_i2 − m_i3).
            float* p = m + c;
            ReduceRow<TVec, TOps>(p, pointStride, out var s00, out var s01);
            ReduceRow<TVec, TOps>(p + 4 * pointStride, pointStride, out var s10, out var s11);
            ReduceRow<TVec, TOps>(p + 8 * pointStride, pointStride, out var s20, out var s21);
            ReduceRow<TVec, TOps>(p + 12 * pointStride, pointStride, out var s30, out var s31);
            // Y = Aᵀ·s, then bias and activation.
            TVec beta = bias == null ? TOps.Zero : TOps.Load(bias + c);
            Finish<TVec, TOps>(TOps.Add(TOps.Add(s00, s10), s20), beta, relu, y.Y00, c);
            Finish<TVec, TOps>(TOps.Add(TOps.Add(s01, s11), s21), beta, relu, y.Y01, c);
            Finish<TVec, TOps>(TOps.Sub(TOps.Sub(s10, s20), s30), beta, relu, y.Y10, c);
            Finish<TVec, TOps>(TOps.Sub(TOps.Sub(s11, s21), s31), beta, relu, y.Y11, c);
        }
        return c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void ReduceRow<TVec, TOps>(float* row, long pointStride, out TVec first, out TVec second)
        where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        TVec m0 = TOps.Load(row), m1 = TOps.Load(row + pointStride), m2 = TOps.Load(row + 2 * pointStride), m3 = TOps.Load(row + 3 * pointStride);
        first = TOps.Add(TOps.Add(m0, m1), m2);
        second = TOps.Sub(TOps.Sub(m1, m2), m3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Finish<TVec, TOps>(TVec value, TVec bias, bool relu, float* pixel, int c) where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        if (pixel == null) return;
        value = TOps.Add(value, bias);
        if (relu) value = TOps.Max(value, TOps.Zero);
        TOps.Store(value, pixel + c);
    }
}
