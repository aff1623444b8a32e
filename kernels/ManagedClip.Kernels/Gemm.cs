using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ManagedClip.Kernels;

/// <summary>
/// y = act(x·B + bias + residual), single precision (<see cref="Epilogue"/>). x is row-major [m, K], y row-major [m, N], each with its row stride.
/// <para>
/// Blocking (per core: 48 KiB L1d, 1–2 MiB L2): B is packed in 64-column panels (<see cref="PackedMatrix"/>).
/// A task owns a block of ≤ <see cref="MaxRowBlock"/> = 144 rows × a group of ≤ 4 panels (256 columns). The m rows are
/// cut into equal row blocks (a multiple of six rows each), never a full block plus a sliver: a sliver of 8 rows would
/// stream the whole of B from memory again for almost no work. Inside a task, K is cut into blocks of <see cref="KC"/> =
/// 128: one B block (128 × 64 floats = 32 KiB) stays in L1 while the six-row micro-tiles of the row block stream past
/// it, and the x block (≤ 144 × 128, read in place, six sequential row streams per micro-tile) stays in L2 across the
/// panels of the group. While one B block is in use, the next one is prefetched into L2, a slice per micro-tile, so its
/// first micro-tile does not wait on memory. Partial sums live in a per-thread stack tile [144, 256] (144 KiB), so y is
/// written exactly once, with the epilogue (bias, activation, residual add) fused into that write; a plain product
/// (none of those, N a multiple of 64: Winograd's sixteen) sums in y itself.
/// </para>
/// <para>
/// Micro-kernels (<see cref="GemmMicro"/>): Vector512 holds a 6 × 64 accumulator tile (24 zmm + 4 for B + 1
/// broadcast, of 32); Vector256 and Vector128 hold 6 × 2 vectors (12 + 2 + 1 of 16 registers) and sweep the
/// 64-wide panel in 16- or 8-column strips. Every k-step is one broadcast of x per row and one FMA per accumulator.
/// </para>
/// Threads: tasks are pulled from a shared counter by the context's threads (and, for a one-thread call made by a
/// member of a <see cref="WorkSharing"/> team, by the members that have finished their own work: <see cref="KernelContext.Run"/>); each output element is
/// computed by one task in a fixed order, so results do not depend on the thread count or on who helped.
/// <para>
/// The kernels' loops are compiled straight to optimized code (<c>AggressiveOptimization</c>), here and in the other kernels:
/// under tiered compilation they start unoptimized, and ViT-B/32 at batch 1 ran its first 20 calls at a median of 67–69 ms
/// against 41 ms once they no longer did (the same as with tiering off for the whole process).
/// </para>
/// </summary>
public static class Gemm
{
    internal const int NR = PackedMatrix.PanelWidth; // 64 columns per panel / register tile
    internal const int MR = 6;                       // rows per micro-tile
    internal const int KC = 128;                     // k-block: 128 × 64 × 4 B = 32 KiB of B in L1
    internal const int MaxRowBlock = 144;            // rows per task ≤ 144: x block 144 × 128 × 4 B = 72 KiB, in L2
    internal const int MaxPanelsPerTask = 4;         // columns per task ≤ 256: partial-sum tile [144, 256] = 144 KiB, in L2
    internal const int TileWidth = MaxPanelsPerTask * NR;

    /// <summary>Below this many multiply-adds a call runs on the calling thread: waking workers costs more than it saves.</summary>
    internal const long ParallelThreshold = 1L << 18;

    /// <summary>
    /// y [m, N] = act(x [m, K]·B + bias + residual) (<see cref="Epilogue"/>; the residual may be y itself: y += x·B + bias).
    /// x and y may have row strides; y must not overlap x or the bias.
    /// </summary>
    public static unsafe void Multiply(ReadOnlyMatrixView x, PackedMatrix b, MatrixView y, in Epilogue epilogue = default, KernelContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(b);
        var ctx = context ?? KernelContext.Default;
        Validate(x, b.K, b.N, y, epilogue, $"x·B with B [{b.K}, {b.N}]");
        if (x.Rows == 0) return;
        fixed (float* px = x.Data, py = y.Data, pb = epilogue.Bias, pr = epilogue.Residual)
        {
            CheckNoOverlap(px, x.Data.Length, py, y.Data.Length, pb, epilogue.Bias.Length, pr, epilogue.Residual.Length);
            var args = new GemmArgs(px, x.Stride, null, 0, b.Data, x.Rows, b.K, b.N, py, y.Stride, epilogue.Bias.IsEmpty ? null : pb,
                epilogue.Activation, epilogue.Residual.IsEmpty ? null : pr);
            var kernel = new GemmKernel(args, b, ctx);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
        GC.KeepAlive(b);
    }

    /// <summary>Unpacked form for small or one-off products: y [m, n] = act(x [m, k]·B [k, n] + bias + residual), B row-major.</summary>
    public static unsafe void Multiply(ReadOnlyMatrixView x, ReadOnlyMatrixView b, MatrixView y, in Epilogue epilogue = default, KernelContext? context = null)
    {
        var ctx = context ?? KernelContext.Default;
        if (b.Rows < 1 || b.Columns < 1) throw new ArgumentOutOfRangeException(nameof(b), $"B is {b.ToString()}, it needs at least one row and one column.");
        Validate(x, b.Rows, b.Columns, y, epilogue, $"x·B with B {b.ToString()}");
        if (x.Rows == 0) return;
        fixed (float* px = x.Data, pbm = b.Data, py = y.Data, pb = epilogue.Bias, pr = epilogue.Residual)
        {
            CheckNoOverlap(px, x.Data.Length, py, y.Data.Length, pb, epilogue.Bias.Length, pr, epilogue.Residual.Length);
            if (Overlaps(pbm, b.Data.Length, py, y.Data.Length))
                throw new ArgumentException("y must not overlap B.", nameof(y));
            var args = new GemmArgs(px, x.Stride, pbm, b.Stride, null, x.Rows, b.Rows, b.Columns, py, y.Stride, epilogue.Bias.IsEmpty ? null : pb,
                epilogue.Activation, epilogue.Residual.IsEmpty ? null : pr);
            var kernel = new GemmKernel(args, null, ctx);
            SimdDispatch.Run(ctx.Level, ref kernel);
        }
    }

    static void Validate(ReadOnlyMatrixView x, int k, int n, MatrixView y, in Epilogue epilogue, string what)
    {
        if (x.Columns != k) throw new ArgumentException($"x is {x.ToString()}, expected {k} columns for {what}.", nameof(x));
        if (y.Rows != x.Rows || y.Columns != n) throw new ArgumentException($"y is {y.ToString()}, expected [{x.Rows}, {n}] for {what}.", nameof(y));
        if (!epilogue.Bias.IsEmpty && epilogue.Bias.Length != n)
            throw new ArgumentException($"bias has {epilogue.Bias.Length} elements, expected 0 (no bias) or N = {n} for {what}.", "bias");
        if (!epilogue.Residual.IsEmpty)
            ReadOnlyMatrixView.Check(epilogue.Residual.Length, y.Rows, y.Columns, y.Stride, "residual");
    }

    static unsafe void CheckNoOverlap(float* x, int xLength, float* y, int yLength, float* bias, int biasLength, float* residual, int residualLength)
    {
        if (Overlaps(x, xLength, y, yLength)) throw new ArgumentException("y must not overlap x.", nameof(y));
        if (Overlaps(bias, biasLength, y, yLength)) throw new ArgumentException("y must not overlap bias.", nameof(y));
        if (residual != y && Overlaps(residual, residualLength, y, yLength))
            throw new ArgumentException("residual must be y itself or not overlap it.", "residual");
    }

    /// <summary>The call at one SIMD level: the scalar twin, or the tiled job on the context's threads.</summary>
    readonly unsafe struct GemmKernel(GemmArgs args, PackedMatrix? packed, KernelContext context) : IVectorKernel
    {
        public void Run<TVec, TOps>() where TVec : unmanaged where TOps : IVecOps<TVec>
        {
            if (SimdDispatch.IsScalar<TVec>())
            {
                if (packed is null) ScalarRowMajor(args); else ScalarPacked(args, packed);
                return;
            }
            var job = new GemmJob<TVec, TOps>(args, context.Threads);
            context.Run(job, small: (long)args.M * args.N * args.K < ParallelThreshold);
        }
    }

    internal static unsafe bool Overlaps(float* a, int aLength, float* b, int bLength)
        => aLength > 0 && bLength > 0 && a < b + bLength && b < a + aLength;

    // ------------------------------------------------------------------ scalar twins (the oracle)

    static unsafe void ScalarPacked(in GemmArgs g, PackedMatrix b)
    {
        for (int i = 0; i < g.M; i++)
            for (int j = 0; j < g.N; j++)
            {
                float s = 0f;
                for (int p = 0; p < g.K; p++) s += g.X[(nint)i * g.XStride + p] * b[p, j];
                Finish(g, i, j, s);
            }
    }

    static unsafe void ScalarRowMajor(in GemmArgs g)
    {
        for (int i = 0; i < g.M; i++)
            for (int j = 0; j < g.N; j++)
            {
                float s = 0f;
                for (int p = 0; p < g.K; p++) s += g.X[(nint)i * g.XStride + p] * g.BRowMajor[(nint)p * g.BStride + j];
                Finish(g, i, j, s);
            }
    }

    static unsafe void Finish(in GemmArgs g, int i, int j, float s)
    {
        if (g.Bias != null) s += g.Bias[j];
        if (g.Residual != null) s += g.Residual[(nint)i * g.YStride + j];
        g.Y[(nint)i * g.YStride + j] = Activations.Scalar(s, g.Activation);
    }

    // ------------------------------------------------------------------ SIMD driver

    /// <summary>
    /// One GEMM call's tasks. A task is one row block (≤ <see cref="MaxRowBlock"/> rows) × a group of up to
    /// <see cref="MaxPanelsPerTask"/> panels; per k-block its x block is reused from L2 against every panel of the group, so
    /// x comes from memory once per group rather than once per panel. Task t covers panel group t / rowBlocks and row block
    /// t % rowBlocks. (Packing x into 6-row micro-panels was tried twice and measured slower both times, ~2× on 96×768×256
    /// and ~20 % on 204×768×3072: the copy cost more than the contiguous stream saved.)
    /// </summary>
    sealed unsafe class GemmJob<TVec, TOps> : SharedWork where TVec : unmanaged where TOps : IVecOps<TVec>
    {
        readonly GemmArgs _g;
        readonly int _rowBlocks, _rowBlock, _panels, _panelsPerTask;
        readonly bool _sumsInOutput;

        public GemmJob(in GemmArgs g, int threads) : this(g, Blocking(g, threads)) { }

        GemmJob(in GemmArgs g, (int RowBlocks, int RowBlock, int Panels, int PanelsPerTask) blocking)
            : base((long)blocking.RowBlocks * ((blocking.Panels + blocking.PanelsPerTask - 1) / blocking.PanelsPerTask))
        {
            _g = g;
            (_rowBlocks, _rowBlock, _panels, _panelsPerTask) = blocking;
            _sumsInOutput = g.Bias == null && g.Residual == null && g.Activation == Activation.None && g.N % NR == 0;
        }

        static (int RowBlocks, int RowBlock, int Panels, int PanelsPerTask) Blocking(in GemmArgs g, int threads)
        {
            // Equal row blocks, each a whole number of micro-tiles: 200 rows are two blocks of 102 and 98, not 144 + 56.
            int rowBlocks = (g.M + MaxRowBlock - 1) / MaxRowBlock;
            int rowBlock = ((g.M + rowBlocks - 1) / rowBlocks + MR - 1) / MR * MR;
            int panels = (g.N + NR - 1) / NR;
            // Group panels while there are still ≥ 8 tasks per thread to balance load (with 4, the 36 panels of ViT-B's
            // batch-1 QKV projection were 9 tasks: 5 for one thread, 4 for the other). Grouping changes only which task
            // computes an element, never its summation order, so results stay independent of the thread count.
            int panelsPerTask = Math.Clamp(panels * rowBlocks / (8 * Math.Max(1, threads)), 1, MaxPanelsPerTask);
            return (rowBlocks, rowBlock, panels, panelsPerTask);
        }

        [SkipLocalsInit]
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override bool RunTasks()
        {
            // Per-thread scratch, 64-byte aligned: partial sums [≤ 144, 4·64] (144 KiB) and, for unpacked B only,
            // one packed B block [KC, 64] (32 KiB).
            float* tileRaw = stackalloc float[MaxRowBlock * TileWidth + 16];
            float* blockRaw = stackalloc float[KC * NR + 16];
            float* tile = Align64(tileRaw), block = Align64(blockRaw);
            bool ran = false;
            while (TryTake(out long t))
            {
                RunTask((int)t, tile, block);
                Completed();
                ran = true;
            }
            return ran;
        }

        static float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void RunTask(int t, float* tile, float* block)
        {
            ref readonly GemmArgs g = ref _g;
            int p0 = t / _rowBlocks * _panelsPerTask, p1 = Math.Min(_panels, p0 + _panelsPerTask);
            int i0 = t % _rowBlocks * _rowBlock, rows = Math.Min(_rowBlock, g.M - i0);
            int microTiles = (rows + MR - 1) / MR;
            for (int k0 = 0; k0 < g.K; k0 += KC)
            {
                int kc = Math.Min(KC, g.K - k0);
                for (int p = p0; p < p1; p++)
                {
                    int panelCols = Math.Min(NR, g.N - p * NR);
                    float* bBlock = g.Packed != null
                        ? g.Packed + ((nint)p * g.K + k0) * NR
                        : PackBlock(block, g.BRowMajor, g.BStride, k0, kc, p * NR, panelCols);
                    // The B block used next (next panel of the group, else the group's first panel at the next k-block),
                    // [kc′, 64] contiguous: each micro-tile prefetches a slice of its cache lines into L2, one line per k-step
                    // (a burst of 30 prefetches before each micro-tile measured slower: it fills the L2 miss queue).
                    float* next = null;
                    int nextLines = 0;
                    if (g.Packed != null && Sse.IsSupported)
                    {
                        int nk0 = p + 1 < p1 ? k0 : k0 + KC, np = p + 1 < p1 ? p + 1 : p0;
                        if (nk0 < g.K) { next = g.Packed + ((nint)np * g.K + nk0) * NR; nextLines = Math.Min(KC, g.K - nk0) * NR / 16; }
                    }
                    int linesPerTile = (nextLines + microTiles - 1) / microTiles;
                    // A plain product (no bias, activation, residual or accumulation) over whole panels sums in y itself: no tile, no
                    // epilogue pass (the same loads, FMAs and stores, so the same bits).
                    float* c = _sumsInOutput ? g.Y + (nint)i0 * g.YStride + p * NR : tile + (p - p0) * NR;
                    nint ldc = _sumsInOutput ? g.YStride : TileWidth;
                    bool last = k0 + kc == g.K && !_sumsInOutput;
                    int j = p * NR;
                    for (int i = 0, line = 0; i < rows; i += MR, line += linesPerTile)
                    {
                        int tileRows = Math.Min(MR, rows - i);
                        MicroTile(tileRows, g.X + (nint)(i0 + i) * g.XStride + k0, g.XStride, bBlock, kc, c + i * ldc, ldc, panelCols, k0 > 0,
                            next + line * 16, Math.Clamp(nextLines - line, 0, linesPerTile));
                        // After the last k-block, the micro-tile's sums go to y at once, while they are still in L1 (after the
                        // whole task they were back in L2, and y's writes came in one burst instead of between FMAs).
                        if (last)
                            Epilogue(c + i * TileWidth, tileRows, panelCols, g.Y + (nint)(i0 + i) * g.YStride + j, g.YStride, g.Bias == null ? null : g.Bias + j,
                                g.Residual == null ? null : g.Residual + (nint)(i0 + i) * g.YStride + j, g.Activation);
                    }
                }
            }
        }

        /// <summary>Copies B[k0..k0+kc, j0..j0+cols] (row-major, row stride n) into the packed [kc, 64] layout, zero-padding columns.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static float* PackBlock(float* block, float* b, int n, int k0, int kc, int j0, int cols)
        {
            for (int kk = 0; kk < kc; kk++)
            {
                float* src = b + (nint)(k0 + kk) * n + j0, dst = block + kk * NR;
                new ReadOnlySpan<float>(src, cols).CopyTo(new Span<float>(dst, cols));
                if (cols < NR) new Span<float>(dst + cols, NR - cols).Clear();
            }
            return block;
        }

        /// <summary>One micro-tile: rows ≤ 6 of x against a [kc, 64] B block, into rows <paramref name="ldc"/> apart (the tile's, or y's for a plain product).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void MicroTile(int rows, float* a, nint lda, float* b, int kc, float* c, nint ldc, int cols, bool load, float* prefetch, int prefetchLines)
        {
            // A full-width tile when the panel has more than two vectors of live columns; a narrow panel (N ≤ 32 at Vector512,
            // the ResNet stem's 32 channels, or the last panel of an N just past a multiple of 64) takes the strip path below
            // instead of multiplying zero padding.
            if (TOps.Count == 16 && cols > 2 * TOps.Count)
            {
                switch (rows)
                {
                    case 6: GemmMicro.Tile4<TVec, TOps, R6>(a, lda, b, kc, c, ldc, load, prefetch, prefetchLines); break;
                    case 5: GemmMicro.Tile4<TVec, TOps, R5>(a, lda, b, kc, c, ldc, load, prefetch, prefetchLines); break;
                    case 4: GemmMicro.Tile4<TVec, TOps, R4>(a, lda, b, kc, c, ldc, load, prefetch, prefetchLines); break;
                    case 3: GemmMicro.Tile4<TVec, TOps, R3>(a, lda, b, kc, c, ldc, load, prefetch, prefetchLines); break;
                    case 2: GemmMicro.Tile4<TVec, TOps, R2>(a, lda, b, kc, c, ldc, load, prefetch, prefetchLines); break;
                    default: GemmMicro.Tile4<TVec, TOps, R1>(a, lda, b, kc, c, ldc, load, prefetch, prefetchLines); break;
                }
                return;
            }
            // Narrower vectors: sweep the panel in strips of two vectors, skipping strips wholly past N. The prefetch goes out up front.
            if (Sse.IsSupported) for (int line = 0; line < prefetchLines; line++) Sse.Prefetch1(prefetch + line * 16);
            int strip = 2 * TOps.Count;
            for (int s = 0; s < cols; s += strip)
            {
                switch (rows)
                {
                    case 6: GemmMicro.Tile2<TVec, TOps, R6>(a, lda, b + s, kc, c + s, ldc, load); break;
                    case 5: GemmMicro.Tile2<TVec, TOps, R5>(a, lda, b + s, kc, c + s, ldc, load); break;
                    case 4: GemmMicro.Tile2<TVec, TOps, R4>(a, lda, b + s, kc, c + s, ldc, load); break;
                    case 3: GemmMicro.Tile2<TVec, TOps, R3>(a, lda, b + s, kc, c + s, ldc, load); break;
                    case 2: GemmMicro.Tile2<TVec, TOps, R2>(a, lda, b + s, kc, c + s, ldc, load); break;
                    default: GemmMicro.Tile2<TVec, TOps, R1>(a, lda, b + s, kc, c + s, ldc, load); break;
                }
            }
        }

        /// <summary>y[r, 0..cols) = act(tile + bias + residual), row by row while the tile is still in cache.</summary>
        static void Epilogue(float* tile, int rows, int cols, float* y, int ldy, float* bias, float* residual, Activation act)
        {
            switch (act)
            {
                case Activation.QuickGelu: Epilogue<Activations.QuickGeluOp>(tile, rows, cols, y, ldy, bias, residual); break;
                case Activation.Gelu: Epilogue<Activations.GeluOp>(tile, rows, cols, y, ldy, bias, residual); break;
                case Activation.Relu: Epilogue<Activations.ReluOp>(tile, rows, cols, y, ldy, bias, residual); break;
                default: Epilogue<Activations.IdentityOp>(tile, rows, cols, y, ldy, bias, residual); break;
            }
        }

        /// <summary>
        /// One pass per vector: load the partial sum, add bias and residual, apply TAct, store into y. The order of operations per
        /// element is that of the scalar twin's <c>Finish</c>. Columns past the last whole vector (N not a multiple of the vector
        /// width) take the same steps one lane at a time (<see cref="OpsScalar"/>), the kernels' one tail convention.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Epilogue<TAct>(float* tile, int rows, int cols, float* y, int ldy, float* bias, float* residual)
            where TAct : Activations.IActivationOp
        {
            int w = TOps.Count, whole = cols - cols % w;
            for (int r = 0; r < rows; r++)
            {
                float* t = tile + r * TileWidth, yr = y + (nint)r * ldy, rr = residual == null ? null : residual + (nint)r * ldy;
                for (int j = 0; j < whole; j += w)
                    Finish<TVec, TOps, TAct>(t + j, bias == null ? null : bias + j, rr == null ? null : rr + j, yr + j);
                for (int j = whole; j < cols; j++)
                    Finish<float, OpsScalar, TAct>(t + j, bias == null ? null : bias + j, rr == null ? null : rr + j, yr + j);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Finish<TV, TO, TAct>(float* t, float* bias, float* residual, float* y)
            where TV : unmanaged where TO : IVecOps<TV> where TAct : Activations.IActivationOp
        {
            TV v = TO.Load(t);
            if (bias != null) v = TO.Add(v, TO.Load(bias));
            if (residual != null) v = TO.Add(v, TO.Load(residual));
            TO.Store(TAct.Invoke<TV, TO>(v), y);
        }
    }
}

/// <summary>Everything one GEMM call needs, as raw pointers (the spans are pinned by the caller for the call's duration) and row strides.</summary>
internal readonly unsafe struct GemmArgs(float* x, int xStride, float* bRowMajor, int bStride, float* packed, int m, int k, int n,
    float* y, int yStride, float* bias, Activation activation, float* residual)
{
    public readonly float* X = x;
    public readonly int XStride = xStride;
    public readonly float* BRowMajor = bRowMajor;
    public readonly int BStride = bStride;
    public readonly float* Packed = packed;
    public readonly int M = m, K = k, N = n;
    public readonly float* Y = y;
    public readonly int YStride = yStride;
    public readonly float* Bias = bias;
    public readonly Activation Activation = activation;
    public readonly float* Residual = residual;
}
